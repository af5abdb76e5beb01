"""sd_notify readiness: `sdnotify: container` and the deployment gate `health: {notify: true}`.

The app in these containers is `sdready`, a static C program compiled here: it sends its message
to $NOTIFY_SOCKET as sd_notify(3) does (busybox has no systemd-notify, and no unix datagram
client), then execs the real server. systemd must see READY=1 from the container through the
shim's relay, the container's own PID as the unit's main PID (a `MAINPID=` from inside is
dropped), and a start must fail, naming why, when READY=1 never comes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from deploy_helpers import CTX, prepare_host, serving, write_spec
from labkit import Lab

pytestmark = pytest.mark.lab

PORT = 8091
SDREADY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
/* sdready MESSAGE [CMD ARGS...]: MESSAGE ("\n" escapes) to $NOTIFY_SOCKET, then exec CMD */
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char msg[4096]; size_t n = 0;
    for (const char *p = argv[1]; *p && n < sizeof msg - 1; p++) {
        if (p[0] == '\\' && p[1] == 'n') { msg[n++] = '\n'; p++; } else msg[n++] = *p;
    }
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path) { fprintf(stderr, "sdready: no NOTIFY_SOCKET\n"); return 1; }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0 || sendto(fd, msg, n, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("sdready");
        return 1;
    }
    close(fd);
    fprintf(stderr, "sdready: sent %zu bytes to %s\n", n, path);
    if (argc > 2) { execvp(argv[2], argv + 2); perror("sdready: exec"); return 127; }
    return 0;
}
"""
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[str]:
    """A host with `sdapp:1`: app:1 plus /bin/sdready."""
    h = lab.hosts[2]
    prepare_host(lab, h)
    ctx = f"{CTX}/sdapp"
    lab.run(h, ["sh", "-c", f"mkdir -p {ctx} && cat > {ctx}/sdready.c"], input=SDREADY_C)
    lab.run(h, ["gcc", "-static", "-Os", "-o", f"{ctx}/sdready", f"{ctx}/sdready.c"])
    lab.run(h, ["sh", "-c", f"cat > {ctx}/Containerfile"], input="FROM app:1\nCOPY sdready /bin/sdready\n")
    lab.berth(h, "image", "build", "-t", "sdapp:1", ctx)
    try:
        yield h
    finally:  # the lab is shared with later modules
        lab.run(
            h, ["sh", "-c", "berth undeploy ready >/dev/null 2>&1; berth rm -f sd-ok >/dev/null 2>&1; true"]
        )


def unit(lab: Lab, host: str, name: str, *props: str) -> dict[str, str]:
    out = lab.run(host, ["systemctl", "show", f"berth-{name}.service", *(f"--property={p}" for p in props)])
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


def leftovers(lab: Lab, host: str, name: str) -> str:
    """Whatever of container `name` is left: units, records, run dirs (empty: nothing)."""
    dirs = f"/var/lib/berth/containers/{name}* /run/berth/containers/{name}*"
    script = f"systemctl list-units --all --plain --no-legend 'berth-{name}*'; ls -d {dirs} 2>/dev/null; true"
    return lab.run(host, ["sh", "-c", script]).stdout.strip()


def test_run_returns_once_the_app_said_ready(lab: Lab, host: str) -> None:
    # The app sleeps before it says READY=1, with a STATUS= and a forged MAINPID=1: the unit is
    # active (and has the status) the moment `run -d` returns, so the start waited for READY=1.
    script = 'sleep 1; exec sdready "STATUS=warmed up\\nMAINPID=1\\nREADY=1" sleep 1000'
    lab.berth(host, "run", "-d", "--name", "sd-ok", "--sdnotify", "container", "--stop-signal", "KILL",
              "sdapp:1", "sh", "-c", script)  # fmt: skip
    props = unit(lab, host, "sd-ok", "ActiveState", "Type", "NotifyAccess", "StatusText", "MainPID")
    assert props["ActiveState"] == "active" and props["Type"] == "notify", props
    assert props["NotifyAccess"] == "all" and props["StatusText"] == "warmed up", props
    # The main PID is the container's process, never the forged one nor the shim.
    main = int(props["MainPID"])
    assert main not in (0, 1)
    inspect = lab.berth(host, "inspect", "sd-ok")["data"][0]
    assert inspect["pid"] == main, inspect
    assert lab.run(host, ["cat", f"/proc/{main}/comm"]).stdout.strip() == "sleep"
    # Inside: the relay socket, not systemd's, and the shim's relay is gone after READY=1.
    script = "echo $NOTIFY_SOCKET; ls /run/notify; test -e /run/systemd/notify || echo no-systemd-socket"
    env = lab.run(host, ["berth", "exec", "sd-ok", "sh", "-c", script])
    assert env.stdout.split() == ["/run/notify/notify.sock", "no-systemd-socket"], env.stdout
    procs = lab.run(host, ["systemctl", "show", "berth-sd-ok.service", "--property=ControlGroup"]).stdout
    tasks = lab.run(
        host, ["sh", "-c", f"cat /sys/fs/cgroup/systemd{procs.split('=', 1)[1].strip()}/cgroup.procs"]
    )
    assert tasks.stdout.split() == [str(main)], tasks.stdout
    lab.berth(host, "rm", "-f", "sd-ok")


def test_the_relay_works_in_a_user_namespace(lab: Lab, host: str) -> None:
    """The relay's socket dir is berth's own mount, after the spec's: the container's mapped root
    reaches it, and READY=1 gets through (it once crashed the start: the mounts were miscounted)."""
    lab.berth(host, "run", "-d", "--name", "sd-userns", "--sdnotify", "container", "--userns", "auto",
              "--stop-signal", "KILL", "-v", "sdvol:/data", "sdapp:1",
              "sdready", "READY=1", "sleep", "1000")  # fmt: skip
    try:
        props = unit(lab, host, "sd-userns", "ActiveState", "MainPID")
        assert props["ActiveState"] == "active", props
        uid = lab.run(host, ["stat", "-c", "%u", f"/proc/{props['MainPID']}"]).stdout.strip()
        assert int(uid) == lab.berth(host, "inspect", "sd-userns")["data"][0]["userns"]["uid"]
    finally:
        lab.berth(host, "rm", "-f", "sd-userns")
        lab.run(host, ["rm", "-rf", "/var/lib/berth/volumes/sdvol"])
    assert leftovers(lab, host, "sd-userns") == ""


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["sh", "-c", "sleep 0.3; exit 3"], "it exited with status 3 before it sent READY=1"),
        (["sleep", "1000"], "it did not send READY=1 within 2s (start_timeout)"),
    ],
)
def test_run_fails_clearly_without_ready(lab: Lab, host: str, argv: list[str], why: str) -> None:
    out = lab.berth(host, "run", "-d", "--name", "sd-bad", "--sdnotify", "container", "--start-timeout", "2",
                    "--stop-signal", "KILL", "sdapp:1", *argv, check=False)  # fmt: skip
    assert out["exit_code"] != 0
    assert out["error"]["message"] == f"container sd-bad failed to start: {why}", out["error"]
    assert leftovers(lab, host, "sd-bad") == ""


def deployment(command: list[str], version: str) -> dict[str, object]:
    return {"name": "ready", "keep": 2, "drain": 0, "containers": [{
        "role": "web", "image": "sdapp:1", "ports": [f"{PORT}:80"], "stop_signal": "KILL",
        "command": command, "env": {"VERSION": version},
        "health": {"notify": True, "deadline": "3s", "min_healthy": "200ms"}}]}  # fmt: skip


def test_deploy_gate_waits_for_ready_and_rolls_back_without_it(lab: Lab, host: str) -> None:
    ok = deployment(["sdready", "STATUS=serving\\nREADY=1", *HTTPD], "1")
    first = lab.berth(host, "deploy", "ready", "-f", write_spec(lab, host, ok, "/var/lib/berth/ready.json"))
    health = first["data"]["health"]
    assert health["result"] == "passed" and first["data"]["current"] == 1, health
    assert serving(lab, host, port=PORT) == "v1"

    never = deployment(HTTPD, "2")  # serves, but never says READY=1
    out = lab.berth(host, "deploy", "ready", "-f", write_spec(lab, host, never, "/var/lib/berth/ready.json"),
                    check=False)  # fmt: skip
    assert out["exit_code"] != 0 and out["error"]["kind"] == "deploy-failed", out
    message = out["error"]["message"]
    assert (
        "revision 2 failed its health gate: container ready-2-web did not send READY=1 within 3s" in message
    )
    assert message.endswith("revision 1 serves"), message
    details = out["error"]["details"]
    health = details["health"]
    assert details["serving"] == 1 and health["probe"] == "no READY=1", details
    assert health["exit"]["service_result"] == "timeout" and health["container"] == "ready-2-web", health
    # Rolled back: revision 1 serves, revision 2 failed and left no unit behind.
    status = lab.berth(host, "status", "ready")["data"]
    assert status["current"] == 1 and status["serving"], status
    assert serving(lab, host, port=PORT) == "v1"
    history = lab.berth(host, "history", "ready")["data"]
    assert [r["state"] for r in history["revisions"]] == ["active", "failed"], json.dumps(history)
    assert history["events"][-1]["result"] == "rolled-back"
    assert leftovers(lab, host, "ready-2") == ""
