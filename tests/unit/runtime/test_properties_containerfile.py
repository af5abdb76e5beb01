"""Property: any text is either a Containerfile or refused with a clear InvalidInput/Unsupported,
and variable expansion never fails. The same invariant as tests/fuzz/fuzz_containerfile.py (which
`make fuzz` runs coverage-guided for a fixed time), here with hypothesis on every `make test`:
Containerfile-shaped text built from keywords, flags, quotes, escapes and variables, and the
fuzz target's seeds mutated."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))
from fuzz_containerfile import SEEDS, target

KEYWORDS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD", "ENTRYPOINT",
            "EXPOSE", "LABEL", "VOLUME", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "ONBUILD", "MAINTAINER",
            "from", "Run", "BOGUS", ""]  # fmt: skip
PIECES = ["base", "img:$V", "${V:-x}", "${V:+y}", "${", "$", "}", "--from=0", "--chown=a:b", "--chmod=755",
          "--checksum=sha256:00", "--interval=5s", "--target", "AS", "as", "x", "/y", "A=1", "B=\"v w\"",
          "'q", '"', "\\", "`", "[", '["sh", "-c"]', '["a",', "<<EOF", "EOF", "<<-X", "#", "# escape=`",
          "# syntax=x", "80/tcp", "\t", "é", "\x00"]  # fmt: skip
LINE = st.builds(
    lambda kw, parts, cont: " ".join([kw, *parts]) + (" \\" if cont else ""),
    st.sampled_from(KEYWORDS),
    st.lists(st.sampled_from(PIECES), max_size=6),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=8))
def test_containerfile_shaped_text_parses_or_is_refused(lines: list[str]) -> None:
    target("\n".join(lines).encode())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SEEDS), st.integers(min_value=0, max_value=200), st.binary(max_size=12))
def test_mutated_seeds_parse_or_are_refused(seed: bytes, at: int, insert: bytes) -> None:
    at %= len(seed) + 1
    target(seed[:at] + insert + seed[at:])
    target(seed[:at])  # cut short anywhere
