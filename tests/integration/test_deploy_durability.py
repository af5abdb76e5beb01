"""A deploy interrupted anywhere ends on exactly one consistent revision: kill -9 of the runtime
at every step (BERTH_DEPLOY_CRASH_AT, a real SIGKILL between two steps), then the next
`berth deploy` or `berth restore`; and `berth lab reboot` in the middle of a deploy. Also: a
client looping on the service port during a deploy and a rollback sees no failed request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from deploy_helpers import Looper, prepare_host, serving, spec, write_spec
from labkit import Lab, berth

from tests.reliability_plugin import recorder as _rec

pytestmark = pytest.mark.lab

# Before the commit point (`switching`) the old revision must win; from it on, the new one.
CRASH_PORT, LIVE_PORT, PARK_PORT = 8081, 8082, 8083
BEFORE = ["revision-recorded", "containers-created", "started", "checked"]
AFTER = ["switching", "switched", "activated", "retired"]


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[str]:
    h = lab.hosts[1]
    prepare_host(lab, h)
    lab.run(h, ["sh", "-c", "berth undeploy crash >/dev/null 2>&1; true"])
    lab.berth(h, "deploy", "crash", "-f", write_spec(lab, h, spec(1, name="crash", port=CRASH_PORT)))
    try:
        yield h
    finally:  # the lab is shared with later modules
        lab.run(h, ["sh", "-c", "berth undeploy crash >/dev/null 2>&1; true"])


def consistent(lab: Lab, host: str) -> int:
    """One revision runs, holds the port, and is the one recorded; return it."""
    status = lab.berth(host, "status", "crash")["data"]
    assert status["operation"] is None and status["serving"], status
    units = lab.run(
        host, ["sh", "-c", "systemctl list-units --plain --no-legend 'berth-crash-*' | awk '{print $1}'"]
    )
    assert units.stdout.split() == [f"berth-crash-{status['current']}-web.service"]
    return int(status["current"])


@pytest.mark.parametrize("point", BEFORE + AFTER)
@pytest.mark.parametrize("then", ["deploy", "restore"])
def test_kill_at_each_step(pytestconfig: pytest.Config, lab: Lab, host: str, point: str, then: str) -> None:
    rec = _rec(pytestconfig)
    rec.guard("lost-revision")
    rec.faults(1, "kill -9 at a deploy step")
    before = consistent(lab, host)
    # A content change no earlier revision had, so every step (create included) runs.
    doc = spec(1 if before % 2 else 2, name="crash", port=CRASH_PORT)
    doc["containers"][0]["env"] = {"ATTEMPT": f"{point}-{then}"}
    path = write_spec(lab, host, doc)
    proc = lab.run(host, ["berth", "--json", "deploy", "crash", "-f", path],
                   env={"BERTH_DEPLOY_CRASH_AT": point}, check=False)  # fmt: skip
    assert proc.returncode == -9 or proc.returncode == 137, proc
    if then == "deploy":
        lab.berth(
            host, "deploy", "crash", "-f", write_spec(lab, host, spec(1, name="crash", port=CRASH_PORT))
        )
        consistent(lab, host)
        return
    lab.berth(host, "restore")
    after = consistent(lab, host)
    assert (after != before) == (point in AFTER)
    events = lab.berth(host, "history", "crash")["data"]["events"]
    assert events[-1]["recovered"] and events[-1]["result"] == (
        "completed" if point in AFTER else "rolled-back"
    )


@pytest.mark.parametrize("point", ["checked", "activated"])
def test_reboot_in_the_middle_of_a_deploy(
    pytestconfig: pytest.Config, lab: Lab, host: str, point: str
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("lost-revision")
    rec.faults(1, "host rebooted in the middle of a deploy")
    before = consistent(lab, host)
    doc = spec(1 if before % 2 else 2, name="crash", port=CRASH_PORT)
    doc["containers"][0]["env"] = {"ATTEMPT": f"reboot-{point}"}
    path = write_spec(lab, host, doc)
    lab.run(host, ["berth", "system", "install"])  # berth-restore.service runs at boot
    lab.run(host, ["berth", "deploy", "crash", "-f", path], env={"BERTH_DEPLOY_CRASH_AT": point}, check=False)
    berth("lab", "reboot", "--name", lab.name, host)
    lab.refresh()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = lab.run(host, ["systemctl", "is-active", "berth-restore.service"], check=False).stdout.strip()
        if state in ("active", "failed"):
            break
        time.sleep(0.2)
    after = consistent(lab, host)
    assert (after != before) == (point == "activated")


def test_no_failed_request_during_deploy_and_rollback(lab: Lab) -> None:
    server, client = lab.hosts[2], lab.hosts[0]
    prepare_host(lab, server)
    lab.run(server, ["sh", "-c", "berth undeploy live >/dev/null 2>&1; true"])

    def deploy(version: int, check: bool = True) -> None:
        # Drained for as long as the client waits for an answer (`timeout 2 wget`): a request the
        # old revision took before the switch always ends before that revision stops (its stop
        # signal is KILL), however loaded the machine is.
        path = write_spec(lab, server, spec(version, name="live", port=LIVE_PORT, drain="2s"))
        lab.berth(server, "deploy", "live", "-f", path, check=check)

    try:
        deploy(1)
        assert serving(lab, server, client, LIVE_PORT) == "v1"
        with Looper(lab, client, [server], LIVE_PORT) as loop:
            time.sleep(1)
            deploy(2)
            time.sleep(1)
            lab.berth(server, "rollback", "live")
            time.sleep(1)
            deploy(3, check=False)  # never healthy: rolls itself back while the client loops
            time.sleep(1)
        assert len(loop.lines) > 20 and not loop.failures, loop.failures[:5]
        assert loop.bodies() == {"v1", "v2"}
    finally:
        lab.run(server, ["sh", "-c", "berth undeploy live >/dev/null 2>&1; true"])


def test_a_retired_revision_stays_parked_on_its_address_for_a_rollback(lab: Lab, host: str) -> None:
    """Retired, a revision's containers keep their network parked (no port rules): a rollback
    starts them on the same address without making links again; removal detaches for good."""
    client = lab.hosts[0]
    lab.run(host, ["sh", "-c", "berth undeploy park >/dev/null 2>&1; true"])

    def networks(container: str) -> list[dict[str, object]]:
        return lab.berth(host, "inspect", container)["data"][0]["networks"]  # type: ignore[no-any-return]

    try:
        for v in (1, 2):
            lab.berth(
                host, "deploy", "park", "-f", write_spec(lab, host, spec(v, name="park", port=PARK_PORT))
            )
        [v1] = networks("park-1-web")
        assert v1["parked"] is True and lab.berth(host, "inspect", "park-1-web")["data"][0]["pid"] is None
        assert lab.run(host, ["test", "-e", "/run/berth/netns/park-1-web"], check=False).returncode == 0
        assert serving(lab, host, client, PARK_PORT) == "v2"
        lab.berth(host, "rollback", "park")
        assert serving(lab, host, client, PARK_PORT) == "v1"
        assert networks("park-1-web") == [{**v1, "parked": False}]  # same address, same MAC
        assert networks("park-2-web")[0]["parked"] is True
    finally:
        lab.run(host, ["sh", "-c", "berth undeploy park >/dev/null 2>&1; true"])
    leftovers = lab.run(
        host, ["sh", "-c", "ls /var/lib/berth/network/attachments /run/berth/netns | grep park || true"]
    )
    assert leftovers.stdout == ""
