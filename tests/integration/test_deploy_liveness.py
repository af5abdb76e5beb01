"""The liveness monitor: after a deploy passed its gate, `berth-monitor@NAME.service` keeps
probing, restarts a container that stops answering (and points its service port at it again),
or only records it with action `none`; it follows the serving revision, comes back with
`berth restore` (what runs at boot), and undeploy leaves nothing of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from deploy_helpers import prepare_host, serving, write_spec
from labkit import Lab, berth

pytestmark = pytest.mark.lab

PORT = 8092
MONITOR = "berth-monitor@alive.service"
# The app serves /alive from a file its command writes at every start: removing the file makes
# it stop answering (404) until the container starts again.
COMMAND = ["sh", "-c", "mkdir -p /tmp/www && cp /www/index.html /tmp/www/ && echo ok > /tmp/www/alive && "
           "exec httpd -f -p 80 -h /tmp/www"]  # fmt: skip


def spec(action: str) -> dict[str, Any]:
    return {"name": "alive", "keep": 2, "drain": 0, "containers": [{
        "role": "web", "image": "app:1", "ports": [f"{PORT}:80"], "stop_signal": "KILL", "command": COMMAND,
        "health": {"http": {"port": 80, "path": "/alive"}, "interval": "100ms", "min_healthy": "200ms",
                   "deadline": "10s"},
        "liveness": {"interval": "200ms", "timeout": "1s", "failures": 3, "action": action}}]}  # fmt: skip


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[str]:
    h = lab.hosts[2]
    prepare_host(lab, h)
    try:
        yield h
    finally:  # the lab is shared with later modules
        lab.run(h, ["sh", "-c", "berth undeploy alive >/dev/null 2>&1; true"])


def deploy(lab: Lab, host: str, action: str) -> dict[str, Any]:
    path = write_spec(lab, host, spec(action), "/var/lib/berth/alive.json")
    return lab.berth(host, "deploy", "alive", "-f", path)["data"]  # type: ignore[no-any-return]


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll until `probe()` is truthy (no timing is asserted: the deadline is generous)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.2)


def monitor(lab: Lab, host: str) -> dict[str, Any]:
    return lab.berth(host, "status", "alive")["data"]["monitor"]  # type: ignore[no-any-return]


def invocation(lab: Lab, host: str, container: str) -> str:
    out = lab.run(host, ["systemctl", "show", f"berth-{container}.service", "--property=InvocationID"])
    return out.stdout.strip()


def break_app(lab: Lab, host: str, container: str) -> None:
    lab.run(host, ["berth", "exec", container, "rm", "/tmp/www/alive"])


def test_monitor_restarts_a_container_that_stops_answering(lab: Lab, host: str) -> None:
    status = deploy(lab, host, "restart")
    assert status["current"] == 1 and status["health"]["result"] == "passed", status
    m = wait_for(
        "monitor probes", lambda: (m := monitor(lab, host))["roles"].get("web", {}).get("probes") and m
    )
    assert m["unit"] == MONITOR and m["running"] and m["revision"] == 1, m
    before = invocation(lab, host, "alive-1-web")

    break_app(lab, host, "alive-1-web")
    m = wait_for("a restart", lambda: (m := monitor(lab, host))["roles"]["web"]["restarts"] >= 1 and m)
    web = m["roles"]["web"]
    assert web["restarts"] == 1 and web["failed_total"] >= 3 and web["threshold"] == 3, web
    assert "404" in web["last_failure"]["output"], web
    event = m["events"][-1]
    assert event["action"] == "restart" and event["result"] == "restarted", event
    assert invocation(lab, host, "alive-1-web") != before
    # The restarted container answers on the service port again, and the probe passes.
    url = f"http://127.0.0.1:{PORT}/alive"
    wait_for(
        "the app answers again", lambda: lab.run(host, ["wget", "-qO-", url], check=False).stdout == "ok\n"
    )
    assert serving(lab, host, port=PORT) == "v1"
    wait_for("a passing probe", lambda: monitor(lab, host)["roles"]["web"]["last"]["ok"])
    # The monitor's journal carries the deployment and its revision.
    journal = lab.run(host, ["journalctl", "BERTH_DEPLOYMENT=alive", "BERTH_REVISION=1", "-o", "cat",
                             "--no-pager", f"_SYSTEMD_UNIT={MONITOR}"]).stdout  # fmt: skip
    assert "restarting alive-1-web after 3 failed liveness probes" in journal, journal


def test_action_none_records_and_the_monitor_follows_deploys_rollbacks_and_restore(
    lab: Lab, host: str
) -> None:
    status = deploy(lab, host, "none")  # the liveness check is revision content: revision 2
    assert status["current"] == 2, status
    m = wait_for(
        "monitor of revision 2", lambda: (m := monitor(lab, host))["revision"] == 2 and m["running"] and m
    )
    units = lab.run(host, ["systemctl", "list-units", "--plain", "--no-legend", "berth-monitor@*"]).stdout
    assert [line.split()[0] for line in units.splitlines()] == [MONITOR], units
    before = invocation(lab, host, "alive-2-web")

    break_app(lab, host, "alive-2-web")
    m = wait_for("recorded failures", lambda: (m := monitor(lab, host))["events"] and m)
    assert m["events"][-1]["action"] == "none" and m["events"][-1]["result"] == "recorded", m["events"]
    wait_for("more failures", lambda: monitor(lab, host)["roles"]["web"]["failed_total"] >= 4)
    web = monitor(lab, host)["roles"]["web"]
    assert web["restarts"] == 0 and not web["last"]["ok"], web
    assert invocation(lab, host, "alive-2-web") == before  # not restarted

    # A rollback takes the monitor back to revision 1 (and its restart action).
    assert lab.berth(host, "rollback", "alive")["data"]["current"] == 1
    m = monitor(lab, host)
    assert m["running"] and m["revision"] == 1 and m["roles"]["web"]["action"] == "restart", m

    # What runs at boot (`berth restore`) brings a stopped monitor back.
    lab.run(host, ["systemctl", "stop", MONITOR])
    assert not monitor(lab, host)["running"]
    lab.berth(host, "restore")
    assert monitor(lab, host)["running"] and monitor(lab, host)["revision"] == 1


def test_undeploy_leaves_no_monitor(lab: Lab, host: str) -> None:
    lab.berth(host, "undeploy", "alive")
    units = lab.run(host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-monitor@*"])
    assert units.stdout.strip() == ""
    assert lab.run(host, ["ls", "/var/lib/berth/monitors"], check=False).stdout.split() == []


@pytest.mark.slow
def test_the_monitor_comes_back_after_a_reboot(lab: Lab, host: str) -> None:
    deploy(lab, host, "restart")
    before = wait_for("probes", lambda: monitor(lab, host)["roles"].get("web", {}).get("probes"))
    lab.run(host, ["berth", "system", "install"])  # berth-restore.service runs at boot
    berth("lab", "reboot", "--name", lab.name, host)
    lab.refresh()
    restore = ["systemctl", "is-active", "berth-restore.service"]
    wait_for(
        "berth restore at boot",
        lambda: lab.run(host, restore, check=False).stdout.strip() in ("active", "failed"),
    )
    m = wait_for(
        "the monitor's probes",
        lambda: (m := monitor(lab, host))["running"] and m["roles"]["web"]["probes"] > before and m,
    )
    assert m["revision"] == 1 and m["roles"]["web"]["last"]["ok"], m
    assert lab.berth(host, "status", "alive")["data"]["serving"]
    lab.berth(host, "undeploy", "alive")
