"""`shim start` (the unit's ExecStart): create the container's process, hand it to systemd.

Everything the container's set-up needs is imported here, at the top: after pivot_root the
berth package is out of reach.
"""

from __future__ import annotations

import os
import sys

from berth import kernel as k
from berth.shim import jsonlite, rootfs
from berth.shim.exit_record import write_atomically
from berth.shim.notify import listen, relay, sd_notify, sd_notify_barrier
from berth.shim.process import exec_process

TYPE_CHECKING = False  # not `from typing import`: importing typing costs the shim ms at every start
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_FLAGS = {
    "mount": k.CLONE_NEWNS,
    "uts": k.CLONE_NEWUTS,
    "ipc": k.CLONE_NEWIPC,
    "pid": k.CLONE_NEWPID,
    "net": k.CLONE_NEWNET,
    "cgroup": k.CLONE_NEWCGROUP,
}


def start(cfg: dict[str, Any]) -> int:
    """Start the container's process and hand it to systemd as the unit's main process.

    The process is forked by a short-lived intermediate that exits at once, so the container
    is reparented to systemd (PID 1) before systemd is told its PID: systemd is then its parent,
    reaps it and records its exit status like that of any service process.
    """
    namespaces: list[str] = list(cfg["namespaces"])
    under_systemd = bool(os.environ.get("NOTIFY_SOCKET"))
    if not under_systemd:  # a direct run: adopt the grandchild ourselves to wait for it
        k.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
    relay_path = cfg.get("notify_socket")
    notify_sock = listen(str(relay_path)) if relay_path else None  # before the container mounts its dir
    if cfg.get("userns"):  # what takes host privileges, made here, detached, before the fork
        from berth.shim import userns

        try:
            userns.prepare(cfg)
        except rootfs.SetupError as exc:
            return _failed(cfg, str(exc))
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    middle = os.fork()
    if middle == 0:
        os.close(error_r)
        os.close(pid_r)
        os.close(go_w)
        _intermediate(cfg, namespaces, error_w, pid_w, go_r)
    os.close(error_w)
    os.close(pid_w)
    os.close(go_r)
    os.waitpid(middle, 0)
    with os.fdopen(pid_r, "rb") as pipe:
        pid_text = pipe.read()
    # "." once the container is set up and waits at its exec; a report (JSON) if it failed.
    first = os.read(error_r, 1)
    if first != b"." or not pid_text:  # it failed before exec: say why, where the journal sees it
        report = first + _read_all(error_r)
        message = jsonlite.loads(report)["error"] if report else "the container process was not created"
        return _failed(cfg, message)
    pid = int(pid_text)
    if under_systemd:
        # systemd must know the container as the main process before the container can exit:
        # a MAINPID= naming a process that already ended is refused ("does not exist or is a
        # zombie"), and this shim's own exit status 0 would then stand for the container's.
        sd_notify(f"MAINPID={pid}\n" if notify_sock is not None else f"MAINPID={pid}\nREADY=1\n")
        if not sd_notify_barrier():
            print("berth: systemd did not confirm the container's main PID in time", file=sys.stderr)
    os.write(go_w, b"!")
    report = _read_all(error_r)  # EOF when the exec succeeded (the fd is close-on-exec)
    os.close(error_r)
    if report:  # the exec failed: the container exits 127 once the reason is on disk
        status = _failed(cfg, jsonlite.loads(report)["error"])
        os.close(go_w)
        return status
    os.close(go_w)
    if notify_sock is not None and under_systemd:  # `sdnotify: container`: the app says when ready
        return relay(notify_sock, pid, str(relay_path))
    if under_systemd:
        return 0
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        import signal

        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    return os.waitstatus_to_exitcode(status)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _failed(cfg: dict[str, Any], message: str) -> int:
    """Record why the start failed for the CLI, and say it in the journal unless a caller's
    terminal is our stderr (the attached CLI prints the recorded reason itself)."""
    write_atomically(str(cfg["error_file"]), message)
    if not cfg.get("attached"):
        print(f"berth: container {cfg['name']} failed to start: {message}", file=sys.stderr, flush=True)
    return 127


def _intermediate(cfg: dict[str, Any], namespaces: list[str], error_fd: int, pid_fd: int, go_fd: int) -> None:
    try:
        if cfg.get("_userns_fd") is not None:  # first: the namespaces below are then owned by it
            from berth.shim import userns

            userns.join(cfg)
        if "pid" in namespaces:  # takes effect for the next child only: it becomes PID 1
            k.unshare(k.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            os.close(pid_fd)
            _child(cfg, namespaces, error_fd, go_fd)
        os.write(pid_fd, str(pid).encode())
        os._exit(0)
    except BaseException as exc:
        try:
            os.write(error_fd, jsonlite.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        finally:
            os._exit(1)


def _child(cfg: dict[str, Any], namespaces: list[str], error_fd: int, go_fd: int) -> None:
    try:
        os.setsid()
        # The other namespaces are the child's alone: the shim itself must keep the host's
        # mount namespace (pivot_root would move its root too) to reach the notify socket.
        flags = 0
        for ns in namespaces:
            if ns != "pid":
                flags |= NAMESPACE_FLAGS[ns]
        netns = cfg.get("netns_path")
        if netns:  # a network namespace the runtime prepared (veth, addresses, routes): join it
            flags &= ~k.CLONE_NEWNET
        if netns and not cfg.get("_netns_joined"):  # (with userns, joined before it)
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                k.setns(fd, k.CLONE_NEWNET)
            finally:
                os.close(fd)
        k.unshare(flags)
        if flags & k.CLONE_NEWNET:
            k.loopback_up()
        rootfs.build(cfg)
        if cfg.get("hostname") and "uts" in cfg["namespaces"]:
            k.sethostname(str(cfg["hostname"]))
        exec_process(cfg["process"], error_fd, go_fd)
    except BaseException as exc:  # everything becomes one report to the parent
        text = str(exc) if isinstance(exc, rootfs.SetupError) else f"{type(exc).__name__}: {exc}"
        try:
            os.write(error_fd, jsonlite.dumps({"error": text}).encode())
            os.close(error_fd)
            # Exit only once the shim has the report on disk (it closes the go pipe then): past
            # the handshake this process is the unit's main one, and its exit ends the unit.
            while os.read(go_fd, 1):
                pass
        finally:
            os._exit(127)
