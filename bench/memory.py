"""Memory: the runtime's peak RSS per operation, and what a running container costs the host.

Both measured inside one lab host (`berth lab up --name benchmem --hosts 1`), podman set up as
bench/container_start.py does it (runc, `--network none`, its store under /var/lib/berth).

Peak RSS per operation: `ru_maxrss` of the command's process as `wait4()` reports it (the
process and the children it waited for), the same as `/usr/bin/time -v`'s "Maximum resident set
size". Processes the command leaves to run on (Berth's shim is started by systemd; podman's conmon
double-forks) are not in it: what stays resident is the second table's subject.

Per-container cost: N idle containers (busybox `sleep`) started on each side in turn, with every
process of the host measured before and after by PSS (`/proc/PID/smaps_rollup`: shared pages
split between their users, so nothing is counted twice), the containers' own processes and the
driver excluded. Berth has no daemon and, under systemd, no resident shim: its cost is systemd's
bookkeeping of one more unit (PID 1's heap) and what the kernel charges the host's memory cgroup.
podman's is a conmon per container, plus the same systemd bookkeeping for its scope.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import BERTH, proc_kib, pyplot, summary

LAB = "benchmem"


def run(rounds: int = 5, warmup: int = 1, containers: int = 10, reps: int = 3) -> dict[str, Any]:
    from inlab import load, run_inside

    before = load()
    cfg = {"rounds": rounds, "warmup": warmup, "containers": containers, "reps": reps}
    results = run_inside(LAB, "memory.py", cfg, timeout=1800)
    results["machine_load"] = {"before": before, "after": load()}
    return results


# -- inside the lab host ------------------------------------------------------------------------
def peak(cmd: list[str], stdin: bytes | None = None) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of `cmd` and the children it waited for; raises on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    err = proc.stderr.read() if proc.stderr is not None else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def _operations(rounds: int, warmup: int) -> dict[str, Any]:
    from container_start import IMAGE, ROOTFS, _kill_first, _podman, _quiet
    from inlab import ROOTFS_TAR

    podman = _podman("systemd")
    ref = {"berth": "memref-berth", "podman": "memref-podman"}
    _quiet([BERTH, "run", "-d", "--name", ref["berth"], "--rootfs", ROOTFS, "sleep", "100000"])
    _quiet([*podman, "run", "-d", "--name", ref["podman"], "--network", "none", IMAGE, "sleep", "100000"])
    # A deployment of one role, deployed once untimed: the timed deploys of the same spec are no-ops.
    _quiet([BERTH, "image", "import", "-t", "memapp:1", "-c", 'CMD ["sleep", "100000"]', ROOTFS_TAR])
    deploy_doc = {
        "name": "memapp",
        "containers": [{"role": "app", "image": "memapp:1", "stop_signal": "KILL"}],
    }
    Path("/run/memapp.json").write_text(json.dumps(deploy_doc))
    _quiet([BERTH, "deploy", "-f", "/run/memapp.json", "memapp"])
    apply_doc = json.dumps(
        {"state": "started", "spec": {"name": "memapply", "rootfs": ROOTFS, "command": ["sleep", "100000"]}}
    ).encode()
    first = subprocess.run(
        [BERTH, "container", "apply", "-f", "-", "--json"], input=apply_doc, capture_output=True, check=True
    )
    if not json.loads(first.stdout)["ok"]:
        raise RuntimeError(f"container apply failed: {first.stdout.decode()}")

    def noop(cmd: list[str], stdin: bytes | None = None) -> Any:
        """A command that must change nothing: its `--json` says so, checked once."""
        out = subprocess.run(cmd, input=stdin, capture_output=True, check=True)
        env = json.loads(out.stdout)
        if not env.get("ok") or env.get("changed"):
            raise RuntimeError(f"{' '.join(cmd)} was not a no-op: {out.stdout.decode()[-2000:]}")
        return lambda i: peak(cmd, stdin)

    # name: {side: fn(i) -> (seconds, rss)}; cleanup untimed where the operation creates something
    def run_d(side: str) -> Any:
        def go(i: int) -> tuple[float, int]:
            name = f"memop-{side}-{i}"
            if side == "berth":
                result = peak([BERTH, "run", "-d", "--name", name, "--rootfs", ROOTFS, "sleep", "100000"])
            else:
                result = peak(
                    [*podman, "run", "-d", "--name", name, "--network", "none", IMAGE, "sleep", "100000"]
                )
            _kill_first(side, [name])
            _quiet([BERTH, "rm", "-f", name] if side == "berth" else [*podman, "rm", "-f", "-t", "0", name])
            return result

        return go

    def image_import(side: str) -> Any:
        def go(i: int) -> tuple[float, int]:
            tag = f"memimp{i}:1"
            if side == "berth":
                result = peak([BERTH, "image", "import", "-t", tag, ROOTFS_TAR])
                _quiet([BERTH, "image", "rm", tag])
                _quiet([BERTH, "image", "prune"], check=False)
            else:
                result = peak([*podman, "import", "-q", ROOTFS_TAR, f"localhost/{tag}"])
                _quiet([*podman, "rmi", f"localhost/{tag}"])
            return result

        return go

    ops: dict[str, dict[str, Any]] = {
        "run_d": {"berth": run_d("berth"), "podman": run_d("podman")},
        "ps": {
            "berth": lambda i: peak([BERTH, "ps"]),
            "podman": lambda i: peak([*podman, "ps"]),
        },
        "inspect": {
            "berth": lambda i: peak([BERTH, "inspect", ref["berth"]]),
            "podman": lambda i: peak([*podman, "inspect", ref["podman"]]),
        },
        "image_import": {"berth": image_import("berth"), "podman": image_import("podman")},
        "container_apply_noop": {
            "berth": noop([BERTH, "container", "apply", "-f", "-", "--json"], apply_doc)
        },
        "deploy_noop": {"berth": noop([BERTH, "deploy", "-f", "/run/memapp.json", "memapp", "--json"])},
        "version": {
            "berth": lambda i: peak([BERTH, "version"]),
            "podman": lambda i: peak([*podman, "version"]),
        },
    }
    out: dict[str, Any] = {}
    try:
        for op, sides in ops.items():
            samples: dict[str, list[tuple[float, int]]] = {s: [] for s in sides}
            names = list(sides)
            for i in range(warmup + rounds):
                k = i % len(names)
                for side in names[k:] + names[:k]:
                    value = sides[side](i)
                    if i >= warmup:
                        samples[side].append(value)
            out[op] = {
                side: {
                    "peak_rss_mib": summary([r / 2**20 for _, r in values]),
                    "seconds": summary([t for t, _ in values]),
                }
                for side, values in samples.items()
            }
    finally:
        subprocess.run([BERTH, "undeploy", "memapp"], capture_output=True, check=False)
        for name in (ref["berth"], "memapply"):
            subprocess.run([BERTH, "kill", name], capture_output=True, check=False)
            subprocess.run([BERTH, "rm", "-f", name], capture_output=True, check=False)
        subprocess.run([*podman, "rm", "-f", "-t", "0", ref["podman"]], capture_output=True, check=False)
    return out


# -- per-container cost -------------------------------------------------------------------------
def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def _pss(pid: int) -> int:
    return proc_kib(pid, "smaps_rollup", "Pss")[0]


def host_processes() -> dict[int, tuple[str, int]]:
    """pid -> (what, PSS bytes) for every process of the host but the driver and the containers.

    A container's own process is busybox `sleep`; `what` is the process's comm, with
    Berth's shim (a Python process running berth/shim) named as such.
    """
    me = os.getpid()
    out: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        argv = _cmdline(pid)
        try:
            with open(f"/proc/{pid}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        if not argv:  # a kernel thread, or gone
            continue
        if comm == "sleep":  # the containers' own: nothing else of the host runs `sleep`
            continue
        what = "berth shim" if any("berth/shim" in a for a in argv) else comm
        out[pid] = (what, _pss(pid))
    return out


def _container_pids(tag: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _cmdline(int(entry))[-2:] == ["sleep", tag]:
            pids.append(int(entry))
    return pids


def _per_container(containers: int, reps: int) -> dict[str, Any]:
    from container_start import IMAGE, ROOTFS, _anon, _kill_first, _memcg, _podman, _quiet

    podman = _podman("systemd")
    sides = {
        "berth": (
            lambda n, tag: [BERTH, "run", "-d", "--name", n, "--rootfs", ROOTFS, "sleep", tag],
            lambda names: [BERTH, "rm", "-f", *names],
        ),
        "podman": (
            lambda n, tag: [*podman, "run", "-d", "--name", n, "--network", "none", IMAGE, "sleep", tag],
            lambda names: [*podman, "rm", "-f", "-t", "0", *names],
        ),
    }
    samples: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    order = list(sides)
    for rep in range(reps):
        for side in order[rep % 2 :] + order[: rep % 2]:
            start_cmd, rm_cmd = sides[side]
            tag = str(888000 + rep * 10 + order.index(side))
            names = [f"pc-{side}-{rep}-{i}" for i in range(containers)]
            time.sleep(1.0)
            before = host_processes()
            cg_before = _memcg()
            try:
                for n in names:
                    _quiet(start_cmd(n, tag))
                time.sleep(2.0)
                after = host_processes()
                cg_after = _memcg()
                own = _container_pids(tag)
                own_anon = sum(_anon(p) for p in own)
            finally:
                _kill_first(side, names)
                _quiet(rm_cmd(names), check=False)
            if len(own) != containers:
                raise RuntimeError(f"{side}: {len(own)} container processes, expected {containers}")
            by_what: dict[str, float] = {}
            for what, pss in after.values():
                by_what[what] = by_what.get(what, 0) + pss
            for what, pss in before.values():
                by_what[what] = by_what.get(what, 0) - pss
            new = [what for pid, (what, _) in after.items() if pid not in before]
            resident: dict[str, int] = {}
            for what in new:
                resident[what] = resident.get(what, 0) + 1
            samples[side].append(
                {
                    "pss_delta": sum(by_what.values()),
                    "by_process": by_what,
                    "new_processes": resident,
                    "cgroup_usage_delta": cg_after["usage"] - cg_before["usage"],
                    "container_anon": own_anon,
                }
            )
    out: dict[str, Any] = {"containers": containers, "repetitions": reps, "unit": "KiB per container"}
    for side, reps_data in samples.items():

        def kib(values: list[float]) -> float:
            return round(statistics.median(values) / 1024 / containers, 1)

        whats = sorted({w for r in reps_data for w in r["by_process"]})
        by_process = {w: kib([r["by_process"].get(w, 0) for r in reps_data]) for w in whats}
        out[side] = {
            "pss_overhead": kib([r["pss_delta"] for r in reps_data]),
            "pss_overhead_min": round(min(r["pss_delta"] for r in reps_data) / 1024 / containers, 1),
            "pss_overhead_max": round(max(r["pss_delta"] for r in reps_data) / 1024 / containers, 1),
            "by_process": {w: v for w, v in by_process.items() if v},
            "resident_processes_per_container": {
                w: round(c / containers, 2) for w, c in reps_data[0]["new_processes"].items()
            },
            "cgroup_usage": kib([r["cgroup_usage_delta"] for r in reps_data]),
            "container_anon": kib([r["container_anon"] for r in reps_data]),
        }
    return out


def inner(cfg: dict[str, Any]) -> dict[str, Any]:
    from inlab import cleanup_podman, host_versions, load, prepare_images

    prepare_images()
    try:
        ops_load = load()
        ops = _operations(int(cfg["rounds"]), int(cfg["warmup"]))
        pc_load = load()
        per = _per_container(int(cfg["containers"]), int(cfg["reps"]))
    finally:
        cleanup_podman()
    return {
        "operations": ops,
        "per_container": per,
        "load": {"operations": ops_load, "per_container": pc_load, "end": load()},
        "versions": host_versions(),
    }


# -- report -------------------------------------------------------------------------------------
OP_LABELS = {
    "run_d": ("`berth run -d --rootfs R sleep`", "`podman run -d --network none IMG sleep`"),
    "ps": ("`berth ps`", "`podman ps`"),
    "inspect": ("`berth inspect C`", "`podman inspect C`"),
    "image_import": ("`berth image import` (rootfs tar, 2 MiB)", "`podman import` (same tar)"),
    "container_apply_noop": ("`berth container apply` no-op (the container module's call)", ""),
    "deploy_noop": ("`berth deploy` no-op (same spec again)", ""),
    "version": ("reference: `berth version`", "`podman version`"),
}


def _fmt(s: dict[str, Any] | None, key: str = "peak_rss_mib") -> str:
    return "-" if s is None else f"{s[key]['median']:.1f}"


def _secs(s: dict[str, Any] | None) -> str:
    return "-" if s is None else f"{s['seconds']['median']:.3f}"


def markdown(r: dict[str, Any]) -> str:
    ops, per = r["operations"], r["per_container"]
    v = r["versions"]
    rows = [
        f"Inside one lab host ({v.get('systemd', '?')}, cgroups {v.get('cgroups', '?')}); "
        f"{v.get('podman', '')} with {v.get('runc', 'runc')}. Machine load (1/5/15 min) before the "
        f"section: {r['machine_load']['before']}, after: {r['machine_load']['after']}.",
        "",
        "### Peak RSS per operation",
        "",
        "`ru_maxrss` of the command (and the children it waited for) from `wait4()`, as `/usr/bin/time -v` "
        f"reports it; median of {ops['ps']['berth']['peak_rss_mib']['n']} rounds after a warm-up, sides "
        "alternating. Processes left running (Berth's shim runs under systemd, podman's conmon "
        "double-forks) are in the next table, not here. Load at the start: "
        f"{r['load']['operations']}.",
        "",
        "| operation | Berth MiB | podman MiB | Berth / podman | Berth s | podman s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, (bl, pl) in OP_LABELS.items():
        if op not in ops:
            continue
        b, p = ops[op].get("berth"), ops[op].get("podman")
        ratio = f"{b['peak_rss_mib']['median'] / p['peak_rss_mib']['median']:.2f}x" if b and p else "-"
        label = bl + (f" vs {pl}" if pl else "")
        rows.append(f"| {label} | {_fmt(b)} | {_fmt(p)} | {ratio} | {_secs(b)} | {_secs(p)} |")
    b, p = per["berth"], per["podman"]
    whats = sorted(
        set(b["by_process"]) | set(p["by_process"]),
        key=lambda w: -max(abs(b["by_process"].get(w, 0)), abs(p["by_process"].get(w, 0))),
    )

    def resident(side: dict[str, Any]) -> str:
        found = side["resident_processes_per_container"]
        return ", ".join(f"{n:g} {w}" for w, n in sorted(found.items())) or "none"

    ratio = b["pss_overhead"] / p["pss_overhead"] if p["pss_overhead"] else 0
    b_cg, p_cg = b["cgroup_usage"] - b["container_anon"], p["cgroup_usage"] - p["container_anon"]
    rows += [
        "",
        f"### What a running container costs the host besides its own processes ({per['containers']} idle "
        f"`sleep` containers, median of {per['repetitions']})",
        "",
        "PSS of every process of the host but the containers' own and the benchmark's driver, before and "
        "after starting the containers, divided by their number; by process name below. The host's "
        "memory cgroup delta adds what the kernel charges (cgroups, mount and namespace structures, "
        f"page cache of state files and logs). Load at the start: {r['load']['per_container']}.",
        "",
        "| KiB per container | Berth | podman |",
        "|---|---:|---:|",
        "| **PSS of everything but the container** (min-max) "
        f"| **{b['pss_overhead']:.0f}** "
        f"({b['pss_overhead_min']:.0f}-{b['pss_overhead_max']:.0f}) "
        f"| **{p['pss_overhead']:.0f}** "
        f"({p['pss_overhead_min']:.0f}-{p['pss_overhead_max']:.0f}) |",
    ]
    for w in whats[:8]:
        rows.append(f"| of which `{w}` | {b['by_process'].get(w, 0):.1f} | {p['by_process'].get(w, 0):.1f} |")
    rows += [
        f"| processes that stay resident per container | {resident(b)} | {resident(p)} |",
        f"| host memory cgroup usage delta | {b['cgroup_usage']:.0f} | {p['cgroup_usage']:.0f} |",
        f"| the container's own process (anonymous RSS) | {b['container_anon']:.0f} "
        f"| {p['container_anon']:.0f} |",
        f"| host memory cgroup delta minus the container's own | {b_cg:.0f} | {p_cg:.0f} |",
        "",
        "Berth / podman: PSS of the host's processes besides the container "
        f"**{ratio:.{3 if ratio < 0.1 else 2}f}x**; "
        f"host memory cgroup besides the container **{b_cg / p_cg if p_cg else 0:.2f}x**. "
        "Under systemd Berth's shim exits once the container's process runs (systemd is its "
        "parent), so nothing of Berth stays resident; systemd's own bookkeeping of one more unit is "
        "the `systemd` row (small here: PID 1's heap reuses what the units of the first table freed; "
        "the scaling section shows it past that, at 200 units). Rootful podman without `--init` or "
        "a pod starts no catatonit or pause process: conmon is all it keeps. Rows of a few KiB move "
        "with the host's own activity (journald, sshd, the bus), either way.",
    ]
    return "\n".join(rows)


def charts(r: dict[str, Any], out_dir: Path) -> list[Path]:
    plt = pyplot()
    if plt is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    ops, per = r["operations"], r["per_container"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    keys = [k for k in OP_LABELS if k in ops]
    labels = {
        "run_d": "run -d",
        "ps": "ps",
        "inspect": "inspect",
        "image_import": "image import",
        "container_apply_noop": "container apply\n(no-op)",
        "deploy_noop": "deploy\n(no-op)",
        "version": "version",
    }
    x = range(len(keys))
    for offset, side, color in ((-0.2, "berth", "C0"), (0.2, "podman", "C1")):
        vals = [ops[k][side]["peak_rss_mib"]["median"] if side in ops[k] else 0 for k in keys]
        axes[0].bar([i + offset for i in x], vals, 0.4, label=side, color=color)
    axes[0].set_xticks(list(x), [labels[k] for k in keys], fontsize=8)
    axes[0].set_ylabel("peak RSS, MiB (median)")
    axes[0].set_title("peak RSS of the command per operation")
    axes[0].legend(fontsize=8)
    sides = ["berth", "podman"]
    whats = sorted({w for s in sides for w in per[s]["by_process"] if per[s]["by_process"][w] > 0})
    pss_x = [0.0, 1.2]
    bottom = [0.0, 0.0]
    for i, w in enumerate(whats):
        vals = [max(per[s]["by_process"].get(w, 0), 0) for s in sides]
        axes[1].bar(pss_x, vals, 0.5, bottom=bottom, label=f"PSS: {w}", color=f"C{(i + 2) % 10}")
        bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
    cg = [max(per[s]["cgroup_usage"] - per[s]["container_anon"], 0) for s in sides]
    axes[1].bar(
        [x + 0.5 for x in pss_x],
        cg,
        0.5,
        color="C7",
        hatch="//",
        label="host memory cgroup delta\nminus the container's own",
    )
    axes[1].set_xticks([x + 0.25 for x in pss_x], [f"{s}\nprocesses | cgroup" for s in sides], fontsize=8)
    axes[1].set_ylabel("KiB per container")
    axes[1].set_title(
        f"host cost per idle container besides its own\nprocess ({per['containers']} containers)", fontsize=10
    )
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "memory.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "inner":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        print(json.dumps(inner(json.loads(sys.argv[2]))))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        print(json.dumps(run(), indent=2))
