"""`userns: auto` on a real host: root in the container is an unprivileged range of host ids.

One image, a few containers: what a user checks with `id`, `ps` and `ls -n` inside and outside.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from labkit import Lab, berth
from rootfs import build_rootfs

pytestmark = pytest.mark.lab

ROOTFS = "/var/lib/berth/userns-rootfs"
IMAGE = "userns-base"
DATA = "/var/lib/berth/containers"


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[str]:
    h = lab.hosts[-1]
    build_rootfs(lab, h, ROOTFS)
    lab.run(h, ["sh", "-c", f"tar -C {ROOTFS} -cf {ROOTFS}.tar . && echo s3cret > {ROOTFS}.secret"])
    lab.berth(h, "image", "import", "-t", IMAGE, f"{ROOTFS}.tar")
    try:
        yield h
    finally:
        lab.run(h, ["sh", "-c", "berth rm -f ua ub uc ud; true"], check=False)
        lab.run(
            h,
            [
                "sh",
                "-c",
                f"berth image rm {IMAGE}; rm -rf {ROOTFS} {ROOTFS}.tar {ROOTFS}.secret {ROOTFS}.private",
            ],
        )


def _info(lab: Lab, host: str, name: str) -> dict[str, Any]:
    info: dict[str, Any] = lab.berth(host, "inspect", name)["data"][0]
    return info


@pytest.fixture(scope="module")
def ua(lab: Lab, host: str) -> dict[str, Any]:
    """A detached auto container with a named volume and a secret, restarted always."""
    lab.berth(host, "run", "-d", "--name", "ua", "--userns", "auto", "--restart", "always",
              "--stop-signal", "KILL", "-v", "uvol:/data", "--secret", f"tok={ROOTFS}.secret",
              IMAGE, "sleep", "600")  # fmt: skip
    return _info(lab, host, "ua")


def _host_ids(lab: Lab, host: str, pid: object) -> tuple[int, int]:
    """The real uid and gid of `pid` as the host sees them (/proc/PID/status)."""
    status = lab.run(host, ["cat", f"/proc/{pid}/status"]).stdout
    fields = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()}
    return int(fields["Uid"][0]), int(fields["Gid"][0])


def test_root_inside_is_the_mapped_range_outside(lab: Lab, host: str, ua: dict[str, Any]) -> None:
    ids = ua["userns"]
    assert ids["size"] == 65536 and ids["uid"] >= 1 and ids["gid"] >= 1
    assert _host_ids(lab, host, ua["pid"]) == (ids["uid"], ids["gid"])
    ps = lab.run(host, ["ps", "-o", "uid=,gid=", "-p", str(ua["pid"])]).stdout.split()
    assert ps == [str(ids["uid"]), str(ids["gid"])]
    script = "id -u; id -g; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox /etc/passwd"
    inside = lab.run(host, ["berth", "exec", "ua", "sh", "-c", script])
    lines = inside.stdout.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(ids["uid"]), "65536"]
    assert lines[3:] == ["0:0", "0:0"]  # the image's files, owned by 0 on disk, are root's inside


def test_writes_land_in_the_upper_dir_as_the_mapped_uid(lab: Lab, host: str, ua: dict[str, Any]) -> None:
    ids = ua["userns"]
    lab.run(host, ["berth", "exec", "ua", "sh", "-c", "echo hi > /root/new && echo v > /data/v"])
    owner = lab.run(host, ["stat", "-c", "%u:%g", f"{DATA}/ua/upper/root/new"]).stdout.strip()
    assert owner == f"{ids['uid']}:{ids['gid']}"
    # The image's layer is untouched and still root's; the volume is idmapped: root's on disk too.
    layer = lab.run(host, ["stat", "-c", "%u", f"{ua['layers'][0]}/bin/busybox"]).stdout.strip()
    assert layer == "0"
    assert lab.run(host, ["sh", "-c", "stat -c %u /var/lib/berth/volumes/uvol/data/v"]).stdout.strip() == "0"


def test_exec_joins_the_user_namespace_and_secrets_are_readable(
    lab: Lab, host: str, ua: dict[str, Any]
) -> None:
    outside = lab.run(host, ["readlink", f"/proc/{ua['pid']}/ns/user", "/proc/1/ns/user"]).stdout.split()
    inside = lab.run(
        host, ["berth", "exec", "ua", "sh", "-c", "readlink /proc/self/ns/user; cat /run/secrets/tok"]
    )
    ns, secret = inside.stdout.split()
    assert ns == outside[0] != outside[1]
    assert secret == "s3cret"


def test_concurrent_auto_containers_get_disjoint_ranges_freed_by_rm(
    lab: Lab, host: str, ua: dict[str, Any]
) -> None:
    both = (
        "berth create --name ub --userns auto {0} true & berth create --name uc --userns auto {0} true & wait"
    )
    lab.run(host, ["sh", "-c", both.format(IMAGE)])
    ranges = {n: _info(lab, host, n)["userns"] for n in ("ua", "ub", "uc")}
    spans = sorted((r["uid"], r["uid"] + r["size"]) for r in ranges.values())
    assert all(a[1] <= b[0] for a, b in pairwise(spans)), ranges
    gids = sorted(r["gid"] for r in ranges.values())
    assert len(set(gids)) == 3
    freed = ranges["ub"]
    lab.berth(host, "rm", "ub")
    lab.berth(host, "create", "--name", "ud", "--userns", "auto", IMAGE, "true")
    assert _info(lab, host, "ud")["userns"] == freed  # the lowest free range: ub's, again
    lab.berth(host, "rm", "uc", "ud")


def test_restart_and_restore_keep_the_range(lab: Lab, host: str, ua: dict[str, Any]) -> None:
    ids = ua["userns"]
    lab.berth(host, "restart", "ua")
    again = _info(lab, host, "ua")
    assert again["userns"] == ids and _host_ids(lab, host, again["pid"])[0] == ids["uid"]
    # As after a reboot, without one: the unit and /run gone, the record from an earlier boot.
    record = f"{DATA}/ua/record.json"
    lab.run(host, ["systemctl", "stop", "berth-ua.service"])
    doc = json.loads(lab.run(host, ["cat", record]).stdout)
    doc["boot"] = "an-earlier-boot"
    lab.run(host, ["sh", "-c", f"cat > {record} && rm -rf /run/berth/containers/ua"], input=json.dumps(doc))
    restored = lab.berth(host, "restore")["data"]
    assert {"name": "ua", "action": "started", "restart": "always"} in restored, restored
    back = _info(lab, host, "ua")
    assert back["status"] == "running" and back["userns"] == ids
    assert _host_ids(lab, host, back["pid"]) == (ids["uid"], ids["gid"])
    assert lab.run(host, ["berth", "exec", "ua", "cat", "/root/new"]).stdout == "hi\n"  # its upper dir


@pytest.mark.parametrize(
    ("userns", "message"),
    [
        ("bogus", "spec field userns: 'bogus' is not 'host', 'auto'"),
        ("100000:100000:0", "spec field userns.size: 0 ids"),
        ("0:100000:10", "would map the container's root to the host's root"),
        ("OVERLAP", "overlap those of container ua"),
    ],
)
def test_bad_userns_is_refused_and_leaves_nothing(
    lab: Lab, host: str, ua: dict[str, Any], userns: str, message: str
) -> None:
    if userns == "OVERLAP":
        ids = ua["userns"]
        userns = f"{ids['uid'] + 10}:{ids['gid'] + 10}:100"
    out = lab.berth(host, "run", "-d", "--name", "ubad", "--userns", userns, IMAGE, "true", check=False)
    assert out["exit_code"] != 0 and message in out["error"]["message"], out["error"]
    assert lab.run(host, ["test", "-e", f"{DATA}/ubad"], check=False).returncode == 1
    units = lab.run(host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-ubad*"])
    assert units.stdout.strip() == ""


def test_an_explicit_range_on_a_bridge_network(lab: Lab, host: str) -> None:
    """The runtime's netns (the host's) is joined before the userns; /sys is that netns's."""
    script = "id -u; cat /proc/self/uid_map /proc/self/gid_map; ls /sys/class/net"
    out = lab.run(host, ["berth", "run", "--rm", "--userns", "1000000000:1100000000:1000",
                         "--network", "bridge", IMAGE, "sh", "-c", script])  # fmt: skip
    assert out.stdout.split() == ["0", "0", "1000000000", "1000", "0", "1100000000", "1000", "eth0", "lo"]


def test_layers_on_a_filesystem_without_idmapped_mounts_are_refused(lab: Lab, host: str) -> None:
    """The lab host's own root is an overlayfs, which cannot be idmapped: said at create."""
    lab.run(host, ["sh", "-c", f"rm -rf /srv/userns-ovl && cp -a {ROOTFS} /srv/userns-ovl"])
    try:
        out = lab.berth(host, "run", "-d", "--name", "ubad", "--userns", "auto",
                        "--rootfs", "/srv/userns-ovl", "/bin/true", check=False)  # fmt: skip
        assert out["error"]["kind"] == "unsupported", out
        assert out["error"]["message"] == (
            "userns: cannot idmap image layer /srv/userns-ovl: its filesystem (overlayfs) does not "
            "support idmapped mounts"
        )
        assert lab.run(host, ["test", "-e", f"{DATA}/ubad"], check=False).returncode == 1
    finally:
        lab.run(host, ["rm", "-rf", "/srv/userns-ovl"])


def test_root_inside_is_not_root_over_the_hosts_files(lab: Lab, host: str) -> None:
    """A bind-mounted file only the host's root may read stays unreadable to the container's root."""
    lab.run(host, ["sh", "-c", f"echo host-only > {ROOTFS}.private && chmod 600 {ROOTFS}.private"])
    mount = f"{ROOTFS}.private:/private"
    out = lab.run(host, ["berth", "run", "--rm", "--userns", "auto", "-v", mount, IMAGE,
                         "sh", "-c", "stat -c %u /private; cat /private"], check=False)  # fmt: skip
    assert out.returncode != 0 and out.stdout.split() == ["65534"] and "Permission denied" in out.stderr
    same = lab.run(host, ["berth", "run", "--rm", "-v", mount, IMAGE, "cat", "/private"])  # userns: host
    assert same.stdout == "host-only\n"


def test_an_idmap_bind_mount_shows_the_hosts_ids_as_the_containers(lab: Lab, host: str) -> None:
    """podman's `:idmap`: on that mount the host's ids 0.. are the container's 0.., both ways."""
    src = f"{ROOTFS}.shared"  # on the host's data disk (ext4), which takes idmapped mounts
    lab.run(host, ["sh", "-c", f"rm -rf {src} && mkdir {src} && echo host > {src}/f && chmod 600 {src}/f"])
    try:
        script = "stat -c %u:%g /s/f; cat /s/f; echo mine > /s/g"
        out = lab.run(host, ["berth", "run", "--rm", "--userns", "auto", "-v", f"{src}:/s:idmap", IMAGE,
                             "sh", "-c", script])  # fmt: skip
        assert out.stdout.split() == ["0:0", "host"]
        assert lab.run(host, ["stat", "-c", "%u:%g", f"{src}/g"]).stdout.strip() == "0:0"
        ro = lab.run(host, ["berth", "run", "--rm", "--userns", "auto", "-v", f"{src}:/s:ro,idmap", IMAGE,
                            "sh", "-c", "cat /s/f; touch /s/h"], check=False)  # fmt: skip
        assert ro.stdout == "host\n" and "Read-only file system" in ro.stderr
    finally:
        lab.run(host, ["rm", "-rf", src])


def test_an_idmap_bind_mount_the_filesystem_cannot_idmap_is_refused_at_create(lab: Lab, host: str) -> None:
    """The lab host's own root is an overlayfs: its files cannot be idmapped; said at create."""
    lab.run(host, ["mkdir", "-p", "/srv/userns-bind"])
    try:
        out = lab.berth(host, "run", "-d", "--name", "ubind", "--userns", "auto",
                        "-v", "/srv/userns-bind:/b:idmap", IMAGE, "true", check=False)  # fmt: skip
        assert out["error"]["kind"] == "unsupported", out
        assert out["error"]["message"] == (
            "userns: cannot idmap bind mount source /srv/userns-bind: its filesystem (overlayfs) does "
            "not support idmapped mounts"
        )
        assert lab.run(host, ["test", "-e", f"{DATA}/ubind"], check=False).returncode == 1
        units = lab.run(host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-ubind*"])
        assert units.stdout.strip() == ""
    finally:
        lab.run(host, ["rm", "-rf", "/srv/userns-bind"])


@pytest.mark.slow
def test_a_reboot_brings_the_container_back_on_its_range(lab: Lab, host: str, ua: dict[str, Any]) -> None:
    """A real `berth lab reboot`: berth-restore.service starts it again, on the range it had."""
    lab.berth(host, "system", "install")
    berth("lab", "reboot", host, "--name", lab.name)
    lab.refresh()
    back = _info(lab, host, "ua")
    assert back["status"] == "running" and back["userns"] == ua["userns"]
    assert _host_ids(lab, host, back["pid"]) == (ua["userns"]["uid"], ua["userns"]["gid"])
    assert lab.run(host, ["berth", "exec", "ua", "id", "-u"]).stdout == "0\n"
