"""`.containerignore` / `.dockerignore`: which context paths COPY and ADD never see.

Docker's rules: patterns are relative to the context root, `*` and `?` stay within one path
component, `**` spans any number, a pattern that matches a directory excludes everything in it,
`!pattern` re-includes, and the last matching pattern wins.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

NAMES = (".containerignore", ".dockerignore")


def _translate(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i)
            if end < 0:
                out.append(re.escape(c))
            else:
                out.append(pattern[i : end + 1].replace("[!", "[^"))
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class Ignore:
    rules: tuple[tuple[re.Pattern[str], bool], ...] = ()

    def excluded(self, rel: str) -> bool:
        """Is the context-relative path `rel` (no leading ./) excluded?"""
        result = False
        candidates = [rel]
        parent = posixpath.dirname(rel)
        while parent:
            candidates.append(parent)
            parent = posixpath.dirname(parent)
        for regex, negate in self.rules:
            if negate:
                if regex.fullmatch(rel):
                    result = False
            elif any(regex.fullmatch(c) for c in candidates):
                result = True
        return result


def parse_ignore(text: str) -> Ignore:
    rules = []
    for raw in text.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        if negate:
            pattern = pattern[1:].strip()
        pattern = posixpath.normpath(pattern.lstrip("/"))
        if pattern == ".":
            continue
        rules.append((_translate(pattern), negate))
    return Ignore(tuple(rules))


def load_ignore(context: Path) -> Ignore:
    for name in NAMES:
        path = context / name
        if path.is_file():
            return parse_ignore(path.read_text(encoding="utf-8", errors="replace"))
    return Ignore()
