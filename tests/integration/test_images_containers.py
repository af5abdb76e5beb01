"""Images and containers together on a real host: build with RUN steps, run, protect, prune."""

from __future__ import annotations

import pytest
from labkit import Lab
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab

CONTAINERFILE = """\
FROM base
ENV GREETING=hello
RUN echo $GREETING > /greeting && rm /bin/vi && mkdir -p /srv/www && echo '<h1>hi</h1>' > /srv/www/index.html
WORKDIR /srv/www
CMD ["httpd", "-f", "-p", "8080"]
"""


@pytest.fixture(scope="module")
def host(lab: Lab) -> str:
    h = lab.hosts[0]
    build_rootfs(lab, h)
    lab.run(
        h, ["sh", "-c", f"mkdir -p /var/lib/berth/ctx && tar -C {ROOTFS} -cf /var/lib/berth/ctx/base.tar ."]
    )
    lab.run(h, ["sh", "-c", "cat > /var/lib/berth/ctx/Containerfile"], input=CONTAINERFILE)
    lab.berth(h, "image", "import", "-t", "base", "/var/lib/berth/ctx/base.tar")
    return h


def test_build_with_run_steps_then_run_the_image(lab: Lab, host: str) -> None:
    built = lab.berth(host, "image", "build", "-t", "web:1", "/var/lib/berth/ctx")
    assert built["changed"]
    again = lab.berth(host, "image", "build", "-t", "web:1", "/var/lib/berth/ctx")
    assert again["data"]["digest"] == built["data"]["digest"]  # every step cached
    # No build container is left behind.
    assert lab.run(host, ["sh", "-c", "ls /var/lib/berth/containers | grep build- || true"]).stdout == ""
    try:
        lab.berth(host, "run", "-d", "--name", "web1", "web:1")
        out = lab.run(
            host,
            [
                "berth",
                "exec",
                "web1",
                "sh",
                "-c",
                "cat /greeting; pwd; test -e /bin/vi || echo vi-gone; "
                "sleep 0.3; wget -qO- http://127.0.0.1:8080/",
            ],
        ).stdout.split()
        assert out == ["hello", "/srv/www", "vi-gone", "<h1>hi</h1>"]
        row = lab.berth(host, "inspect", "web1")["data"][0]
        assert row["image"]["digest"] == built["data"]["digest"] and row["argv"][0] == "httpd"
        busy = lab.berth(host, "image", "rm", "web:1", check=False)
        assert busy["exit_code"] != 0 and "in use" in busy["error"]["message"]
    finally:
        lab.run(host, ["berth", "rm", "-f", "web1"], check=False)
    lab.berth(host, "image", "rm", "web:1")
    lab.berth(host, "image", "verify")


def test_an_image_volume_without_a_mount_is_said_once_mounted_not(lab: Lab, host: str) -> None:
    """berth makes no anonymous volumes (podman's --image-volume=ignore): a VOLUME the spec mounts
    nothing on is a warning, since what is written there goes with the container."""
    ctx = "/var/lib/berth/volctx"
    lab.run(host, ["sh", "-c", f"mkdir -p {ctx} && cat > {ctx}/Containerfile"],
            input='FROM base\nVOLUME ["/var/data", "/cache/"]\n')  # fmt: skip
    lab.berth(host, "image", "build", "-t", "vol:1", ctx)
    try:
        bare = lab.berth(host, "create", "--name", "vol-bare", "vol:1", "true")
        assert [w.split(" and ")[0] for w in bare["warnings"]] == [
            "the image declares VOLUME /cache/",
            "the image declares VOLUME /var/data",
        ], bare["warnings"]
        mounted = lab.berth(host, "create", "--name", "vol-kept", "-v", "itimgvol:/var/data",
                            "--tmpfs", "/cache", "vol:1", "true")  # fmt: skip
        assert mounted["warnings"] == []
    finally:
        lab.run(
            host,
            ["sh", "-c", "berth rm -f vol-bare vol-kept; berth volume rm itimgvol; berth image rm vol:1"],
        )


def test_a_failing_run_step_says_so_and_leaves_nothing(lab: Lab, host: str) -> None:
    lab.run(
        host,
        ["sh", "-c", "mkdir -p /var/lib/berth/bad && cat > /var/lib/berth/bad/Containerfile"],
        input="FROM base\nRUN echo about to fail; exit 3\n",
    )
    out = lab.berth(host, "image", "build", "-t", "bad:1", "/var/lib/berth/bad", check=False)
    assert out["exit_code"] != 0 and "exit status 3" in out["error"]["message"]
    assert lab.run(host, ["sh", "-c", "ls /var/lib/berth/containers | grep build- || true"]).stdout == ""
    units = lab.run(
        host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-build-*"]
    ).stdout
    assert units.strip() == ""
    images = lab.berth(host, "image", "ls")["data"]["images"]
    assert all("localhost/bad:1" not in i.get("tags", []) for i in images)
    lab.berth(host, "image", "verify")


def test_a_container_needs_something_to_run(lab: Lab, host: str) -> None:
    lab.run(host, ["sh", "-c", f"tar -C {ROOTFS} -cf /var/lib/berth/ctx/nocmd.tar ."])
    lab.berth(host, "image", "import", "-t", "nocmd", "/var/lib/berth/ctx/nocmd.tar")
    out = lab.berth(host, "run", "-d", "--name", "nothing", "nocmd", check=False)
    assert out["error"]["kind"] == "invalid-input" and "no command" in out["error"]["message"]
    assert lab.run(host, ["test", "-e", "/var/lib/berth/containers/nothing"], check=False).returncode == 1
    lab.berth(host, "image", "rm", "nocmd")


def test_container_commands_during_a_build_neither_deadlock_nor_fail(lab: Lab, host: str) -> None:
    """A build holds the store lock while its RUN step creates a container; `berth run` and `rm`
    of image containers meanwhile take both locks in the same order, so all of them finish."""
    ctx = "/var/lib/berth/ctx-slow"
    lab.run(host, ["sh", "-c", f"mkdir -p {ctx} && cat > {ctx}/Containerfile"],
            input="FROM base\nRUN sleep 2 && echo slow > /slow\n")  # fmt: skip
    lab.berth(host, "run", "-d", "--name", "lk-old", "base", "sleep", "600")
    script = (
        f"berth image build --no-cache -t slow:1 {ctx} >/dev/null 2>&1 & b=$!; "
        'for i in $(seq 100); do [ -n "$(systemctl list-units --state=active --plain --no-legend '
        "'berth-build-*')\" ] && break; sleep 0.05; done; "
        "timeout 60 berth rm -f lk-old >/dev/null; echo rm=$?; "
        "timeout 60 berth run -d --name lk-new base sleep 600 >/dev/null; echo run=$?; "
        "wait $b; echo build=$?"
    )
    try:
        out = lab.run(host, ["sh", "-c", script], timeout=180).stdout.split()
        assert out == ["rm=0", "run=0", "build=0"], out
        assert lab.berth(host, "inspect", "lk-new")["data"][0]["status"] == "running"
        assert lab.berth(host, "image", "inspect", "slow:1")["ok"]
    finally:
        lab.run(host, ["sh", "-c", "berth rm -f lk-old lk-new; berth image rm slow:1; true"], check=False)
