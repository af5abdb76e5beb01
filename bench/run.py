"""`make bench`: every benchmark in one run; figures to bench/results and docs/benchmarks.md.

`.venv/bin/python bench/run.py [SECTION ...]` runs the named sections only (default: all) and
merges their figures into bench/results/results.json; docs/benchmarks.md is regenerated from
every section in that file, so a partial run keeps the other sections' last figures.
`bench/run.py --render` only regenerates the document and the charts from results.json.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from charts import chart_for
from common import REPO, machine

# (results key, module, title, introduction). A module that is not there yet is skipped.
SECTIONS: list[tuple[str, str, str, str]] = [
    (
        "lab_up",
        "lab_up",
        "`berth lab up`: a fleet of real systemd hosts",
        "Hosts boot in parallel. Memory is what each host's cgroup accounts after boot "
        "(systemd, journald, dbus, logind, sshd).",
    ),
    (
        "container_start",
        "container_start",
        "Container start: `berth run` vs podman vs the unshare+chroot floor",
        "Issue 3's benchmark. The same busybox-static tree for every side: Berth's `--rootfs`, "
        "podman's image made from it by `podman import`, the floor's `chroot`.",
    ),
    ("images", "images", "Images", ""),
    (
        "lab_vm",
        "lab_vm",
        "`berth lab up --vm`: cgroup v2 hosts under qemu (software emulation)",
        "One VM at a time on the shared 2-core machine; boot figures move with its load, recorded alongside.",
    ),
    (
        "network",
        "network",
        "Networking",
        "Issue 5's benchmark: what a bridge network adds to `run -d`, each runtime against its own "
        "`--network none`. Profiled, most of Berth's extra was importing pyroute2: its package "
        "`__init__` imports every netlink family it knows (NDB, IPDB, conntrack, WireGuard, ...). "
        "Berth now imports `IPRoute` alone (`berth.network.pyroute`); the `before` row, in the same "
        "run, is the CLI with the whole package imported first. What is left: `pyroute2.iproute.linux` "
        "itself (asyncio and its message classes, about 60-80 ms) and the netlink work (netns, veth "
        "pair, move, rename, MAC, address, up, route: about 40 ms).",
    ),
    (
        "modules",
        "modules",
        "No-op module tasks vs `ansible.builtin.ping`, the Ansible floor",
        "Issue 6's benchmark: `berth.fleet.container` and `berth.fleet.deployment` already in their "
        "desired state, against `ping` on the same hosts in the same run.",
    ),
    (
        "fleet",
        "fleet",
        "Fleet deploy vs the Ansible floor",
        "Issue 7's benchmark: `playbooks/deploy.yml` of a new revision on 1, 3 and 6 lab hosts against a "
        "play that only runs `ping` in the same batches.",
    ),
    (
        "rollback",
        "deploy",
        "Rollback on a host: `berth rollback` vs podman's stop + run",
        "Issue 7's benchmark: from the command to the previous revision serving, seen by a client on "
        "another lab host.",
    ),
    (
        "memory",
        "memory",
        "Memory: peak RSS per operation and what a running container costs the host",
        "Berth has no daemon and keeps no process per container; podman keeps a conmon per container.",
    ),
    (
        "scaling",
        "scaling",
        "Scaling on one host: 1, 10, 50, 200 containers",
        "How start time, listing, a no-op reconcile and memory grow with the containers on one host.",
    ),
]
RESULTS = REPO / "bench" / "results" / "results.json"
IMG_DIR = REPO / "docs" / "img"


def _module(name: str) -> ModuleType | None:
    if not (Path(__file__).resolve().parent / f"{name}.py").exists():
        return None
    return importlib.import_module(name)


def _load() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(RESULTS.read_text())
        return data
    except (OSError, ValueError):
        return {}


def main(argv: list[str]) -> int:
    if argv == ["--render"]:  # the document and charts from results.json, nothing measured
        results = _load()
        for key, mod_name, _, _ in SECTIONS:
            module = _module(mod_name)
            draw = getattr(module, "charts", None) or chart_for(key)
            if key in results and module is not None and draw is not None:
                draw(results[key], IMG_DIR)
        (REPO / "docs" / "benchmarks.md").write_text(render(results))
        return 0
    wanted = set(argv) or {key for key, *_ in SECTIONS}
    unknown = wanted - {key for key, *_ in SECTIONS}
    if unknown:
        print(f"unknown sections: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    results = _load()
    results["machine"] = machine()
    measured = results.setdefault("measured_at", {})
    if not isinstance(measured, dict):  # results of the first layout: one time for all
        measured = results["measured_at"] = {}
    failed: list[str] = []
    ran: list[str] = []
    for key, mod_name, _, _ in SECTIONS:
        if key not in wanted:
            continue
        module = _module(mod_name)
        if module is None:
            continue
        print(f"bench: {key} ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            results[key] = module.run()
        except Exception:
            traceback.print_exc()
            failed.append(key)
            continue
        measured[key] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        ran.append(key)
        print(f"bench: {key} done in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
        charts = getattr(module, "charts", None) or chart_for(key)  # bench/charts.py: the others
        if charts is not None:
            try:
                charts(results[key], IMG_DIR)
            except Exception:
                traceback.print_exc()
    # A run of other sections beside this one may have written results.json meanwhile: merge
    # into what is there now, so that neither run loses the other's figures.
    fresh = _load()
    fresh_measured = fresh.get("measured_at")
    fresh["measured_at"] = fresh_measured = fresh_measured if isinstance(fresh_measured, dict) else {}
    machine_at = fresh.get("machine_at")
    fresh["machine_at"] = machine_at = machine_at if isinstance(machine_at, dict) else {}
    for key in ran:
        fresh[key], fresh_measured[key] = results[key], measured[key]
        machine_at[key] = results["machine"]
    fresh["machine"] = results["machine"]
    results = fresh
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    doc = render(results)
    (REPO / "docs" / "benchmarks.md").write_text(doc)
    print(doc)
    if failed:
        print(f"bench: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _published_sections(doc: Path) -> dict[str, list[str]]:
    """The sections of the published document by title: a section measured on another machine
    (results.json is not in git) is carried over as it stands rather than dropped."""
    try:
        text = doc.read_text()
    except OSError:
        return {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        if current is not None:
            current.append(line)
    return sections


def _machine_text(m: dict[str, Any]) -> str:
    return f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}"


def render(results: dict[str, Any]) -> str:
    published = _published_sections(REPO / "docs" / "benchmarks.md")
    m = results["machine"]
    doc = [
        "# Benchmarks",
        "",
        "Regenerated by `make bench` (`.venv/bin/python bench/run.py [SECTION ...]`). Each section "
        "says when and on what it was measured (a section not rerun is carried over as published); "
        f"the latest run: {_machine_text(m)}. Absolute times on these shared machines are noisy; "
        "ratios measured side by side in one run are the figure.",
        "",
    ]
    measured = results.get("measured_at") or {}
    for key, mod_name, title, intro in SECTIONS:
        module = _module(mod_name)
        if module is None:
            continue
        if key not in results:
            if title in published:
                doc += published[title]
            continue
        when = measured.get(key) if isinstance(measured, dict) else measured
        doc += [f"## {title}", ""]
        on = (results.get("machine_at") or {}).get(key)
        if when:
            doc += [f"Measured at {when}" + (f" on {_machine_text(on)}." if on else "."), ""]
        if intro:
            doc += [intro, ""]
        try:
            doc += [module.markdown(results[key]), ""]
        except Exception as exc:  # figures of an older layout: say so rather than fail
            doc += [f"(figures not renderable: {type(exc).__name__}: {exc}; rerun this section)", ""]
        chart = IMG_DIR / f"{key}.png"
        if chart.exists():
            doc += [f"![{key}](img/{key}.png)", ""]
    return "\n".join(doc)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
