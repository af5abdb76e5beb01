"""What `make demo` shows: scripts/demo.sh runs the steps, this turns their JSON into short lines.

Every subcommand reads files in $DEMO_STATE (the demo's temp dir): `lab.json` (berth lab up),
`images.json` (what was built and pushed), rollout reports from playbooks/deploy.yml and
rollback.yml, and `rows.json`, the final table's rows, which `rollout` appends to.
Standard library plus `rich` (a runtime dependency, so it is in the venv). Never reaches
anything but the lab's addresses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

STATE = Path(os.environ.get("DEMO_STATE", "."))
PORT = 8080  # the port the app publishes on every host


def load(name: str | Path, default: Any = None) -> Any:
    path = STATE / name
    if not path.exists():
        return default
    return json.loads(path.read_text())


def save(name: str, doc: Any) -> None:
    (STATE / name).write_text(json.dumps(doc, indent=1) + "\n")


def short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def rev(n: Any) -> str:
    return "-" if n is None else str(n)


def hosts() -> list[dict[str, Any]]:
    return list(load("lab.json")["data"]["hosts"])


# --- the lab ----------------------------------------------------------------------------------


def cmd_lab_vars(args: argparse.Namespace) -> int:
    """Shell assignments for demo.sh: the lab's inventory, gateway and a free port on it."""
    data = load("lab.json")["data"]
    gateway = data["gateway"]
    with socket.socket() as s:  # a port nothing listens on at the gateway address
        s.bind((gateway, 0))
        port = s.getsockname()[1]
    print(f"INVENTORY={data['inventory']}\nGATEWAY={gateway}\nREGISTRY_PORT={port}")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    data = load("lab.json")["data"]
    for h in data["hosts"]:
        state = f"systemd {h['system_state']}, PID {h['pid']} on the machine"
        print(f"  {h['name']:<10} {h['address']:<13} {state}, booted in {h['boot_seconds']:.1f} s")
    print(f"  the machine is {data['gateway']} on bridge bbr-{data['name']} ({data['subnet']}); no route out")
    return 0


def cmd_stale(args: argparse.Namespace) -> int:
    """Exit 0 when a lab status file (berth lab status --json) shows no host running."""
    doc = json.loads(Path(args.status).read_text())
    return 1 if any(h["running"] for h in doc["data"]["hosts"]) else 0


# --- images -----------------------------------------------------------------------------------


def cmd_built(args: argparse.Namespace) -> int:
    """Record a build (its --json output); print one line."""
    build = json.loads(Path(args.build).read_text())["data"]
    images = load("images.json", {})
    images[args.version] = {"digest": build["digest"]}
    save("images.json", images)
    cached = sum(1 for s in build["steps"] if s.get("cached"))
    note = f"  ({args.note})" if args.note else ""
    print(
        f"  app:{args.version}  {short(build['digest'])}  {len(build['steps'])} steps, {cached} cached{note}"
    )
    return 0


def cmd_pushed(args: argparse.Namespace) -> int:
    """Record a push (its --json output); print one line."""
    out = json.loads(Path(args.push).read_text())
    push = out["data"]
    images = load("images.json", {})
    images[args.version]["reference"] = push["reference"]
    save("images.json", images)
    uploads = [a for a in out["actions"] if a["action"] == "upload-blob"]
    size = sum((a.get("detail") or {}).get("size", 0) for a in uploads)
    sent = f"{len(uploads)} blobs uploaded, {size / 1024:.0f} KiB"
    print(f"  app:{args.version}  {short(push['digest'])}  -> {push['reference']}  ({sent})")
    return 0


def cmd_pulled(args: argparse.Namespace) -> int:
    """Per host: what the pull fetched, and whether the digest is the one pushed."""
    pushed = load("images.json")[args.version]["digest"]
    ok = True
    for h in hosts():
        res = load(Path(args.results) / f"{h['name']}.json", {})
        blobs = [a for a in res.get("actions", []) if a.get("action") == "fetch-blob"]
        size = sum((a.get("detail") or {}).get("size", 0) for a in blobs)
        same = res.get("digest") == pushed
        ok &= same
        fetched = f"fetched {len(blobs)} blobs, {size / 1024:.0f} KiB" if blobs else "already there"
        match = "= pushed digest" if same else "!= PUSHED DIGEST"
        print(f"  {h['name']:<10} {short(res.get('digest'))}  {match}  ({fetched})")
    return 0 if ok else 1


# --- hosts ------------------------------------------------------------------------------------


RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
SHOWN = re.compile(r"^ok: \[(\S+)\] => \{\n\s+\"msg\": (\".*\")\n\}", re.M)


def cmd_prepared(args: argparse.Namespace) -> int:
    """From the log of playbooks/hosts.yml: what each host can enforce, and the play recap."""
    log = Path(args.log).read_text()
    section = log.split("Show what the host can enforce", 1)[-1]
    facts = {m.group(1): json.loads(m.group(2)) for m in SHOWN.finditer(section)}
    recap = {m.group(1): m.groups()[1:] for m in RECAP.finditer(log)}
    for h in hosts():
        ok, changed, _unreachable, failed = recap.get(h["name"], ("?",) * 4)
        print(f"  {h['name']:<10} {ok} tasks ok, {changed} changed, {failed} failed")
    first = facts.get(hosts()[0]["name"], "")
    if first:
        cgroups, _, rest = first.partition("; controllers ")
        print(f"  every host: {cgroups}")
        print(f"  {rest.partition('; ')[2] or rest}")
    return 0


# --- rollouts ---------------------------------------------------------------------------------


def batches(spec: list[Any], total: int) -> list[int]:
    """Sizes of Ansible's `serial:` batches (an int, or a percentage), the last one repeated."""
    sizes, left, i = [], total, 0
    while left > 0:
        item = spec[min(i, len(spec) - 1)]
        size = (
            max(1, int(total * float(str(item).rstrip("%")) / 100)) if str(item).endswith("%") else int(item)
        )
        size = size or total
        sizes.append(min(size, left))
        left -= sizes[-1]
        i += 1
    return sizes


def row(
    step: str, host: str, revision: str, digest: str, health: str, seconds: float | None
) -> dict[str, Any]:
    return {
        "step": step,
        "host": host,
        "revision": revision,
        "digest": digest,
        "health": health,
        "seconds": seconds,
    }


def cmd_rollout(args: argparse.Namespace) -> int:
    """Render a rollout (or rollback) report; append its rows to the final table."""
    report = load(args.report)
    if report is None:
        print(f"  no report {args.report}: the playbook stopped before writing it", file=sys.stderr)
        return 1
    images = load("images.json", {})
    names = [h["name"] for h in hosts()]
    label = dict.fromkeys(names, "" if args.batches else "at once")
    if args.batches:
        i = 0
        for n, size in enumerate(batches(json.loads(args.batches), len(names)), 1):
            for name in names[i : i + size]:
                label[name] = "canary" if n == 1 else f"batch {n}"
            i += size
    rows = load("rows.json", [])
    for h in report["hosts"]:
        health = h.get("health") or {}
        digest = (h.get("digests") or {}).get("web")
        if not digest and args.version:  # a failed deploy records no digest: it is the pushed one
            digest = (images.get(args.version) or {}).get("digest")
        seconds = (h.get("timings") or {}).get("total", health.get("seconds"))
        before, after = rev(h.get("revision_before")), rev(h.get("revision_after"))
        if h["result"] == "failed":
            change = f"{before} -> {rev(h.get('revision_attempted'))} -> {after}"
            what = f"FAILED its health gate, rolled back to {after}"
        else:
            change = f"{before} -> {after}"
            what = h["result"]
        probes = sum((health.get("probes") or {}).values())
        gate = f"health {health.get('result', '-')} ({probes} probes, {health.get('seconds', 0):.2f} s)"
        where = f"{label[h['host']]:<8} {h['host']:<10}"
        print(f"  {where} revision {change:<9} {short(digest)}  {gate:<36} {what} in {seconds or 0:.2f} s")
        if h["result"] == "failed" and health.get("reason"):
            print(f"  {'':<19} why: {health['reason']}")
        rows.append(row(args.step, h["host"], change, short(digest), health.get("result", "-"), seconds))
    for name in [n for n in names if n in (report.get("not_started") or [])]:
        print(f"  {label[name]:<8} {name:<10} not started: the rollout stopped after the failed batch")
        rows.append(row(args.step, name, "unchanged", "-", "not started", None))
    save("rows.json", rows)
    if report.get("aborted"):
        print(f"  rollout stopped: {report.get('abort_reason')}")
    took = f" in {report['seconds']:.1f} s" if report.get("seconds") is not None else ""
    print(f"  report {Path(args.report).name}: completed={str(report['completed']).lower()}{took}")
    outcome = "aborted" if report.get("aborted") else "completed" if report["completed"] else "incomplete"
    if args.expect and outcome != args.expect:
        print(f"  expected the rollout to end {args.expect}, it ended {outcome}", file=sys.stderr)
        return 1
    return 0


# --- what the fleet serves ----------------------------------------------------------------------


def get(address: str, timeout: float = 2.0) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # lab traffic only
    with opener.open(f"http://{address}:{PORT}/", timeout=timeout) as resp:
        return str(resp.read().decode().strip())


def cmd_serving(args: argparse.Namespace) -> int:
    """GET the app's port on every host from the machine; exit 1 unless all serve --expect."""
    seen = {}
    for h in hosts():
        try:
            seen[h["name"]] = get(h["address"])
        except OSError as exc:
            seen[h["name"]] = f"error ({exc})"
    save("serving.json", seen)
    line = "   ".join(f"{name}: {body}" for name, body in seen.items())
    print(f"  serving on :{PORT}   {line}")
    if args.expect and set(seen.values()) != {args.expect}:
        print(f"  expected every host to serve {args.expect}", file=sys.stderr)
        return 1
    return 0


def cmd_wait_http(args: argparse.Namespace) -> int:
    """Wait until URL answers 200 (the registry's /v2/), at most 20 s."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with opener.open(args.url, timeout=1):
                return 0
        except OSError:
            time.sleep(0.1)
    print(f"{args.url} did not answer in 20 s", file=sys.stderr)
    return 1


def cmd_watch(args: argparse.Namespace) -> int:
    """A client on the machine: GET every host in turn until SIGTERM; one line per request."""
    stop = False

    def done(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, done)
    addresses = [h["address"] for h in hosts()]
    with open(args.out, "a", buffering=1) as out:
        while not stop:
            for address in addresses:
                try:
                    out.write(f"ok {address} {get(address)}\n")
                except OSError as exc:
                    out.write(f"fail {address} {exc}\n")
            time.sleep(0.05)
    return 0


def cmd_watched(args: argparse.Namespace) -> int:
    lines = Path(args.out).read_text().splitlines()
    failed = [line for line in lines if line.startswith("fail")]
    bodies = sorted({line.split()[-1] for line in lines if line.startswith("ok")})
    counts = f"{len(lines)} requests, {len(failed)} failed, answers seen: {', '.join(bodies) or 'none'}"
    print(f"  a client kept asking every host during the rollout: {counts}")
    for line in failed[:3]:
        print(f"    {line}")
    return 0


# --- the summary --------------------------------------------------------------------------------


def cmd_table(args: argparse.Namespace) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 110, highlight=False)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("step", "host", "revision before -> after", "image digest", "health", "seconds"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    previous = None
    for r in load("rows.json", []):
        step = r["step"] if r["step"] != previous else ""
        if previous is not None and step:
            table.add_section()
        previous = r["step"]
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.2f}"
        table.add_row(step, r["host"], r["revision"], r["digest"], r["health"], seconds)
    console.print(table)
    seen = load("serving.json", {})
    versions = sorted(set(seen.values()))
    if len(versions) == 1:
        print(f"Fleet now: all {len(seen)} hosts serve {versions[0]}.")
        return 0
    print(f"Fleet now: mixed ({', '.join(f'{k} {v}' for k, v in seen.items())}).")
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("lab-vars").set_defaults(fn=cmd_lab_vars)
    sub.add_parser("lab").set_defaults(fn=cmd_lab)
    p = sub.add_parser("stale")
    p.add_argument("status")
    p.set_defaults(fn=cmd_stale)
    p = sub.add_parser("built")
    p.add_argument("version")
    p.add_argument("build")
    p.add_argument("--note", default="")
    p.set_defaults(fn=cmd_built)
    p = sub.add_parser("pushed")
    p.add_argument("version")
    p.add_argument("push")
    p.set_defaults(fn=cmd_pushed)
    p = sub.add_parser("pulled")
    p.add_argument("version")
    p.add_argument("results")
    p.set_defaults(fn=cmd_pulled)
    p = sub.add_parser("prepared")
    p.add_argument("log")
    p.set_defaults(fn=cmd_prepared)
    p = sub.add_parser("rollout")
    p.add_argument("step")
    p.add_argument("report")
    p.add_argument("--version", default="")
    p.add_argument("--batches", default="")
    p.add_argument("--expect", choices=["completed", "aborted"])
    p.set_defaults(fn=cmd_rollout)
    p = sub.add_parser("serving")
    p.add_argument("--expect", default="")
    p.set_defaults(fn=cmd_serving)
    p = sub.add_parser("wait-http")
    p.add_argument("url")
    p.set_defaults(fn=cmd_wait_http)
    p = sub.add_parser("watch")
    p.add_argument("out")
    p.set_defaults(fn=cmd_watch)
    p = sub.add_parser("watched")
    p.add_argument("out")
    p.set_defaults(fn=cmd_watched)
    sub.add_parser("table").set_defaults(fn=cmd_table)
    args = parser.parse_args()
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:  # Ctrl-C: demo.sh tears down and says so
        return 130


if __name__ == "__main__":
    sys.exit(main())
