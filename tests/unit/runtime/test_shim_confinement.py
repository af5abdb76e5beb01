"""The shim's defences against hostile images, on a plain directory as the container's root.

Mounting needs a real host (tests/integration/test_escapes.py); these pin the resolution and
reading rules: no symlink at a kernel mount point, masks skipped only when missing, and a
bounded, regular-file-only read of the image's /etc/passwd.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth import kernel as k
from berth.shim import process, rootfs
from berth.shim.rootfs import SetupError


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield tmp_path, fd
    finally:
        os.close(fd)


def test_a_symlink_at_a_kernel_mount_point_is_refused_naming_it(root: tuple[Path, int]) -> None:
    path, fd = root
    (path / "x" / "y" / "z").mkdir(parents=True)
    (path / "x" / "fake").mkdir()
    (path / "dev").mkdir()
    (path / "dev" / "mqueue").symlink_to("/x/y/z")
    (path / "proc").symlink_to("/dev/mqueue/../../fake")
    with pytest.raises(SetupError, match=r"/proc must be an ordinary directory .* /proc is a symlink"):
        rootfs._resolve(fd, "/proc", "dir", symlinks=False)
    with pytest.raises(SetupError, match=r"/dev/mqueue is a symlink"):
        rootfs._resolve(fd, "/dev/mqueue/queue", "dir", symlinks=False)
    # Followed (inside the root), as ordinary mount targets are: the same path means /x/fake.
    os.close(rootfs._resolve(fd, "/proc", "dir"))
    assert (path / "x" / "fake").is_dir()


def test_a_missing_kernel_mount_point_is_created_as_a_directory(root: tuple[Path, int]) -> None:
    path, fd = root
    os.close(rootfs._resolve(fd, "/dev/pts", "dir", symlinks=False))
    os.close(rootfs._resolve(fd, "/dev/null", "file", symlinks=False))
    assert (path / "dev" / "pts").is_dir() and (path / "dev" / "null").is_file()


def test_masks_are_skipped_only_when_the_path_does_not_exist(root: tuple[Path, int]) -> None:
    path, fd = root
    (path / "proc").mkdir()
    (path / "proc" / "kcore").write_text("")
    (path / "proc" / "acpi").symlink_to("/elsewhere")
    (path / "proc" / "scsi").write_text("")  # a file where a directory is on the way
    assert rootfs._existing(fd, "/proc/timer_stats") is None
    found = rootfs._existing(fd, "/proc/kcore")
    assert found is not None
    os.close(found)
    with pytest.raises(SetupError, match="/proc/acpi is a symlink"):
        rootfs._existing(fd, "/proc/acpi")
    with pytest.raises(SetupError, match="cannot resolve /proc/scsi/x"):
        rootfs._existing(fd, "/proc/scsi/x")


def test_passwd_linked_to_a_device_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "dev").mkdir()
    os.symlink("/dev/zero", tmp_path / "etc" / "passwd")
    os.symlink("/dev/zero", tmp_path / "dev" / "zero")  # not followed to the host's
    with pytest.raises(SetupError, match="/etc/passwd"):
        process._read_db("/etc/passwd", str(tmp_path))
    (tmp_path / "dev" / "zero").unlink()
    (tmp_path / "etc" / "passwd").unlink()
    os.mkfifo(tmp_path / "etc" / "passwd")  # a FIFO nobody writes: must not hang
    with pytest.raises(SetupError, match=r"/etc/passwd is not a regular file \(a FIFO\)"):
        process._read_db("/etc/passwd", str(tmp_path))


def test_passwd_never_reaches_the_hosts_files(tmp_path: Path) -> None:
    """`..` and absolute links stay in the root: the host's /dev/zero is never opened."""
    (tmp_path / "etc").mkdir()
    os.symlink("../../../../dev/zero", tmp_path / "etc" / "passwd")
    assert process._read_db("/etc/passwd", str(tmp_path)) == []  # no /dev/zero in this root


def test_an_oversized_passwd_is_refused_and_a_normal_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    passwd = tmp_path / "etc" / "passwd"
    passwd.write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnoise\n")
    assert [e[0] for e in process._read_db("/etc/passwd", str(tmp_path))] == ["root", "app"]
    assert process._read_db("/etc/group", str(tmp_path)) == []  # missing: no entries
    monkeypatch.setattr(process, "DB_LIMIT", 16)
    with pytest.raises(SetupError, match="/etc/passwd is larger than"):
        process._read_db("/etc/passwd", str(tmp_path))


def test_permitted_capabilities_come_from_capget() -> None:
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith("CapPrm:"))
    assert k.permitted_capabilities() == int(line.split()[1], 16)
