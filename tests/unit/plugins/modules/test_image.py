"""berth.fleet.image against a fake runtime: the request, conflicts refused early, secrets never shown."""

from __future__ import annotations

import json

import pytest
from ansible_collections.berth.fleet.plugins.modules import image

APPLY = ["image", "apply", "-f", "-", "--json"]
PASSWORD = "s3cr3t-Pa55word"
IMAGE = {"digest": "sha256:aa", "id": "sha256:bb", "tags": ["localhost/web:1"]}
DATA = {"name": "web:1", "state": "present", "digest": "sha256:aa", "image": IMAGE, "check_mode": False}
PULLED = [{"action": "fetch-blob", "target": "sha256:cc"}, {"action": "record-image", "target": "sha256:aa"}]
DIFF = {"before": {"state": "absent", "image": None}, "after": {"state": "present", "image": IMAGE}}
REGISTRY_DEFAULTS = {"insecure": False, "retries": 4, "timeout": 30.0, "min_rate": 1024}

# (id, module args, the document the runtime must get on stdin)
REQUEST_CASES = [
    ("pull-by-default", {"name": "busybox"}, {"name": "busybox", "state": "present", "force": False}),
    (
        "pull-with-credentials",
        {
            "name": "reg.example.com/app:2",
            "force": True,
            "platform": "linux/arm64",
            "registry": {"username": "deploy", "password": PASSWORD, "ca_cert": "/etc/ca.pem"},
        },
        {
            "name": "reg.example.com/app:2",
            "state": "present",
            "force": True,
            "platform": "linux/arm64",
            "registry": dict(REGISTRY_DEFAULTS, username="deploy", password=PASSWORD, ca_cert="/etc/ca.pem"),
        },
    ),
    (
        "auth-file-is-renamed",
        {"name": "reg.example.com/app:2", "registry": {"auth_file": "/root/auth.json", "insecure": True}},
        {
            "name": "reg.example.com/app:2",
            "state": "present",
            "force": False,
            "registry": dict(REGISTRY_DEFAULTS, authfile="/root/auth.json", insecure=True),
        },
    ),
    (
        "build",
        {"name": "web:1", "build": {"context": "/srv/web", "args": {"V": 2}}, "tags": ["web:latest"]},
        {
            "name": "web:1",
            "state": "present",
            "force": False,
            "tags": ["web:latest"],
            "build": {
                "context": "/srv/web",
                "args": {"V": "2"},
                "no_cache": False,
                "reproducible": False,
            },
        },
    ),
    (
        "import",
        {"name": "base:1", "source": "import", "archive": {"path": "/tmp/b.tar", "changes": ['CMD ["sh"]']}},
        {
            "name": "base:1",
            "state": "present",
            "source": "import",
            "force": False,
            "import": {
                "path": "/tmp/b.tar",
                "format": "auto",
                "changes": ['CMD ["sh"]'],
                "source_date_epoch": 0,
            },
        },
    ),
    (
        "push",
        {"name": "web:1", "source": "local", "push": True, "push_destination": "reg.example.com/web:1"},
        {
            "name": "web:1",
            "state": "present",
            "source": "local",
            "force": False,
            "push": {"destination": "reg.example.com/web:1"},
        },
    ),
    (
        "push-to-its-name",
        {"name": "reg.example.com/web:1", "push": True},
        {"name": "reg.example.com/web:1", "state": "present", "force": False, "push": {}},
    ),
    ("absent", {"name": "web:1", "state": "absent"}, {"name": "web:1", "state": "absent", "force": False}),
    (
        "build-target",
        {"name": "web:1-test", "build": {"context": "/srv/web", "target": "test"}},
        {
            "name": "web:1-test",
            "state": "present",
            "force": False,
            "build": {"context": "/srv/web", "target": "test", "no_cache": False, "reproducible": False},
        },
    ),
    (
        "import-by-digest-without-archive",
        {"name": "app:2", "archive": {"digest": "sha256:" + "a" * 64, "format": "oci"}},
        {
            "name": "app:2",
            "state": "present",
            "force": False,
            "import": {"digest": "sha256:" + "a" * 64, "format": "oci", "source_date_epoch": 0},
        },
    ),
]


@pytest.mark.parametrize("args, doc", [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES])
def test_request_goes_to_stdin_never_argv(run_module, fake_runtime, args, doc):
    fake_runtime.answer(command="image apply", data=DATA)
    run = run_module(image, dict(args, runtime_path=str(fake_runtime.path)))
    assert not run.failed, run.result
    [call] = fake_runtime.calls()
    assert call["argv"] == APPLY
    assert json.loads(call["stdin"]) == doc


# (id, envelope fields, check_mode, expected items)
OUTCOME_CASES = [
    (
        "pulled",
        {"changed": True, "actions": PULLED, "data": DATA, "diff": DIFF},
        False,
        {"changed": True, "actions": PULLED, "image": IMAGE, "digest": "sha256:aa", "diff": DIFF},
    ),
    (
        "present-already",
        {"changed": False, "data": DATA},
        False,
        {"changed": False, "actions": [], "image": IMAGE},
    ),
    (
        "check-mode-image-is-the-current-one",
        {
            "changed": True,
            "actions": PULLED,
            "data": dict(DATA, image=None, check_mode=True),
            "diff": DIFF,
        },
        True,
        {"changed": True, "image": None, "digest": "sha256:aa"},
    ),
]


@pytest.mark.parametrize(
    "fields, check_mode, expected", [c[1:] for c in OUTCOME_CASES], ids=[c[0] for c in OUTCOME_CASES]
)
def test_result_mirrors_the_runtime(run_module, fake_runtime, fields, check_mode, expected):
    fake_runtime.answer(command="image apply", **fields)
    run = run_module(
        image, {"name": "web:1", "runtime_path": str(fake_runtime.path)}, check_mode=check_mode, diff=True
    )
    assert not run.failed, run.result
    assert {k: run.result.get(k) for k in expected} == expected
    assert ("--check" in fake_runtime.calls()[0]["argv"]) == check_mode


# (id, module args; refused before the runtime is called, msg words)
REFUSED_CASES = [
    (
        "absent-with-build",
        {"state": "absent", "build": {"context": "/srv"}},
        ["state=absent conflicts with build"],
    ),
    ("absent-with-archive", {"state": "absent", "archive": {"path": "/a.tar"}}, ["conflicts with archive"]),
    ("absent-with-push", {"state": "absent", "push": True}, ["conflicts with push"]),
    (
        "archive-without-path-or-digest",
        {"archive": {"format": "oci"}},
        ["one of the following", "path, digest"],
    ),
    (
        "controller-archive-without-the-action",
        {"archive": {"path": "/a.tar", "location": "controller"}},
        ["needs the berth.fleet.image action plugin"],
    ),
    ("absent-with-tags", {"state": "absent", "tags": ["x:1"]}, ["conflicts with tags"]),
    (
        "build-and-archive",
        {"build": {"context": "/s"}, "archive": {"path": "/a"}},
        ["mutually exclusive: build|archive"],
    ),
    (
        "source-pull-with-build",
        {"source": "pull", "build": {"context": "/s"}},
        ["source=pull conflicts with build"],
    ),
    (
        "source-build-without-build",
        {"source": "build"},
        ["source is build but all of the following are missing: build"],
    ),
    (
        "destination-without-push",
        {"push_destination": "r.example.com/a:1"},
        ["push_destination needs push=true"],
    ),
    (
        "password-without-username",
        {"registry": {"password": PASSWORD}},
        ["missing parameter(s) required by 'password': username"],
    ),
    ("unknown-option", {"pull_policy": "always"}, ["Unsupported parameters", "pull_policy"]),
    ("unknown-registry-option", {"registry": {"pasword": PASSWORD}}, ["Unsupported parameters", "pasword"]),
    ("bad-type", {"force": "maybe"}, ["force", "bool"]),
    (
        "bool-build-arg",
        {"build": {"context": "/s", "args": {"DEBUG": True}}},
        ["build.args.DEBUG is the boolean True"],
    ),
]


@pytest.mark.parametrize("args, words", [c[1:] for c in REFUSED_CASES], ids=[c[0] for c in REFUSED_CASES])
def test_bad_options_never_reach_the_runtime(run_module, fake_runtime, args, words):
    fake_runtime.answer(data=DATA)
    run = run_module(image, dict({"name": "web:1"}, **args, runtime_path=str(fake_runtime.path)))
    assert run.failed, run.result
    assert fake_runtime.calls() == []
    for word in words:
        assert word in run.result["msg"], run.result["msg"]


SECRET_CASES = [
    ("success", {"registry": {"username": "u", "password": PASSWORD}}, None),
    ("validation-error", {"registry": {"username": "u", "password": PASSWORD}, "force": "maybe"}, None),
    (
        "conflict",
        {"registry": {"username": "u", "password": PASSWORD}, "state": "absent", "push": True},
        None,
    ),
    (
        "runtime-error",
        {"registry": {"username": "u", "password": PASSWORD}},
        {
            "kind": "permission-denied",
            "message": f"registry refused u:{PASSWORD}",
            "details": {"pw": PASSWORD},
        },
    ),
]


@pytest.mark.parametrize("args, error", [c[1:] for c in SECRET_CASES], ids=[c[0] for c in SECRET_CASES])
def test_password_is_never_in_the_output(run_module, fake_runtime, capsys, args, error):
    if error:
        fake_runtime.reply(
            {"protocol": 1, "runtime": "0.1.0", "command": "image apply", "ok": False, "error": error}, rc=4
        )
    else:
        fake_runtime.answer(command="image apply", data=DATA, diff=DIFF)
    run = run_module(
        image, dict({"name": "reg.example.com/web:1"}, **args, runtime_path=str(fake_runtime.path)), diff=True
    )
    assert PASSWORD not in json.dumps(run.result)
    for call in fake_runtime.calls():
        assert PASSWORD not in " ".join(call["argv"])
