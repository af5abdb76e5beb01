"""berth.fleet.container against a fake runtime: the request it sends, and what it makes of each answer."""

from __future__ import annotations

import json

import pytest
from ansible_collections.berth.fleet.plugins.modules import container

APPLY = ["container", "apply", "-f", "-", "--json"]
SLEEP = ["/bin/sleep", "600"]
BASE = {"name": "web", "rootfs": "/srv/rootfs", "command": SLEEP}
DESCRIBED = {
    "name": "web",
    "status": "running",
    "unit": "berth-web.service",
    "spec_hash": "h1",
    "spec": {"name": "web"},
    "pid": 4242,
    "check_mode": False,
}
CREATE = [{"action": "create", "target": "web"}, {"action": "start", "target": "web"}]
DIFF = {"before": {"status": "absent", "spec": None}, "after": {"status": "running", "spec": {"name": "web"}}}


# (id, module args, the document the runtime must get on stdin)
REQUEST_CASES = [
    (
        "only-what-is-set",
        BASE,
        {"state": "started", "spec": {"name": "web", "rootfs": "/srv/rootfs", "command": SLEEP}},
    ),
    (
        "every-option",
        {
            "name": "web",
            "state": "created",
            "image": "web:1",
            "command": ["httpd"],
            "entrypoint": ["/bin/tini", "--"],
            "env": {"PORT": 8080, "MODE": "prod"},
            "workdir": "/srv",
            "user": "app:app",
            "hostname": "web-1",
            "mounts": [
                {"type": "bind", "source": "/etc/app", "target": "/etc/app", "read_only": True},
                {"type": "tmpfs", "target": "/tmp", "size": "64M", "mode": "1777"},
                {"type": "volume", "source": "data", "target": "/data"},
                {"type": "bind", "source": "/srv/shared", "target": "/shared", "idmap": True},
            ],
            "secrets": [{"name": "db", "source": "/etc/app/db"}],
            "read_only": True,
            "restart": "on-failure:3",
            "stop_signal": "SIGINT",
            "stop_timeout": 30,
            "cap_add": ["NET_ADMIN"],
            "cap_drop": ["ALL"],
            "privileged": False,
            "no_new_privileges": True,
            "seccomp": "unconfined",
            "labels": {"tier": "front", "replicas": 3},
            "slice": "shop-web",
            "network": "host",
            "resources": {
                "memory_max": 134217728,
                "memory_high": "100M",
                "memory_swap_max": "0",
                "cpu_quota": "50%",
                "cpu_weight": 200,
                "io_weight": 50,
                "tasks_max": "infinity",
                "cpus": "0-1",
                "nice": 5,
                "io_read_bandwidth_max": {"/dev/vda": "10M"},
            },
        },
        {
            "state": "created",
            "spec": {
                "name": "web",
                "image": "web:1",
                "command": ["httpd"],
                "entrypoint": ["/bin/tini", "--"],
                "env": {"PORT": "8080", "MODE": "prod"},
                "workdir": "/srv",
                "user": "app:app",
                "hostname": "web-1",
                "mounts": [
                    {"type": "bind", "source": "/etc/app", "target": "/etc/app", "read_only": True},
                    {"type": "tmpfs", "target": "/tmp", "size": "64M", "mode": "1777"},
                    {"type": "volume", "source": "data", "target": "/data"},
                    {"type": "bind", "source": "/srv/shared", "target": "/shared", "idmap": True},
                ],
                "secrets": [{"name": "db", "source": "/etc/app/db"}],
                "read_only": True,
                "restart": "on-failure:3",
                "stop_signal": "SIGINT",
                "stop_timeout": 30,
                "cap_add": ["NET_ADMIN"],
                "cap_drop": ["ALL"],
                "privileged": False,
                "no_new_privileges": True,
                "seccomp": "unconfined",
                "labels": {"tier": "front", "replicas": "3"},
                "slice": "shop-web",
                "network": "host",
                "resources": {
                    "memory_max": "134217728",
                    "memory_high": "100M",
                    "memory_swap_max": "0",
                    "cpu_quota": "50%",
                    "cpu_weight": 200,
                    "io_weight": 50,
                    "tasks_max": "infinity",
                    "cpus": "0-1",
                    "nice": 5,
                    "io_read_bandwidth_max": {"/dev/vda": "10M"},
                },
            },
        },
    ),
    (
        "empty-resources-left-out",
        dict(BASE, resources={}),
        {"state": "started", "spec": {"name": "web", "rootfs": "/srv/rootfs", "command": SLEEP}},
    ),
    (
        "int-stop-signal-is-a-string",
        dict(BASE, stop_signal=15),
        {"state": "started", "spec": dict(BASE, stop_signal="15")},
    ),
    ("absent-sends-the-name-only", {"name": "web", "state": "absent"}, {"state": "absent", "name": "web"}),
    (
        "absent-ignores-the-spec",
        dict(BASE, state="absent", env={"A": "1"}),
        {"state": "absent", "name": "web"},
    ),
    (
        "layers",
        {"name": "web", "layers": ["/l/1", "/l/2"], "command": SLEEP, "state": "stopped"},
        {"state": "stopped", "spec": {"name": "web", "layers": ["/l/1", "/l/2"], "command": SLEEP}},
    ),
    ("restarted", dict(BASE, state="restarted"), {"state": "restarted", "spec": BASE}),
    (
        "network-and-ports",
        dict(BASE, network="shop", ports=["8080:80", "127.0.0.1:8053:53/udp"]),
        {"state": "started", "spec": dict(BASE, network="shop", ports=["8080:80", "127.0.0.1:8053:53/udp"])},
    ),
    (
        "networks-in-order",
        dict(BASE, networks=["front", "bridge"], ports=["80:80"]),
        {"state": "started", "spec": dict(BASE, networks=["front", "bridge"], ports=["80:80"])},
    ),
    ("userns-auto", dict(BASE, userns="auto"), {"state": "started", "spec": dict(BASE, userns="auto")}),
    (
        "userns-templated-numbers-are-ints",
        dict(BASE, userns={"uid": "100000", "gid": 200000, "size": "65536"}),
        {"state": "started", "spec": dict(BASE, userns={"uid": 100000, "gid": 200000, "size": 65536})},
    ),
    (
        "sdnotify-container-with-start-timeout",
        dict(BASE, sdnotify="container", start_timeout=5),
        {"state": "started", "spec": dict(BASE, sdnotify="container", start_timeout=5)},
    ),
    (
        "empty-ports-are-sent",
        dict(BASE, network="bridge", ports=[]),
        {"state": "started", "spec": dict(BASE, network="bridge", ports=[])},
    ),
]


@pytest.mark.parametrize("args, doc", [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES])
def test_request_goes_to_stdin_never_argv(run_module, fake_runtime, args, doc):
    fake_runtime.answer(command="container apply", data=DESCRIBED)
    run = run_module(container, dict(args, runtime_path=str(fake_runtime.path)))
    assert not run.failed, run.result
    [call] = fake_runtime.calls()
    assert call["argv"] == APPLY
    assert json.loads(call["stdin"]) == doc


# (id, runtime's envelope fields, check_mode, diff, expected items of the module's result)
OUTCOME_CASES = [
    (
        "created",
        {"changed": True, "actions": CREATE, "data": DESCRIBED, "diff": DIFF},
        False,
        False,
        {
            "changed": True,
            "actions": CREATE,
            "spec_hash": "h1",
            "container": dict(DESCRIBED, check_mode=None),
        },
    ),
    (
        "unchanged",
        {"changed": False, "data": DESCRIBED, "diff": {"before": DIFF["after"], "after": DIFF["after"]}},
        False,
        False,
        {"changed": False, "actions": [], "spec_hash": "h1"},
    ),
    (
        "diff-when-asked",
        {"changed": True, "actions": CREATE, "data": DESCRIBED, "diff": DIFF},
        False,
        True,
        {"changed": True, "diff": DIFF},
    ),
    (
        "check-mode-reports-the-plan",
        {
            "changed": True,
            "actions": CREATE,
            "data": {"name": "web", "status": "absent", "spec_hash": None, "check_mode": True},
            "diff": DIFF,
        },
        True,
        True,
        {"changed": True, "actions": CREATE, "spec_hash": None, "diff": DIFF},
    ),
]


@pytest.mark.parametrize(
    "fields, check_mode, diff, expected", [c[1:] for c in OUTCOME_CASES], ids=[c[0] for c in OUTCOME_CASES]
)
def test_result_mirrors_the_runtime(run_module, fake_runtime, fields, check_mode, diff, expected):
    fake_runtime.answer(command="container apply", **fields)
    run = run_module(
        container, dict(BASE, runtime_path=str(fake_runtime.path)), check_mode=check_mode, diff=diff
    )
    assert not run.failed, run.result
    for key, value in expected.items():
        wanted = {k: v for k, v in value.items() if k != "check_mode"} if key == "container" else value
        assert run.result.get(key) == wanted, key
    assert "check_mode" not in run.result["container"]
    assert ("diff" in run.result) == diff
    assert ("--check" in fake_runtime.calls()[0]["argv"]) == check_mode


def warning_texts(result):
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def test_runtime_warnings_become_ansible_warnings(run_module, fake_runtime):
    fake_runtime.answer(command="container apply", data=DESCRIBED, warnings=["cpus: not enforced here"])
    run = run_module(container, dict(BASE, runtime_path=str(fake_runtime.path)))
    assert warning_texts(run.result) == ["cpus: not enforced here"]


def test_runtime_error_is_one_clear_message(run_module, fake_runtime):
    fake_runtime.reply(
        {
            "protocol": 1,
            "runtime": "0.1.0",
            "command": "container apply",
            "ok": False,
            "error": {
                "kind": "invalid-input",
                "message": "spec field restart: 'sometimes' is not no",
                "details": {},
            },
        },
        rc=2,
    )
    run = run_module(container, dict(BASE, restart="sometimes", runtime_path=str(fake_runtime.path)))
    assert run.failed and run.result["changed"] is False
    assert run.result["error"]["kind"] == "invalid-input"
    assert run.result["msg"] == "spec field restart: 'sometimes' is not no"


# (id, module args; the runtime must never be called, and the msg must hold these words)
REFUSED_CASES = [
    (
        "no-source",
        {"name": "web", "command": SLEEP},
        ["state is started but any of the following are missing: image, rootfs, layers"],
    ),
    (
        "two-sources",
        dict(BASE, image="web:1"),
        ["parameters are mutually exclusive: image|rootfs|layers"],
    ),
    ("unknown-state", dict(BASE, state="running"), ["value of state must be one of"]),
    ("unknown-option", dict(BASE, publish=["80:80"]), ["Unsupported parameters", "publish"]),
    (
        "base-60-port",
        dict(BASE, network="web", ports=["8080:80", 133342]),
        ["ports[1]", "int 133342", "base-60", "'2222:22'"],
    ),
    ("number-port", dict(BASE, network="web", ports=[80]), ["ports[0] must be a quoted string", "int 80"]),
    ("dict-port", dict(BASE, network="web", ports=[{"host_port": 80}]), ["ports[0]", "dict"]),
    ("networks-not-list", dict(BASE, networks={"a": 1}), ["networks", "list"]),
    ("bool-env", dict(BASE, env={"DEBUG": True}), ["env.DEBUG is the boolean True", "'true'"]),
    ("null-label", dict(BASE, labels={"x": None}), ["labels.x has no value"]),
    (
        "unquoted-mode",
        dict(BASE, mounts=[{"type": "tmpfs", "target": "/t", "mode": 493}]),
        ["mounts[0].mode", "quoted"],
    ),
    ("bad-mount-type", dict(BASE, mounts=[{"type": "nfs", "target": "/t"}]), ["type", "bind, volume, tmpfs"]),
    ("mount-without-target", dict(BASE, mounts=[{"type": "tmpfs"}]), ["target"]),
    ("weight-not-int", dict(BASE, resources={"cpu_weight": "heavy"}), ["cpu_weight", "int"]),
    ("timeout-not-int", dict(BASE, stop_timeout="soon"), ["stop_timeout", "int"]),
    ("secret-without-source", dict(BASE, secrets=[{"name": "db"}]), ["source"]),
]


@pytest.mark.parametrize("args, words", [c[1:] for c in REFUSED_CASES], ids=[c[0] for c in REFUSED_CASES])
def test_bad_options_never_reach_the_runtime(run_module, fake_runtime, args, words):
    fake_runtime.answer(data=DESCRIBED)
    run = run_module(container, dict(args, runtime_path=str(fake_runtime.path)))
    assert run.failed, run.result
    assert fake_runtime.calls() == []
    for word in words:
        assert word in run.result["msg"], run.result["msg"]


def test_missing_runtime_names_the_host_role(run_module, tmp_path):
    run = run_module(container, dict(BASE, runtime_path=str(tmp_path / "nope")))
    assert run.failed and run.result["error"]["kind"] == "runtime-missing"
    assert "berth.fleet.host" in run.result["msg"]


def test_other_protocol_is_refused(run_module, fake_runtime):
    fake_runtime.reply({"protocol": 2, "runtime": "9.0", "command": "container apply", "ok": True})
    run = run_module(container, dict(BASE, runtime_path=str(fake_runtime.path)))
    assert run.failed and run.result["error"]["kind"] == "protocol-mismatch"
    assert "speaks protocol 2" in run.result["msg"] and "berth.fleet.host" in run.result["msg"]
