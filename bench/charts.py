"""PNG charts for the sections whose module draws none itself (`bench/run.py` asks `chart_for`).

A section module may define `charts(figures, out_dir)`; for the others this module has one
function per results key, each writing `out_dir/<key>.png` (linked from docs/benchmarks.md by
`run.render` when the file exists). matplotlib comes from requirements/dev.txt; without it the
charts are skipped with a message, the figures and the document are not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import pyplot

Chart = Callable[[dict[str, Any], Path], list[Path]]


def _save(plt: Any, fig: Any, out_dir: Path, key: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    path = out_dir / f"{key}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def _bars(
    ax: Any, labels: list[str], summaries: list[dict[str, float]], scale: float, colors: list[str]
) -> None:
    """Median bars with min-max whiskers."""
    med = [s["median"] * scale for s in summaries]
    err = [
        [m - s["min"] * scale for m, s in zip(med, summaries, strict=True)],
        [s["max"] * scale - m for m, s in zip(med, summaries, strict=True)],
    ]
    ax.bar(labels, med, yerr=err, capsize=3, color=colors)


def lab_up(r: dict[str, Any], out_dir: Path) -> list[Path]:
    plt = pyplot()
    if plt is None:
        return []
    hosts = sorted(r, key=int)
    xs = [int(h) for h in hosts]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, style in (("up_seconds", "lab up", "-o"), ("down_seconds", "lab down", "--s")):
        med = [r[h][key]["median"] for h in hosts]
        lo = [m - r[h][key]["min"] for m, h in zip(med, hosts, strict=True)]
        hi = [r[h][key]["max"] - m for m, h in zip(med, hosts, strict=True)]
        axes[0].errorbar(xs, med, yerr=[lo, hi], fmt=style, capsize=3, label=label)
    axes[0].set_xticks(xs)
    axes[0].set_xlabel("hosts")
    axes[0].set_ylabel("s (median, min-max)")
    axes[0].set_title("berth lab up / down")
    axes[0].legend(fontsize=8)
    axes[1].bar(
        [str(x) for x in xs], [r[h]["host_rss_mib"]["median"] for h in hosts], label="RSS", color="C0"
    )
    axes[1].bar(
        [str(x) for x in xs],
        [r[h]["host_page_cache_mib"]["median"] for h in hosts],
        bottom=[r[h]["host_rss_mib"]["median"] for h in hosts],
        label="page cache",
        color="C7",
    )
    axes[1].set_xlabel("hosts in the lab")
    axes[1].set_ylabel("MiB per host")
    axes[1].set_title("memory per booted host")
    axes[1].legend(fontsize=8)
    return _save(plt, fig, out_dir, "lab_up")


def images(r: dict[str, Any], out_dir: Path) -> list[Path]:
    plt = pyplot()
    if plt is None:
        return []
    pairs: list[tuple[str, dict[str, float], str, dict[str, float]]] = []
    for kind in ("plain", "gzip"):
        u = (r.get("unpack") or {}).get(kind)
        if u:
            pairs.append((f"unpack {kind}", u["berth_seconds"], "tar -x", u["tar_seconds"]))
    pull = r.get("pull")
    if pull:
        pairs.append(("pull", pull["berth_pull_seconds"], "skopeo copy", pull["skopeo_copy_seconds"]))
    if not pairs:
        return []
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 4))
    axes = axes if len(pairs) > 1 else [axes]
    for ax, (title, ours, peer_name, peer) in zip(axes, pairs, strict=True):
        _bars(ax, ["berth", peer_name], [ours, peer], 1.0, ["C0", "C1"])
        ax.set_title(f"{title}: {peer['median'] / ours['median']:.2f}x speed of the peer")
        ax.set_ylabel("s (median, min-max)")
        if title == "pull" or "unpack" in title:
            ax.axhline(peer["median"] / 0.8, ls="--", color="C3", lw=1, label="target: 0.8x peer's speed")
            ax.legend(fontsize=8)
    return _save(plt, fig, out_dir, "images")


def network(r: dict[str, Any], out_dir: Path) -> list[Path]:
    plt = pyplot()
    if plt is None:
        return []
    berth = r.get("berth") or {}
    podman = r.get("podman") if isinstance(r.get("podman"), dict) else {}
    modes = list(berth)
    if not modes:
        return []
    fig, ax = plt.subplots(figsize=(7, 4))
    x = range(len(modes))
    ax.bar(
        [i - 0.2 for i in x],
        [berth[m]["median"] * 1000 for m in modes],
        0.4,
        label="berth run -d",
        color="C0",
    )
    shared = [m for m in modes if isinstance((podman or {}).get(m), dict) and "median" in podman[m]]
    if shared:
        ax.bar(
            [modes.index(m) + 0.2 for m in shared],
            [podman[m]["median"] * 1000 for m in shared],
            0.4,
            label="podman run -d",
            color="C1",
        )
    ax.set_xticks(list(x), [m.replace("_", " + ") for m in modes])
    ax.set_ylabel("ms (median)")
    ax.set_title("container start by network mode")
    ax.legend(fontsize=8)
    return _save(plt, fig, out_dir, "network")


def fleet(r: dict[str, Any], out_dir: Path) -> list[Path]:
    """Deploy wall time against the ping floor plus the gate wait, per fleet size."""
    plt = pyplot()
    rows = r.get("hosts") or {}
    if plt is None or not rows:
        return []
    sizes = sorted(rows, key=int)
    x = range(len(sizes))
    fig, ax = plt.subplots(figsize=(7, 4))
    deploy = [rows[h]["deploy_s"]["median"] for h in sizes]
    floor = [rows[h]["floor_s"]["median"] for h in sizes]
    gate = [rows[h]["gate_wait_s"]["median"] for h in sizes]
    ax.bar([i - 0.2 for i in x], deploy, 0.4, label="deploy.yml", color="C0")
    ax.bar([i + 0.2 for i in x], floor, 0.4, label="ping floor", color="C1")
    ax.bar([i + 0.2 for i in x], gate, 0.4, bottom=floor, label="+ gate wait", color="C2")
    ax.plot([i + 0.2 for i in x], [1.5 * (f + g) for f, g in zip(floor, gate, strict=True)], "r_", ms=30,
            label="target: 1.5x (floor + gate)")  # fmt: skip
    for i, h in enumerate(sizes):
        ax.annotate(
            f"{rows[h]['ratio_to_floor_plus_gate']:.2f}x", (i - 0.2, deploy[i]), ha="center", va="bottom"
        )
    ax.set_xticks(list(x), [f"{h} host{'s' if h != '1' else ''}" for h in sizes])
    ax.set_ylabel("s (median)")
    ax.set_title("fleet deploy vs the Ansible floor")
    ax.legend(fontsize=8)
    return _save(plt, fig, out_dir, "fleet")


def rollback(r: dict[str, Any], out_dir: Path) -> list[Path]:
    """Time to serving the previous version, per side, against the 0.3 s target."""
    plt = pyplot()
    sides = [s for s in ("berth", "podman_bridge", "podman_host") if isinstance(r.get(s), dict)]
    if plt is None or not sides:
        return []
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"berth": "berth rollback", "podman_bridge": "podman stop+run\n(bridge)",
              "podman_host": "podman stop+run\n(host network)"}  # fmt: skip
    _bars(ax, [labels[s] for s in sides], [r[s]["to_serving_s"] for s in sides], 1.0,
          ["C0", "C1", "C7"][: len(sides)])  # fmt: skip
    ax.axhline(0.3, ls="--", color="C3", lw=1, label="target: 0.3 s")
    ax.set_ylabel("s to serving (median, min-max)")
    ax.set_title("rollback to the previous version")
    ax.legend(fontsize=8)
    return _save(plt, fig, out_dir, "rollback")


CHARTS: dict[str, Chart] = {
    "lab_up": lab_up,
    "images": images,
    "network": network,
    "fleet": fleet,
    "rollback": rollback,
}


def chart_for(key: str) -> Chart | None:
    """This module's chart for section `key`, if it has one."""
    return CHARTS.get(key)
