"""How long `berth lab up` takes for 1, 3 and 6 hosts, and what a booted host costs in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import berth_json, summary, timed

LAB = "bench"


def host_memory(cgroup_dirs: list[str]) -> dict[str, int]:
    """A host's memory as its cgroup counts it (v1 memory.stat totals, or v2 memory.current)."""
    for d in cgroup_dirs:
        stat = Path(d) / "memory.stat"
        if (Path(d) / "memory.usage_in_bytes").exists():
            fields = dict(line.split() for line in stat.read_text().splitlines())
            return {"rss": int(fields["total_rss"]), "cache": int(fields["total_cache"])}
        if (Path(d) / "memory.current").exists():
            fields = dict(line.split() for line in stat.read_text().splitlines())
            return {"rss": int(fields["anon"]), "cache": int(fields["file"])}
    return {"rss": 0, "cache": 0}


def run(rounds: int = 3, sizes: tuple[int, ...] = (1, 3, 6)) -> dict[str, Any]:
    import json

    from berth.lab.config import LabPaths, state_root

    results: dict[str, Any] = {}
    berth_json("lab", "down", "--name", LAB)
    for size in sizes:
        up_times, down_times, rss, cache = [], [], [], []
        for _ in range(rounds):
            up_times.append(
                timed(lambda size=size: berth_json("lab", "up", "--name", LAB, "--hosts", str(size)))
            )
            state = json.loads(LabPaths(LAB, state_root()).state_file.read_text())
            for host in state["hosts"]:
                mem = host_memory(host["cgroups"])
                rss.append(mem["rss"] / 2**20)
                cache.append(mem["cache"] / 2**20)
            down_times.append(timed(lambda: berth_json("lab", "down", "--name", LAB)))
        results[f"{size}"] = {
            "hosts": size,
            "up_seconds": summary(up_times),
            "down_seconds": summary(down_times),
            "host_rss_mib": summary(rss),
            "host_page_cache_mib": summary(cache),
        }
    return results


def markdown(results: dict[str, Any]) -> str:
    rows = [
        "| hosts | `lab up` median (min-max) s | `lab down` median s | RSS per host MiB "
        "| page cache per host MiB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        up, down = r["up_seconds"], r["down_seconds"]
        rows.append(
            f"| {r['hosts']} | {up['median']:.2f} ({up['min']:.2f}-{up['max']:.2f}) | {down['median']:.2f} "
            f"| {r['host_rss_mib']['median']:.1f} | {r['host_page_cache_mib']['median']:.1f} |"
        )
    return "\n".join(rows)
