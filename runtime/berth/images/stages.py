"""Multi-stage Containerfiles: the stages, what each FROM and COPY --from refers to, what to build.

All of it is decided before any step runs, from the Containerfile and the build args alone, so a
bad reference (a stage using itself or a later stage, a duplicate stage name, --target naming no
stage) fails the build before the store is touched. Stages are numbered from 0; names are
case-insensitive, as in docker. Only the stages the target needs are built (as BuildKit does).

ARGs before the first FROM are global: they can be used in FROM lines, and a stage sees one only
if it declares it again (`ARG NAME` without a value takes the global value). Each stage starts
with no ARGs of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from berth.errors import InvalidInput
from berth.images.containerfile import Instruction, expand, words

STAGE_NAME = re.compile(r"[a-z][a-z0-9._-]*")
ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Source:
    """Where a FROM or a COPY --from reads: an earlier stage (by index) or an image reference."""

    stage: int | None = None
    image: str | None = None


@dataclass
class Stage:
    index: int
    name: str | None
    instr: Instruction  # the FROM line
    base: Source  # `scratch` is Source(image="scratch")
    body: list[Instruction] = field(default_factory=list)
    # Position in `body` of each COPY --from -> what it copies from.
    copies: dict[int, Source] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.index} ({self.name})" if self.name else str(self.index)


@dataclass
class BuildPlan:
    global_args: dict[str, str]
    stages: list[Stage]
    target: int
    needed: list[int]  # stage indexes, ascending: the target and every stage it uses


def declare_args(
    instr: Instruction,
    build_args: Mapping[str, str],
    args: dict[str, str],
    inherited: Mapping[str, str],
    env: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """The values an ARG line declares: a --build-arg wins, then the default written there, then
    the value the name already has in this scope, then the inherited (global) one.

    Defaults are expanded against the scope's ARGs (and ENV, which wins, as in docker).
    """
    out: list[tuple[str, str]] = []
    scope = dict(args)
    for item in words(instr, instr.args):
        name, eq, default = item.partition("=")
        if not ARG_NAME.fullmatch(name):
            raise instr.error(f"invalid ARG name {name!r}")
        if name in build_args:
            value = build_args[name]
        elif eq:
            value = expand(default, {**scope, **(env or {})})
        elif name in scope:
            value = scope[name]
        else:
            value = inherited.get(name, "")
        scope[name] = value
        out.append((name, value))
    return out


def plan(
    instructions: list[Instruction],
    build_args: Mapping[str, str],
    target: str | None = None,
    source: str = "Containerfile",
) -> BuildPlan:
    """The stages of `instructions` and those `target` (a stage name; default the last) needs.

    Raises InvalidInput, naming the line, for every reference that cannot be right whatever the
    store holds; a name that is no stage is taken as an image, resolved when the build starts.
    """
    global_args: dict[str, str] = {}
    i = 0
    while i < len(instructions) and instructions[i].keyword == "ARG":
        global_args.update(declare_args(instructions[i], build_args, global_args, {}))
        i += 1
    if i >= len(instructions) or instructions[i].keyword != "FROM":
        line = instructions[i].line if i < len(instructions) else 1
        raise InvalidInput(f"{source}:{line}: the first instruction must be FROM (after ARGs)", line=line)
    # First pass: the stages and their names, so that references to later stages can be told apart
    # from image references.
    heads: list[tuple[Instruction, str, str | None]] = []
    bodies: list[list[Instruction]] = []
    names: dict[str, int] = {}
    for instr in instructions[i:]:
        if instr.keyword != "FROM":
            bodies[-1].append(instr)
            continue
        base, name = _from_line(instr, global_args)
        if name is not None:
            if name in names:
                first = heads[names[name]][0].line
                raise instr.error(f"duplicate stage name {name!r}: stage {names[name]} (line {first}) has it")
            names[name] = len(heads)
        heads.append((instr, base, name))
        bodies.append([])
    stages: list[Stage] = []
    for index, ((instr, base, name), body) in enumerate(zip(heads, bodies, strict=True)):
        stage = Stage(index, name, instr, _base(instr, base, index, names), body)
        args: dict[str, str] = {}
        for pos, step in enumerate(body):
            if step.keyword == "ARG":
                args.update(declare_args(step, build_args, args, global_args))
            elif step.keyword == "COPY" and "from" in step.flags:
                stage.copies[pos] = _copy_source(step, expand(step.flags["from"], args), index, heads, names)
        stages.append(stage)
    chosen = len(stages) - 1
    if target is not None:
        if target.lower() not in names:
            known = ", ".join(f"{n!r} (line {heads[x][0].line})" for n, x in names.items()) or "none is named"
            raise InvalidInput(f"--target {target!r} names no stage of {source} (stages: {known})")
        chosen = names[target.lower()]
    return BuildPlan(global_args, stages, chosen, _needed(stages, chosen))


def _from_line(instr: Instruction, global_args: Mapping[str, str]) -> tuple[str, str | None]:
    parts = expand(instr.args, global_args).split()
    name = None
    if len(parts) == 3 and parts[1].upper() == "AS":
        name = parts[2].lower()
        if not STAGE_NAME.fullmatch(name):
            raise instr.error(
                f"invalid stage name {parts[2]!r}: a letter, then letters, digits, '.', '_' or '-'"
            )
        parts = parts[:1]
    if len(parts) != 1 or not parts[0]:
        raise instr.error(f"expected FROM IMAGE [AS NAME], got {instr.args!r}")
    return parts[0], name


def _base(instr: Instruction, base: str, index: int, names: Mapping[str, int]) -> Source:
    """An earlier stage's name is that stage; the stage's own name is an image (as in docker:
    `FROM alpine AS alpine` builds on the image); a later stage's name is refused, as a mistake."""
    other = names.get(base.lower())
    if other is None or other == index:
        return Source(image=base)
    if other > index:
        raise instr.error(
            f"{base!r} is stage {other}, which comes later: a stage can only build on earlier stages"
        )
    return Source(stage=other)


def _copy_source(
    instr: Instruction,
    value: str,
    index: int,
    heads: list[tuple[Instruction, str, str | None]],
    names: Mapping[str, int],
) -> Source:
    if not value:
        raise instr.error("--from needs a stage name, a stage index or an image")
    if value.isdigit():
        other = int(value)
        if other >= len(heads):
            count = len(heads)
            raise instr.error(
                f"--from={value}: there is no stage {other} (stages are numbered from 0; "
                f"this file has {count} stage{'s' if count != 1 else ''})"
            )
    elif value.lower() in names:
        other = names[value.lower()]
    else:
        return Source(image=value)
    if other == index:
        raise instr.error(f"--from={value} is this stage itself: copy from an earlier stage")
    if other > index:
        line = heads[other][0].line
        raise instr.error(
            f"--from={value} is stage {other} (line {line}), which comes later: "
            "a stage can only copy from earlier stages"
        )
    return Source(stage=other)


def _needed(stages: list[Stage], target: int) -> list[int]:
    seen: set[int] = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index in seen:
            continue
        seen.add(index)
        stage = stages[index]
        deps = [stage.base, *stage.copies.values()]
        todo += [d.stage for d in deps if d.stage is not None]
    return sorted(seen)
