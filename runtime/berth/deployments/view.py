"""What `berth status` and `berth history` show: read-only views of a deployment record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from berth.deployments import monitor
from berth.deployments.plan import port_key

if TYPE_CHECKING:
    from berth.deployments.manager import Deployments


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": r["number"],
        "state": r["state"],
        "hash": r["hash"],
        "created_at": r["created_at"],
        "rollout": r.get("rollout"),
        "rollouts": r.get("rollouts", []),
        "digests": {role: i["digest"] for role, i in (r.get("images") or {}).items()},
        "references": {role: i["reference"] for role, i in (r.get("images") or {}).items()},
        "containers": r.get("containers", {}),
        "health": r.get("health"),
        "states": r.get("states", []),
    }


def status(d: Deployments, name: str) -> dict[str, Any]:
    record = d.require(name)
    running = d.running(record)
    current = record["revisions"].get(str(record["current"])) if record["current"] is not None else None
    containers, ports = [], []
    if current is not None:
        for role in current["content"]["roles"]:
            cname = current["containers"][role["role"]]
            containers.append({"role": role["role"], "name": cname, "running": cname in running.containers})
            for p in role["ports"]:
                key = port_key(p)
                port = f"{p.get('host_ip') + ':' if p.get('host_ip') else ''}{p['host_port']}/{p['protocol']}"
                ports.append(
                    {"port": port, "key": key, "role": role["role"], "holder": running.holders.get(key)}
                )
    healthy = (
        current is not None
        and all(c["running"] for c in containers)
        and all(p["holder"] == current["containers"][p["role"]] for p in ports)
    )
    return {
        "name": name,
        "current": record["current"],
        "serving": healthy,
        "revision_state": current["state"] if current else None,
        "health": current.get("health") if current else None,
        "digests": _summary(current)["digests"] if current else {},
        "hash_current": current["hash"] if current else None,
        "containers": containers,
        "ports": ports,
        "operation": record.get("operation"),
        "settings": record.get("settings", {}),
        "kept": sorted(int(n) for n, r in record["revisions"].items() if r["state"] in ("active", "retired")),
        "last_event": (record.get("events") or [None])[-1],
        "monitor": monitor.view(d.containers.systemd, name),
    }


def history(d: Deployments, name: str) -> dict[str, Any]:
    record = d.require(name)
    return {
        "name": name,
        "current": record["current"],
        "revisions": [_summary(r) for _, r in sorted(record["revisions"].items(), key=lambda kv: int(kv[0]))],
        "pruned": record.get("pruned", []),
        "events": record.get("events", []),
    }
