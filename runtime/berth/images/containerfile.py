"""Containerfile/Dockerfile parsing: instructions with their line numbers, and variable expansion.

The parser is strict where guessing would build the wrong image: an unknown instruction, a flag
an instruction does not take, a heredoc, or a malformed JSON form is an error naming the file and
line. Expansion (`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`) follows Docker's rules and is
done at build time, against ARG and ENV values in effect at that step.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from berth.errors import InvalidInput, Unsupported

# Instruction -> the flags it accepts.
INSTRUCTIONS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"network", "mount", "security"}),
    "COPY": frozenset({"chown", "chmod", "from", "link"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum"}),
    "ENV": frozenset(),
    "ARG": frozenset(),
    "WORKDIR": frozenset(),
    "USER": frozenset(),
    "CMD": frozenset(),
    "ENTRYPOINT": frozenset(),
    "EXPOSE": frozenset(),
    "LABEL": frozenset(),
    "VOLUME": frozenset(),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
    "STOPSIGNAL": frozenset(),
    "SHELL": frozenset(),
    "ONBUILD": frozenset(),
    "MAINTAINER": frozenset(),
}
JSON_FORMS = frozenset({"RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "VOLUME", "SHELL"})
_FLAG = re.compile(r"--([a-z][a-z-]*)(?:=(\S*))?")
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str
    flags: dict[str, str] = field(default_factory=dict)
    json_args: list[str] | None = None
    source: str = "Containerfile"

    def error(self, message: str) -> InvalidInput:
        return InvalidInput(f"{self.source}:{self.line}: {self.keyword}: {message}", line=self.line)

    @property
    def text(self) -> str:
        """The instruction as written (canonical): part of build cache keys."""
        flags = " ".join(f"--{k}={v}" for k, v in sorted(self.flags.items()))
        body = json.dumps(self.json_args) if self.json_args is not None else self.args
        return " ".join(p for p in (self.keyword, flags, body) if p)


def parse(text: str, source: str = "Containerfile") -> list[Instruction]:
    lines = text.splitlines()
    escape = "\\"
    out: list[Instruction] = []
    i = 0
    # Parser directives: only leading comment lines of the form `# key=value`.
    while i < len(lines):
        m = re.fullmatch(r"\s*#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*", lines[i])
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise InvalidInput(f"{source}:{i + 1}: invalid escape directive {m.group(2)!r}", line=i + 1)
            escape = m.group(2)
        i += 1
    while i < len(lines):
        start = i
        raw = lines[i]
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = [raw]
        while parts[-1].rstrip().endswith(escape) and i <= len(lines):
            parts[-1] = parts[-1].rstrip()[:-1]
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
            parts.append(lines[i])
            i += 1
        logical = "".join(parts).strip()
        out.append(parse_line(logical, start + 1, source))
    return out


def parse_line(logical: str, line: int, source: str = "Containerfile") -> Instruction:
    keyword, _, rest = logical.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = more + " " + rest
    keyword = keyword.upper()
    if keyword not in INSTRUCTIONS:
        raise InvalidInput(f"{source}:{line}: unknown instruction {keyword!r}", line=line)
    rest = rest.strip()
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, remainder = rest.partition(" ")
        m = _FLAG.fullmatch(token)
        if not m or m.group(1) not in INSTRUCTIONS[keyword]:
            raise InvalidInput(f"{source}:{line}: {keyword} does not take the flag {token!r}", line=line)
        flags[m.group(1)] = m.group(2) or ""
        rest = remainder.strip()
    if re.search(r"<<-?[\"']?[A-Za-z_]", rest) and keyword in ("RUN", "COPY", "ADD"):
        raise Unsupported(f"{source}:{line}: {keyword}: heredocs are not supported", line=line)
    json_args = None
    if keyword in JSON_FORMS and rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            json_args = value
        elif keyword != "RUN":
            raise InvalidInput(f"{source}:{line}: {keyword}: malformed JSON array {rest!r}", line=line)
    if not rest and keyword not in ("CMD", "ENTRYPOINT"):
        raise InvalidInput(f"{source}:{line}: {keyword} needs arguments", line=line)
    return Instruction(line, keyword, rest, flags, json_args, source)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Docker-style variable substitution; `\\$` is a literal dollar."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text.startswith("\\$", pos):
            out.append("$")
            pos += 2
            continue
        m = _VAR.match(text, pos)
        if m is None:
            out.append(text[pos])
            pos += 1
            continue
        name = m.group("braced") or m.group("bare")
        value = env.get(name)
        op = m.group("op")
        if op == "-":
            out.append(value if value else expand(m.group("word"), env))
        elif op == "+":
            out.append(expand(m.group("word"), env) if value else "")
        else:
            out.append(value or "")
        pos = m.end()
    return "".join(out)


def words(instr: Instruction, text: str) -> list[str]:
    """Shell-like word splitting with quotes (ENV, LABEL, ARG, COPY sources)."""
    try:
        return shlex.split(text, posix=True)
    except ValueError as exc:
        raise instr.error(f"cannot split {text!r}: {exc}") from exc


def key_values(instr: Instruction, text: str) -> list[tuple[str, str]]:
    """`k=v k2="v 2"`, or the legacy `KEY value with spaces` form of ENV/LABEL."""
    items = words(instr, text)
    if not items:
        raise instr.error("needs KEY=VALUE")
    if "=" not in items[0]:
        key, _, value = text.partition(" ")
        if not value.strip() and instr.keyword != "ARG":
            raise instr.error(f"{key!r} has no value")
        return [(key, " ".join(words(instr, value)) if value.strip() else "")]
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise instr.error(f"expected KEY=VALUE, got {item!r}")
        out.append((key, value))
    return out
