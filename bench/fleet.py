"""Whole-fleet deploy of a new revision against the Ansible floor (issue 7).

A lab of 6 hosts over SSH (the inventory `berth lab up` writes); on every host the deployment
tests' images app:1 and app:2 (busybox httpd, tests/integration/deploy_helpers.py). For 1, 3 and
6 of the hosts, two playbooks are timed side by side, alternating, after a warm-up round:

- **deploy**: `playbooks/deploy.yml` as a user runs it (`-e @app.yml -e app_version=N`, the
  default batches: a canary host, then half the fleet at a time), each round a new revision
  (app:1 and app:2 alternate), with an HTTP health gate (100 ms interval, 300 ms minimum healthy);
- **floor**: a playbook of the same shape (a localhost play, the same `serial` batches over the
  same hosts, a localhost play) whose only task per host is `ansible.builtin.ping`.

The health gate's own wait is taken from the rollout report (`timings.gate` per host): batches
run one after the other and the hosts of a batch in parallel, so the wait the fleet pays is the
sum over batches of the longest gate in each. Target: deploy <= 1.5 x floor + that wait.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ansible_lab import alternate, lab_of, load, playbook, prepare_app, write_play
from common import REPO, summary

LAB = "benchflt"
COUNTS = (1, 3, 6)
BATCHES: list[Any] = [1, "50%"]  # deploy.yml's default
APP = """\
berth_app_name: shop
berth_app_keep: 3
berth_app_drain: 0
berth_app_containers:
  - role: web
    image: "app:{{ app_version }}"
    ports: ["8080:80"]
    stop_signal: KILL
    health:
      {http: {port: 80, path: /}, interval: 100ms, timeout: 1s, retries: 3, min_healthy: 300ms, deadline: 10s}
"""


def _floor_play(pattern: str) -> list[dict[str, Any]]:
    """deploy.yml's shape with ping as the only work: what Ansible alone costs for these batches."""
    return [
        {"name": "Start", "hosts": "localhost", "gather_facts": False,
         "tasks": [{"name": "start", "ansible.builtin.set_fact": {"started": "{{ now() }}"}}]},
        {"name": "Batches", "hosts": pattern, "serial": BATCHES, "gather_facts": False,
         "tasks": [{"name": "ping", "ansible.builtin.ping": {}}]},
        {"name": "Report", "hosts": "localhost", "gather_facts": False,
         "tasks": [{"name": "done", "ansible.builtin.debug": {"msg": "done"}}]},
    ]  # fmt: skip


def _batches(hosts: list[str]) -> list[list[str]]:
    """The batches Ansible makes of `hosts` for serial [1, '50%'] (percentages round down, >= 1)."""
    out, rest, sizes = [], list(hosts), [1, max(1, len(hosts) // 2)]
    i = 0
    while rest:
        size = sizes[min(i, len(sizes) - 1)]
        out.append(rest[:size])
        rest = rest[size:]
        i += 1
    return out


def _per_count(lab: Any, hosts: list[str], rounds: int, warmup: int) -> dict[str, Any]:
    work: Path = lab.workdir
    pattern = ",".join(hosts)
    floor = write_play(work / f"floor-{len(hosts)}.yml", _floor_play(pattern))
    version = {"n": 2}
    gate_waits: list[float] = []
    rollout_seconds: list[float] = []

    def measure(side: str, i: int, env: dict[str, str] | None = None) -> float:
        if side == "floor":
            return playbook(lab, floor, env=env)
        version["n"] = 3 - version["n"]  # 1, 2, 1, ...: every deploy makes a new revision
        rid = f"bench-{len(hosts)}-{i}"
        report = work / f"{rid}.json"
        t = playbook(
            lab,
            REPO / "playbooks" / "deploy.yml",
            "-e", f"@{work / 'app.yml'}", "-e", f"app_version={version['n']}",
            "-e", f"berth_rollout_hosts={pattern}", "-e", f"berth_rollout_id={rid}",
            "-e", f"berth_rollout_report={report}",
            env=env,
        )  # fmt: skip
        r = json.loads(report.read_text())
        if not r["completed"] or {h["result"] for h in r["hosts"]} != {"deployed"}:
            raise RuntimeError(f"rollout {rid} did not deploy everywhere: {r}")
        gates = {h["host"]: float(h["timings"].get("gate", 0)) for h in r["hosts"]}
        if i >= warmup:  # (i < 0: the profiling run)
            gate_waits.append(sum(max(gates[h] for h in b) for b in _batches(hosts)))
            rollout_seconds.append(float(r["seconds"]))
        return t

    loads = [load()]
    samples = alternate(["deploy", "floor"], rounds, warmup, measure)
    loads.append(load())
    profiled = len(hosts) == max(COUNTS)  # one profile, of the largest fleet
    profile = {side: _profile(lab, work, side, measure) for side in ("deploy", "floor")} if profiled else None
    out: dict[str, Any] = {
        "batches": [len(b) for b in _batches(hosts)],
        "deploy_s": summary(samples["deploy"]),
        "floor_s": summary(samples["floor"]),
        "gate_wait_s": summary(gate_waits),
        "rollout_report_s": summary(rollout_seconds),
        "load": loads,
        "profile_s": profile,
    }
    d, f, g = out["deploy_s"]["median"], out["floor_s"]["median"], out["gate_wait_s"]["median"]
    out["ratio_to_floor"] = round(d / f, 2)
    out["ratio_to_floor_plus_gate"] = round(d / (f + g), 2)
    out["beyond_floor_and_gate_s"] = round(d - f - g, 2)
    return out


def _profile(lab: Any, work: Path, side: str, measure: Any) -> dict[str, float]:
    """One more untimed run of `side` with the task_clock callback: seconds per task name (its
    batches summed), and `startup`: from the command to the first task."""
    clock = work / f"clock-{side}.json"
    env = {
        "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "bench" / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "task_clock",
        "BENCH_TASK_CLOCK": str(clock),
    }
    started = time.perf_counter()
    measure(side, -1, env)
    total = time.perf_counter() - started
    rows = json.loads(clock.read_text())
    out: dict[str, float] = {}
    for play, task, start, end in rows:
        key = f"{play}: {task}"
        out[key] = round(out.get(key, 0.0) + end - start, 3)
    first, last = rows[0][2], rows[-1][3]
    out["(ansible-playbook start-up, before the first task)"] = round(first - started, 3)
    out["(after the last task)"] = round(started + total - last, 3)
    out["(total)"] = round(total, 3)
    return out


def run(rounds: int = 3, warmup: int = 1) -> dict[str, Any]:
    started = time.monotonic()
    with lab_of(LAB, max(COUNTS)) as lab:
        prepare_app(lab, lab.hosts)
        (lab.workdir / "app.yml").write_text(APP)
        results: dict[str, Any] = {"rounds": rounds, "warmup": warmup, "hosts": {}}
        for n in COUNTS:
            results["hosts"][str(n)] = _per_count(lab, lab.hosts[:n], rounds, warmup)
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def markdown(r: dict[str, Any]) -> str:
    rows = [
        "`playbooks/deploy.yml` of a new revision (app:1 and app:2 alternate) against a playbook of the "
        "same shape whose only task is `ping`, in the same batches (a canary, then half the fleet at a "
        f"time); {r['rounds']} rounds after {r['warmup']} warm-up, alternating. Gate wait = the sum over "
        "batches of the longest `timings.gate` in the batch (from the rollout report); it includes the "
        "health check's 300 ms minimum healthy time.",
        "",
        "| hosts | batches | deploy s | floor (ping) s | gate wait s | deploy / floor "
        "| deploy / (floor + gate) | load |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]

    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"

    for n, h in r["hosts"].items():
        rows.append(
            f"| {n} | {'+'.join(str(b) for b in h['batches'])} | {cell(h['deploy_s'])} "
            f"| {cell(h['floor_s'])} "
            f"| {h['gate_wait_s']['median']:.2f} | {h['ratio_to_floor']:.2f}x "
            f"| **{h['ratio_to_floor_plus_gate']:.2f}x** | {' → '.join(str(x) for x in h['load'])} |"
        )
    rows += [
        "",
        "Target: deploy within 1.5x of (floor + gate wait). Median (min-max) wall time of "
        "`ansible-playbook`; load = the machine's 1-minute load average before and after the row.",
    ]
    n = max(r["hosts"], key=int)
    prof = r["hosts"][n].get("profile_s")
    if prof:
        rows += [
            "",
            f"Where the time goes on {n} hosts: one more run of each with "
            "`bench/callback_plugins/task_clock.py` "
            "(a task's time: from its start to the next task's start, batches summed; tasks under 0.2 s "
            "left out).",
            "",
            "| playbook: task | deploy s | floor s |",
            "|---|---:|---:|",
        ]
        keys = sorted(set(prof["deploy"]) | set(prof["floor"]), key=lambda k: -prof["deploy"].get(k, 0.0))
        for key in keys:
            d, f = prof["deploy"].get(key), prof["floor"].get(key)
            if max(d or 0.0, f or 0.0) < 0.2:
                continue
            rows.append(
                f"| {key} | {'-' if d is None else f'{d:.2f}'} | {'-' if f is None else f'{f:.2f}'} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(json.dumps(run(*(int(a) for a in sys.argv[1:])), indent=2))
