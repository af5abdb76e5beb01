"""`berth exec`: a new process inside a running container, confined as its main process is.

It joins the container's cgroups and namespaces (the pid namespace through a fork), then
takes the container's user, capabilities and no_new_privs before it execs. Standard library
only, and run in a fresh process: setns(CLONE_NEWNS) refuses a multi-threaded caller.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import struct
import sys
import termios
import tty
from typing import Any

from berth import kernel as k
from berth.cgroup_mounts import cgroup_mounts
from berth.kernel import idmap  # imported up front: after setns(mnt) the package is out of reach
from berth.shim.process import exec_process
from berth.shim.rootfs import SetupError

# Joined in this order: the mount namespace last, since it changes what /proc/PID means.
NAMESPACES = (("cgroup", k.CLONE_NEWCGROUP), ("ipc", k.CLONE_NEWIPC), ("uts", k.CLONE_NEWUTS),
              ("net", k.CLONE_NEWNET), ("pid", k.CLONE_NEWPID), ("mnt", k.CLONE_NEWNS))  # fmt: skip
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)  # fmt: skip


def _cgroup_dirs(pid: int) -> list[str]:
    """The cgroup directories of `pid` in every hierarchy mounted here (v1, v2 or hybrid)."""
    mounts = cgroup_mounts()
    v2 = next((m for m in mounts if m.version == 2), None)
    v1 = [(set(m.options), m) for m in mounts if m.version == 1]
    dirs = []
    with open(f"/proc/{pid}/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if not controllers:
                mount = v2
            else:
                wanted = set(controllers.split(","))
                mount = next((m for opts, m in v1 if wanted <= opts), None)
            if mount is not None:
                dirs.append(os.path.join(mount.mountpoint, mount.relative(path).lstrip("/")))
    return dirs


# ioctls of the pty layer (asm-generic/ioctls.h)
TIOCSPTLCK, TIOCGPTN, TIOCSCTTY = 0x40045431, 0x80045430, 0x540E
TIOCGWINSZ, TIOCSWINSZ = 0x5413, 0x5414


def _open_pty() -> tuple[int, str]:
    """A pty pair in the container's own devpts (we are in its mount namespace by now)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    return master, f"/dev/pts/{number}"


def _child_stdio(pty: tuple[int, str] | None, interactive: bool, winsize: list[int] | None) -> None:
    if pty is not None:
        os.setsid()
        slave = os.open(pty[1], os.O_RDWR)
        fcntl.ioctl(slave, TIOCSCTTY, 0)
        if winsize:
            fcntl.ioctl(slave, TIOCSWINSZ, struct.pack("HHHH", winsize[0], winsize[1], 0, 0))
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.close(slave)
    elif not interactive:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)


def _copy_winsize(master: int) -> None:
    try:
        fcntl.ioctl(master, TIOCSWINSZ, fcntl.ioctl(0, TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def _relay(master: int) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the other side closes."""
    saved = termios.tcgetattr(0) if os.isatty(0) else None
    if saved is not None:
        tty.setraw(0)
        _copy_winsize(master)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    sel.register(0, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in sel.select():
                try:
                    data = os.read(key.fd, 65536)
                except OSError:  # EIO: the last process on the pty is gone
                    data = b""
                if key.fd == master:
                    if not data:
                        return
                    os.write(1, data)
                elif data:
                    os.write(master, data)
                else:
                    sel.unregister(0)  # our stdin ended; the program may still be writing
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def enter(cfg: dict[str, Any], pid: int, request: dict[str, Any]) -> int:
    for d in _cgroup_dirs(pid):
        try:
            with open(os.path.join(d, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
        except OSError as exc:
            print(f"berth exec: cannot join cgroup {d}: {exc.strerror}", file=sys.stderr)
            return 126
    joined = NAMESPACES + ((("user", k.CLONE_NEWUSER),) if cfg.get("userns") else ())
    fds = [(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag) for name, flag in joined]
    for fd, flag in fds:  # the user namespace last: the host's root may join all the others
        k.setns(fd, flag)
        os.close(fd)
    if cfg.get("userns"):
        idmap.become_root()
    pty = _open_pty() if request.get("tty") else None
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(error_r)
        try:
            _child_stdio(pty, bool(request.get("interactive")), request.get("winsize"))
            process = dict(cfg["process"])
            env = dict(item.split("=", 1) for item in process["env"])
            env.update(request.get("env") or {})
            if pty is not None:
                env.setdefault("TERM", request.get("term") or "xterm")
            process.update(
                args=request["args"],
                env=[f"{key}={value}" for key, value in env.items()],
                cwd=request.get("workdir") or process["cwd"],
                user=request.get("user") or process["user"],
            )
            exec_process(process, error_w)
        except BaseException as exc:
            text = str(exc) if isinstance(exc, SetupError) else f"{type(exc).__name__}: {exc}"
            os.write(error_w, json.dumps({"error": text}).encode())
        os._exit(127)
    os.close(error_w)
    if pty is not None:
        master, _ = pty
        signal.signal(signal.SIGWINCH, lambda _s, _f: _copy_winsize(master))
        _relay(master)
    else:
        for sig in FORWARDED:
            signal.signal(sig, lambda s, _f: os.kill(child, s))
    with os.fdopen(error_r, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(child, 0)
    if report:
        print(f"berth exec: {json.loads(report)['error']}", file=sys.stderr)
        return 127
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)
