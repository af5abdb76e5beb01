"""Rollback to the previous revision: `berth rollback` against podman's stop + run (issue 7).

Measured the same way on both sides: from the moment the command is issued until a client on
another lab host gets the previous version's page from the service port. Berth's side is here
and complete: a lab of 2 hosts, the busybox httpd app as revisions v1 and v2 (see
tests/integration/deploy_helpers.py), each round deploys v2 (untimed) then times
`berth rollback` to v1 (health gate: one HTTP probe, min_healthy 0).

podman's side (`podman_rollback`) is the function the peer bench's owner (bench/container_start.py
knows how podman runs on these machines) is asked to finish: it is written to the same contract
but not run here; see `PEER_TODO`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from common import REPO, summary

sys.path.insert(0, str(REPO / "tests" / "integration"))

PEER_TODO = (
    "podman side not measured by this module yet: podman_rollback() needs podman set up in a lab host "
    "as bench/container_start.py does (ensure_peers, containers.conf, STORE); its owner wires it in"
)


def _lab(name: str) -> Any:
    from conftest import berth, boot_lab

    berth("lab", "down", "--name", name, check=False)
    return boot_lab(name, 2)


def _wait_for(lab: Any, client: str, url: str, body: str, timeout: float = 10) -> float:
    """Poll from inside the client host until `url` answers `body`; return the time it did."""
    script = f'until [ "$(timeout 1 wget -qO- {url} 2>/dev/null)" = "{body}" ]; do :; done'
    argv = ["nsenter", "-t", str(lab.pids[client]), "-a", "timeout", str(timeout), "sh", "-c", script]
    subprocess.run(argv, check=True)
    return time.monotonic()


def berth_rollback(rounds: int = 10) -> dict[str, Any]:
    from deploy_helpers import PORT, prepare_host, spec, write_spec

    from conftest import berth

    lab = _lab("benchdep")
    try:
        server, client = lab.hosts
        prepare_host(lab, server)
        fast = {"interval": "20ms", "timeout": "1s", "retries": 3, "min_healthy": 0, "deadline": "10s"}
        docs = {}
        for v in (1, 2):
            doc = spec(v, name="bench", drain=0)
            doc["containers"][0]["health"] = {"http": {"port": 80}, **fast}
            docs[v] = write_spec(lab, server, doc, f"/var/lib/berth/bench-v{v}.json")
        lab.berth(server, "deploy", "bench", "-f", docs[1])
        url = f"http://{lab.addresses[server]}:{PORT}/"
        samples, command = [], []
        for _ in range(rounds):
            lab.berth(server, "deploy", "bench", "-f", docs[2])
            _wait_for(lab, client, url, "v2")
            until = f'until [ "$(timeout 1 wget -qO- {url} 2>/dev/null)" = "v1" ]; do :; done'
            poll = subprocess.Popen(["nsenter", "-t", str(lab.pids[client]), "-a", "sh", "-c", until])
            start = time.monotonic()
            rollback = subprocess.Popen(
                ["nsenter", "-t", str(lab.pids[server]), "-a", "berth", "rollback", "bench"],
                stdout=subprocess.DEVNULL,
            )
            poll.wait(timeout=20)
            samples.append(time.monotonic() - start)
            assert rollback.wait(timeout=60) == 0
            command.append(time.monotonic() - start)
        timings = lab.berth(server, "history", "bench")["data"]["events"][-1]["timings"]
        return {
            "to_serving_s": summary(samples),
            "command_s": summary(command),
            "last_steps_s": timings,
            "note": "to_serving: from issuing `berth rollback` (via nsenter) until a client on another "
            "lab host gets v1; command: until the command returns (includes drain and stopping v2)",
        }
    finally:
        berth("lab", "down", "--name", "benchdep", check=False)


def podman_rollback(lab: Any, server: str, client: str, url: str) -> float:
    """One round of podman's way, to the same contract: seconds from issuing the commands until
    the client gets v1. Expected: `podman stop -t 0 app-v2 && podman run -d --name app-v1
    -p 8080:80 localhost/app:1` inside `server` (images loaded beforehand), timed with
    `_wait_for(lab, client, url, "v1")`. Not implemented here: see PEER_TODO."""
    raise NotImplementedError(PEER_TODO)


def run(rounds: int = 10) -> dict[str, Any]:
    return {"berth": berth_rollback(rounds), "podman": {"skipped": PEER_TODO}}


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
