"""The ExecStartPre hook's shortcut: only a container attached in this boot, to a live namespace,
skips the full attach (which would import pyroute2 and the container spec)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth.host import boot_identity
from berth.network import hook, state


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BERTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BERTH_RUN_DIR", str(tmp_path / "run"))
    return tmp_path


def _record(status: str, boot: str) -> dict[str, object]:
    return {"container": "web", "status": status, "boot": boot, "interfaces": [], "netns": "x"}


@pytest.mark.parametrize(
    ("status", "this_boot", "live_netns", "shortcut"),
    [
        ("attached", True, True, True),
        ("parked", True, True, False),  # a restart: the full path brings its port rules back
        ("attached", False, True, False),  # left by the previous boot
        ("attached", True, False, False),  # the namespace is gone
        ("attaching", True, True, False),  # a crash in the middle of an attach
    ],
)
def test_only_a_live_attachment_of_this_boot_takes_the_shortcut(
    dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    this_boot: bool,
    live_netns: bool,
    shortcut: bool,
) -> None:
    boot = boot_identity() if this_boot else "another-boot:1"
    state.attachments().put("web", _record(status, boot))
    monkeypatch.setattr(
        "berth.network.netns.exists", lambda path: live_netns and path == state.netns_path("web")
    )
    assert hook.attached_this_boot("web") is shortcut


def test_no_record_no_shortcut(dirs: Path) -> None:
    assert hook.attached_this_boot("web") is False


def test_a_plain_file_is_not_a_namespace_handle(dirs: Path) -> None:
    """Without the monkeypatch: a leftover file where the handle was is not a live namespace."""
    state.attachments().put("web", _record("attached", boot_identity()))
    handle = state.netns_path("web")
    handle.parent.mkdir(parents=True)
    handle.touch()
    assert hook.attached_this_boot("web") is False


def test_a_parked_restart_unparks_without_netlink(dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart after a crash only brings the port rules back: state and nftables, no pyroute2."""
    from berth.network import manager

    state.attachments().put("web", _record("parked", boot_identity()))
    monkeypatch.setattr("berth.network.netns.exists", lambda path: path == state.netns_path("web"))
    synced: list[bool] = []
    monkeypatch.setattr(manager, "sync_nft", lambda: synced.append(True))

    def no_netlink() -> None:
        raise AssertionError("netlink opened for an unpark")

    monkeypatch.setattr("berth.network.links.iproute", no_netlink)
    attached = manager.Networks().attach("web", "web", ["berth"], [])
    assert attached.netns_path == "x" and synced == [True]
    assert (state.attachments().get("web") or {})["status"] == "attached"


SCRIPT = Path(hook.__file__).with_name("attached.sh")


@pytest.mark.parametrize(
    ("status", "this_boot", "bound", "shortcut"),
    [
        ("attached", True, True, True),
        ("parked", True, True, False),
        ("attached", False, True, False),
        ("attached", True, False, False),  # a plain file where the handle was
        ("attaching", True, True, False),
    ],
)
def test_the_shell_check_of_execstartpre_agrees_with_the_python_one(
    dirs: Path, status: str, this_boot: bool, bound: bool, shortcut: bool
) -> None:
    """attached.sh (the unit's ExecStartPre) runs the full hook, its arguments, unless Python's
    attached_this_boot would take the shortcut; real files, a real bind-mounted namespace handle
    (in a mount namespace of the test's own)."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount")
    boot = boot_identity() if this_boot else "another-boot:1"
    state.attachments().put("web", {**_record(status, boot), "parked_at": "t", "zeta": 1})
    handle = state.netns_path("web")
    handle.parent.mkdir(parents=True)
    handle.touch()
    check = f"sh {SCRIPT} {state.attachments().path('web')} {handle} echo full-hook"
    bind = f"mount --bind /proc/self/ns/net {handle} && " if bound else ""
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", bind + check], capture_output=True, text=True, check=True
    )
    assert out.stdout == ("" if shortcut else "full-hook\n"), out


UNLESS_BERTH = SCRIPT.with_name("unless_berth.sh")


def test_execstoppost_leaves_the_network_to_a_live_berth_command(tmp_path: Path) -> None:
    """unless_berth.sh skips the hook only while the berth command named in the marker lives."""
    import subprocess

    marker = tmp_path / "stopping"

    def hook_ran() -> bool:
        out = subprocess.run(
            ["sh", str(UNLESS_BERTH), str(marker), "echo", "hook"], capture_output=True, text=True
        )
        return out.stdout == "hook\n"

    assert hook_ran()  # no marker: a crash, or systemd stopping the unit on its own
    marker.write_text(f"{os.getpid()}\n")
    assert not hook_ran()  # this process stands for the berth command doing the stop
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout
    marker.write_text(gone)
    assert hook_ran()  # a command killed midway left its marker: the hook runs
