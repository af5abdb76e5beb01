"""No-op module runs against `ansible.builtin.ping`, the Ansible floor (issue 6).

One lab of 6 hosts, reached over SSH with the inventory `berth lab up` writes (as the integration
tests do; Ansible's defaults otherwise: no pipelining, SSH ControlPersist). On every host a
container (`berth.fleet.container`, the busybox rootfs, `sleep`) and a deployment
(`berth.fleet.deployment`, the deployment tests' httpd app:1 with an HTTP health gate) are put in
their desired state once; then, for 1, 3 and 6 of the hosts, three plays are timed side by side:
N tasks of the container module, N of the deployment module, N of `ping`, every task a no-op.

Per task: a play of 2k tasks minus a play of k tasks, divided by k, so that ansible-playbook's own
start-up, the inventory, the first SSH connection and the play's end cancel out. Each round runs
every side (k and 2k) in an order rotated by one per round, after a warm-up round that is dropped.

Where the time goes (one host, timed inside it): the runtime's no-op alone (`berth container
apply` / `berth deploy` with the same request on stdin), `berth version` (Python start + CLI), and
the size of the module payloads Ansible ships per task (AnsiballZ).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from ansible_lab import alternate, lab_of, load, playbook, prepare_app, write_play
from common import REPO, summary

LAB = "benchmod"
COUNTS = (1, 3, 6)
PIPELINING_COUNTS = (1, 6)  # the same with ANSIBLE_PIPELINING: one SSH command per task, not five
ROOTFS = "/var/lib/berth/test-rootfs"
CONTAINER = {"name": "bench-noop", "rootfs": ROOTFS, "command": ["sleep", "1000000"]}
HEALTH = {"http": {"port": 80, "path": "/"}, "interval": "100ms", "timeout": "1s", "retries": 3,
          "min_healthy": "300ms", "deadline": "10s"}  # fmt: skip
DEPLOYMENT = {
    "name": "bench-noop",
    "keep": 2,
    "drain": 0,
    "containers": [
        {"role": "web", "image": "app:1", "ports": ["8090:80"], "health": HEALTH, "stop_signal": "KILL"}
    ],
}
SIDES = {
    "ping": ("ansible.builtin.ping", {}),
    "container": ("berth.fleet.container", CONTAINER),
    "deployment": ("berth.fleet.deployment", DEPLOYMENT),
}


def _play(hosts: list[str], module: str, args: dict[str, Any], tasks: int) -> list[dict[str, Any]]:
    body = [{"name": f"{module} #{i}", module: args} for i in range(tasks)]
    return [{"name": "bench", "hosts": ",".join(hosts), "gather_facts": False, "tasks": body}]


def _setup(lab: Any) -> dict[str, Any]:
    """Container and deployment in their desired state on every host; checked to be no-ops."""
    from rootfs import build_rootfs

    prepare_app(lab, lab.hosts)
    for host in lab.hosts:
        build_rootfs(lab, host, ROOTFS)
    work: Path = lab.workdir
    tasks = [
        {"name": "container", "berth.fleet.container": CONTAINER, "register": "c"},
        {"name": "deployment", "berth.fleet.deployment": DEPLOYMENT, "register": "d"},
        {"name": "save", "delegate_to": "localhost", "ansible.builtin.copy": {
            "content": "{{ {'c': c.changed, 'd': d.changed} | to_json }}",
            "dest": str(work / "{{ inventory_hostname }}.json")}},
    ]  # fmt: skip
    book = write_play(work / "setup.yml", [{"hosts": "berth_lab", "gather_facts": False, "tasks": tasks}])
    playbook(lab, book)
    playbook(lab, book)
    changed = {h: json.loads((work / f"{h}.json").read_text()) for h in lab.hosts}
    if any(v["c"] or v["d"] for v in changed.values()):
        raise RuntimeError(f"the second run of the setup play changed something: {changed}")
    return changed


def _per_task(
    lab: Any, hosts: list[str], rounds: int, warmup: int, k: int, pipelining: bool = False
) -> dict[str, Any]:
    work: Path = lab.workdir
    env = {"ANSIBLE_PIPELINING": "True" if pipelining else "False"}
    books = {}
    for side, (module, args) in SIDES.items():
        for n in (k, 2 * k):
            books[(side, n)] = write_play(
                work / f"{side}-{len(hosts)}-{n}.yml", _play(hosts, module, args, n)
            )

    clock = work / "clock.json"
    env.update(
        ANSIBLE_CALLBACK_PLUGINS=str(REPO / "bench" / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="task_clock",
        BENCH_TASK_CLOCK=str(clock),
    )

    def measure(side: str, i: int) -> dict[str, Any]:
        order = (k, 2 * k) if i % 2 == 0 else (2 * k, k)
        t, tasks = {}, []
        for n in order:
            t[n] = playbook(lab, books[(side, n)], env=env)
            # every task but the first (which opens the SSH connections), as the callback saw it
            tasks += [end - start for _, _, start, end in json.loads(clock.read_text())[1:]]
        return {"play_k": t[k], "play_2k": t[2 * k], "per_task": (t[2 * k] - t[k]) / k, "tasks": tasks}

    loads = [load()]
    samples = alternate(list(SIDES), rounds, warmup, measure)
    loads.append(load())
    out: dict[str, Any] = {"k": k, "pipelining": pipelining, "load": loads}
    for side, s in samples.items():
        out[side] = {
            "per_task_s": summary([x["per_task"] for x in s]),
            "task_clock_s": summary([d for x in s for d in x["tasks"]]),
            "play_k_s": summary([x["play_k"] for x in s]),
            "play_2k_s": summary([x["play_2k"] for x in s]),
        }
    floor = out["ping"]["per_task_s"]["median"]
    clock_floor = out["ping"]["task_clock_s"]["median"]
    for side in ("container", "deployment"):
        out[side]["ratio_to_ping"] = (
            round(out[side]["per_task_s"]["median"] / floor, 2) if floor > 0 else None
        )
        out[side]["task_clock_ratio_to_ping"] = round(out[side]["task_clock_s"]["median"] / clock_floor, 2)
    return out


def _host_loop(lab: Any, host: str, argv: list[str], stdin: str | None, rounds: int) -> dict[str, float]:
    """`argv` run `rounds` times inside `host`, timed there (no nsenter in the figure)."""
    script = (
        "import json, subprocess, sys, time\n"
        "argv, stdin, n = json.loads(sys.argv[1])\n"
        "out = []\n"
        "for _ in range(n + 1):\n"
        "    t = time.perf_counter()\n"
        "    p = subprocess.run(argv, input=stdin, capture_output=True, text=True)\n"
        "    out.append(time.perf_counter() - t)\n"
        "    assert p.returncode == 0, p.stdout + p.stderr\n"
        "print(json.dumps(out[1:]))\n"
    )
    proc = lab.run(host, ["/usr/bin/python3", "-c", script, json.dumps([argv, stdin, rounds])], timeout=600)
    return summary(json.loads(proc.stdout))


def _profile(lab: Any, rounds: int) -> dict[str, Any]:
    """Where a no-op task's time goes, on one host."""
    host = lab.hosts[0]
    container_req = json.dumps({"state": "started", "spec": CONTAINER})
    out: dict[str, Any] = {
        "berth_container_apply_s": _host_loop(
            lab, host, ["berth", "container", "apply", "-f", "-", "--json"], container_req, rounds
        ),
        "berth_deploy_s": _host_loop(
            lab,
            host,
            ["berth", "deploy", DEPLOYMENT["name"], "-f", "-", "--json"],
            json.dumps(DEPLOYMENT),
            rounds,
        ),
        "berth_version_s": _host_loop(lab, host, ["berth", "version", "--json"], None, rounds),
        "python3_s": _host_loop(lab, host, ["/usr/bin/python3", "-c", "pass"], None, rounds),
        "load": load(),
    }
    out["payload_bytes"] = _payload_sizes(lab, host)
    return out


def _payload_sizes(lab: Any, host: str) -> dict[str, int]:
    """Bytes of the AnsiballZ file Ansible copies to the host per task, per module."""
    from common import VENV

    work: Path = lab.workdir
    sizes = {}
    for side, (module, args) in SIDES.items():
        lab.run(host, ["sh", "-c", "rm -rf /root/.ansible/tmp/ansible-tmp-*"])
        book = write_play(work / f"keep-{side}.yml", _play([host], module, args, 1))
        subprocess.run(
            [str(VENV / "bin" / "ansible-playbook"), "-i", lab.inventory, str(book)],
            env={**lab.ansible_env(), "ANSIBLE_KEEP_REMOTE_FILES": "1"},
            capture_output=True,
            check=True,
            timeout=300,
        )
        found = lab.run(
            host, ["sh", "-c", "stat -c %s /root/.ansible/tmp/ansible-tmp-*/AnsiballZ_*.py"]
        ).stdout
        sizes[side] = int(found.split()[0])
        lab.run(host, ["sh", "-c", "rm -rf /root/.ansible/tmp/ansible-tmp-*"])
    return sizes


def run(rounds: int = 3, warmup: int = 1, k: int = 3) -> dict[str, Any]:
    started = time.monotonic()
    with lab_of(LAB, max(COUNTS)) as lab:
        _setup(lab)
        results: dict[str, Any] = {"hosts": {}, "pipelining": {}, "rounds": rounds, "warmup": warmup}
        for n in COUNTS:
            results["hosts"][str(n)] = _per_task(lab, lab.hosts[:n], rounds, warmup, k)
        for n in PIPELINING_COUNTS:
            results["pipelining"][str(n)] = _per_task(lab, lab.hosts[:n], rounds, warmup, k, pipelining=True)
        results["profile"] = _profile(lab, 10)
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def markdown(r: dict[str, Any]) -> str:
    rows = [
        f"A lab of {max(COUNTS)} hosts over SSH (Ansible's defaults: no pipelining; the lab's inventory). "
        f"Per task = (play of {2 * r['hosts']['1']['k']} tasks - play of {r['hosts']['1']['k']} tasks) / "
        f"{r['hosts']['1']['k']}: ansible-playbook's start-up cancels out. {r['rounds']} rounds after "
        f"{r['warmup']} warm-up round, sides alternating; every task a no-op (changed=false). "
        "Task clock: each task's own wall time as `bench/callback_plugins/task_clock.py` sees it (from "
        "its start to the next task's start), every task of those plays but the first (which opens the "
        "SSH connections): many samples per round, so it stands the machine's load better.",
        "",
        "| hosts | `ping` s: per task / task clock | `container` s | ratio | `deployment` s | ratio | load |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]

    def cell(h: dict[str, Any]) -> str:
        d, c = h["per_task_s"], h.get("task_clock_s")
        return f"{d['median']:.3f} / {c['median']:.3f}" if c else f"{d['median']:.3f}"

    def ratio(h: dict[str, Any]) -> str:
        c = h.get("task_clock_ratio_to_ping")
        return f"{h['ratio_to_ping']:.2f}x / **{c:.2f}x**" if c is not None else f"{h['ratio_to_ping']:.2f}x"

    rows_of = [("", n, h) for n, h in r["hosts"].items()]
    rows_of += [(" (pipelining)", n, h) for n, h in r.get("pipelining", {}).items()]
    for how, n, h in rows_of:
        rows.append(
            f"| {n}{how} | {cell(h['ping'])} | {cell(h['container'])} | {ratio(h['container'])} "
            f"| {cell(h['deployment'])} | {ratio(h['deployment'])} "
            f"| {' → '.join(str(x) for x in h['load'])} |"
        )
    p = r["profile"]
    rows += [
        "",
        "Target: within 1.3x of `ping` per task. Medians; load = the machine's 1-minute "
        "load average at the start and end of that row's runs. Rows marked (pipelining): the same with "
        "`ANSIBLE_PIPELINING=True` (one SSH command per task instead of five), where Ansible's own cost "
        "is smallest and the module's share largest.",
        "",
        "Where a no-op task's time goes, timed inside one lab host (10 runs after a warm-up; "
        f"load {p['load']}):",
        "",
        "| step | median s | min s | max s |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "python3_s": "`python3 -c pass` (the host's Python, which runs every module)",
        "berth_version_s": "`berth version --json` (the runtime's Python start + CLI)",
        "berth_container_apply_s": "`berth container apply -f - --json`, no-op "
        "(what the container module calls)",
        "berth_deploy_s": "`berth deploy NAME -f - --json`, no-op (what the deployment module calls)",
    }
    for key, label in labels.items():
        s = p[key]
        rows.append(f"| {label} | {s['median']:.4f} | {s['min']:.4f} | {s['max']:.4f} |")
    sizes = p["payload_bytes"]
    rows += [
        "",
        "Module payload (AnsiballZ file copied to the host per task): "
        + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in sizes.items())
        + ".",
    ]
    if "before" in r:
        rows += ["", r["before"]]
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(json.dumps(run(*(int(a) for a in sys.argv[1:])), indent=2))
