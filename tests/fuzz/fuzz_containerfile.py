"""Fuzz the Containerfile parser and variable expansion: any text either parses into
instructions or is refused with InvalidInput/Unsupported (both name the file and line); and
`expand` never fails on any text and environment."""

from __future__ import annotations

import sys

from _engine import main

from berth.errors import InvalidInput, Unsupported
from berth.images.containerfile import expand, key_values, parse, words

SEEDS = [
    b"FROM base\nRUN echo hi\n",
    b'# escape=`\nFROM base\nRUN echo a `\n  b\nCMD ["sh"]\n',
    b'ARG V=1\nFROM img:$V\nENV A=$V B=${V:-x} C=${V:+y}\nLABEL k="v w"\nCOPY --chown=a:b x /y\n',
    b"FROM base\nRUN <<EOF\nx\nEOF\n",
    b'FROM base\nHEALTHCHECK --interval=5s CMD ["/bin/true"]\nENTRYPOINT ["a", "b"]\nUSER 1:1\n',
    b"FROM base\nADD --checksum=sha256:00 http://x /y\nEXPOSE 80/tcp\n",
    b'FROM base\nVOLUME ["/v"]\nSHELL ["/bin/sh", "-c"]\n',
]


def target(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        instructions = parse(text)
    except (InvalidInput, Unsupported) as exc:
        assert exc.message
        instructions = []
    env = {"V": text[:8], "EMPTY": ""}
    for instr in instructions:
        expand(instr.args, env)
        assert instr.text  # the canonical form (cache keys) always renders
        if instr.keyword in ("ENV", "LABEL", "ARG"):
            try:
                key_values(instr, instr.args)
            except InvalidInput:
                pass
        else:
            try:
                words(instr, instr.args)
            except InvalidInput:
                pass
    expand(text, env)


if __name__ == "__main__":
    sys.exit(main("containerfile", target, SEEDS))
