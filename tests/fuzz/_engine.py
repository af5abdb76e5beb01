"""Run a fuzz target for a fixed time: atheris (coverage-guided) when it is installed, else a
hypothesis-driven loop with the same time budget. Either way a crash is a non-zero exit with the
input that caused it written next to the corpus (`crash-<sha256>`)."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path


def main(
    name: str, target: Callable[[bytes], None], seeds: list[bytes], argv: list[str] | None = None
) -> int:
    parser = argparse.ArgumentParser(prog=f"fuzz_{name}")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BERTH_FUZZ_SECONDS") or "60"))
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("BERTH_FUZZ_DIR", "/tmp/berth-fuzz")) / name
    )
    args, rest = parser.parse_known_args(argv)
    args.corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        (args.corpus / f"seed-{i}").write_bytes(seed)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    print(f"fuzz {name}: {engine}, {args.seconds:.0f} s, corpus {args.corpus}", flush=True)
    if engine == "atheris":
        import atheris

        def one(data: bytes) -> None:
            try:
                target(data)
            except Exception:
                _save_crash(args.corpus, data)
                raise

        atheris.instrument_all()  # coverage of the already imported berth modules
        atheris.Setup(
            [
                sys.argv[0],
                f"-max_total_time={int(args.seconds)}",
                "-rss_limit_mb=2048",
                str(args.corpus),
                *rest,
            ],
            one,
        )
        atheris.Fuzz()  # exits the process when the time is up
        return 0
    return _hypothesis_loop(target, seeds, args.seconds, args.corpus)


def _hypothesis_loop(
    target: Callable[[bytes], None], seeds: list[bytes], seconds: float, corpus: Path
) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    deadline = time.monotonic() + seconds
    runs = 0
    mutated = st.sampled_from(seeds).flatmap(
        lambda s: st.lists(
            st.tuples(st.integers(0, max(len(s) - 1, 0)), st.integers(0, 255)), max_size=16
        ).map(lambda edits: _apply(s, edits))
    )

    @settings(max_examples=10**9, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.binary(max_size=4096) | mutated)
    def loop(data: bytes) -> None:
        nonlocal runs
        if time.monotonic() > deadline:
            raise _TimeUp
        runs += 1
        try:
            target(data)
        except Exception:
            _save_crash(corpus, data)
            raise

    try:
        loop()
    except _TimeUp:
        pass
    except Exception:
        traceback.print_exc()
        return 1
    print(f"{runs} inputs, no crash", flush=True)
    return 0


class _TimeUp(BaseException):
    pass


def _apply(seed: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(seed)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out)


def _save_crash(corpus: Path, data: bytes) -> None:
    path = corpus / f"crash-{hashlib.sha256(data).hexdigest()[:16]}"
    path.write_bytes(data)
    print(f"crash input saved: {path}", file=sys.stderr, flush=True)
