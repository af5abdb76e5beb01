"""Shared benchmark plumbing: timing rounds, summaries, and where the figures were measured."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("VENV", REPO / ".venv"))
BERTH = str(VENV / "bin" / "berth")


def machine() -> dict[str, Any]:
    """What a figure was measured on: absolute times on a shared 2-core VM are noisy."""
    with open("/proc/cpuinfo") as fh:
        model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
        "n": len(samples),
    }


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def berth_json(*args: str) -> dict[str, Any]:
    proc = subprocess.run([BERTH, *args, "--json"], capture_output=True, text=True, check=False)
    out: dict[str, Any] = json.loads(proc.stdout)
    if not out.get("ok"):
        print(f"berth {' '.join(args)} failed: {out.get('error')}", file=sys.stderr)
        raise SystemExit(1)
    return out


def pyplot() -> Any | None:
    """matplotlib's pyplot on the Agg backend (files only), or None when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed: no charts", file=sys.stderr)
        return None
    return plt


def proc_kib(pid: int, name: str, *keys: str) -> list[int]:
    """Bytes from `Key: N kB` lines of /proc/PID/`name` (status, smaps_rollup), one per key;
    0 for a key not there or a process gone."""
    found = dict.fromkeys(keys, 0)
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            for line in fh:
                key = line.split(":", 1)[0]
                if key in found:
                    found[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return [found[k] for k in keys]
