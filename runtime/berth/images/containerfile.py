"""Containerfile/Dockerfile parsing: instructions with their line numbers, and variable expansion.

The parser is strict where guessing would build the wrong image: an unknown instruction, a flag
an instruction does not take, an unterminated heredoc, or a malformed JSON form is an error naming
the file and line. Heredocs (Dockerfile 1.4 syntax, as BuildKit and buildah read them) follow a
shell-form RUN, COPY or ADD line: every word `<<NAME` (`<<-NAME` strips leading tabs, a quoted
`<<"NAME"` or `<<'NAME'` keeps `$VARS` literal) takes the lines after the instruction up to a line
that is exactly NAME; the instruction keeps the line number of its first line.
Expansion (`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`) follows Docker's rules and is done
at build time, against ARG and ENV values in effect at that step.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from berth.errors import InvalidInput

# Instruction -> the flags it accepts.
INSTRUCTIONS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"network", "mount", "security"}),
    "COPY": frozenset({"chown", "chmod", "from", "link"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir"}),
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


# A heredoc word as BuildKit matches it: an optional fd, `<<`, an optional `-`, then the name.
_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]*)")
HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})


@dataclass(frozen=True)
class Heredoc:
    """One here-document: `content` as written (each line ending in a newline)."""

    name: str
    content: str
    expand: bool = True  # False when the name was quoted: `$VARS` stay literal
    chomp: bool = False  # `<<-`: leading tabs are stripped from every line
    fd: int | None = None  # `3<<EOF`: only meaningful to a shell

    @property
    def data(self) -> str:
        """The content as the command or file receives it (tabs stripped for `<<-`)."""
        if not self.chomp:
            return self.content
        return "".join(line.lstrip("\t") for line in self.content.splitlines(keepends=True))


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str
    flags: dict[str, str] = field(default_factory=dict)
    json_args: list[str] | None = None
    source: str = "Containerfile"
    heredocs: tuple[Heredoc, ...] = ()

    def error(self, message: str) -> InvalidInput:
        return InvalidInput(f"{self.source}:{self.line}: {self.keyword}: {message}", line=self.line)

    @property
    def text(self) -> str:
        """The instruction as written (canonical): part of build cache keys."""
        flags = " ".join(f"--{k}={v}" for k, v in sorted(self.flags.items()))
        body = json.dumps(self.json_args) if self.json_args is not None else self.args
        # Heredoc bodies are part of the instruction (and so of its cache key), as written.
        docs = "".join(f"\n{h.content}{h.name}" for h in self.heredocs)
        return " ".join(p for p in (self.keyword, flags, body) if p) + docs


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
        instr = parse_line(logical, start + 1, source)
        markers = heredoc_markers(instr)
        if markers:
            docs = []
            for name, expand_vars, chomp, fd in markers:
                content, i = _heredoc_body(lines, i, name, chomp, instr)
                docs.append(Heredoc(name, content, expand_vars, chomp, fd))
            instr = replace(instr, heredocs=tuple(docs))
        out.append(instr)
    return out


def heredoc_markers(instr: Instruction) -> list[tuple[str, bool, bool, int | None]]:
    """(name, expand, chomp, fd) of each heredoc word of a shell-form RUN, COPY or ADD line."""
    if instr.keyword not in HEREDOC_INSTRUCTIONS or instr.json_args is not None:
        return []
    out = []
    for word in raw_words(instr.args):
        marker = parse_marker(word)
        if marker is None:
            continue
        if marker[0] is None:
            raise instr.error(f"heredoc {word!r} has no usable name")
        out.append((marker[0], marker[1], marker[2], marker[3]))
    return out


def parse_marker(word: str) -> tuple[str | None, bool, bool, int | None] | None:
    """A raw word (quotes kept) as a heredoc marker: (name or None if unusable, expand, chomp, fd)."""
    m = _HEREDOC.fullmatch(word)
    if m is None or not m.group(3):
        return None
    rest = m.group(3)
    try:
        names = shlex.split(rest, posix=True)
    except ValueError:
        return None, False, False, None
    if len(names) != 1 or not names[0]:
        return None, False, False, None
    expand_vars = names[0] == rest  # nothing was quoted or escaped
    return names[0], expand_vars, m.group(2) == "-", int(m.group(1)) if m.group(1) else None


def raw_words(text: str) -> list[str]:
    """Split on unquoted blanks, keeping quotes and backslashes (what a heredoc marker needs)."""
    out: list[str] = []
    word: list[str] = []
    quote = ""
    started = False
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            word.append(c)
            if c == "\\" and quote == '"' and i + 1 < len(text):
                word.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c in " \t\n":
            if started:
                out.append("".join(word))
                word, started = [], False
        else:
            started = True
            word.append(c)
            if c in "'\"":
                quote = c
            elif c == "\\" and i + 1 < len(text):
                word.append(text[i + 1])
                i += 1
        i += 1
    if started:
        out.append("".join(word))
    return out


def _heredoc_body(lines: list[str], i: int, name: str, chomp: bool, instr: Instruction) -> tuple[str, int]:
    """The lines from `i` up to the terminator line NAME (tabs before it allowed with `<<-`)."""
    body: list[str] = []
    while i < len(lines):
        line = lines[i]
        i += 1
        if (line.lstrip("\t") if chomp else line) == name:
            return "".join(f"{x}\n" for x in body), i
        body.append(line)
    raise instr.error(f"heredoc <<{name} is not terminated: no line {name!r} before the end of the file")


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
