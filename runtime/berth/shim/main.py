"""Entry point of the shim: `python3 -S .../berth/shim/main.py start|record-exit CONFIG`."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

if __name__ == "__main__":  # run as a script with -S: make the berth package importable
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from berth import kernel as k
from berth.shim import rootfs
from berth.shim.notify import sd_notify
from berth.shim.process import exec_process

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
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    middle = os.fork()
    if middle == 0:
        os.close(error_r)
        os.close(pid_r)
        _intermediate(cfg, namespaces, error_w, pid_w)
    os.close(error_w)
    os.close(pid_w)
    os.waitpid(middle, 0)
    with os.fdopen(pid_r, "rb") as pipe:
        pid_text = pipe.read()
    with os.fdopen(error_r, "rb") as pipe:
        report = pipe.read()  # EOF when the container's exec succeeded (the fd is close-on-exec)
    if report or not pid_text:  # it failed before exec: say why, where systemd's journal sees it
        message = json.loads(report)["error"] if report else "the container process was not created"
        _write_atomically(str(cfg["error_file"]), message)
        print(f"berth: container {cfg['name']} failed to start: {message}", file=sys.stderr, flush=True)
        return 127
    pid = int(pid_text)
    if sd_notify(f"MAINPID={pid}\nREADY=1\n"):
        return 0
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    return os.waitstatus_to_exitcode(status)


def _intermediate(cfg: dict[str, Any], namespaces: list[str], error_fd: int, pid_fd: int) -> None:
    try:
        if "pid" in namespaces:  # takes effect for the next child only: it becomes PID 1
            k.unshare(k.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            os.close(pid_fd)
            _child(cfg, namespaces, error_fd)
        os.write(pid_fd, str(pid).encode())
        os._exit(0)
    except BaseException as exc:
        try:
            os.write(error_fd, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        finally:
            os._exit(1)


def _child(cfg: dict[str, Any], namespaces: list[str], error_fd: int) -> None:
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
        exec_process(cfg["process"], error_fd)
    except BaseException as exc:  # everything becomes one report to the parent
        text = str(exc) if isinstance(exc, rootfs.SetupError) else f"{type(exc).__name__}: {exc}"
        try:
            os.write(error_fd, json.dumps({"error": text}).encode())
        finally:
            os._exit(127)


def record_exit(cfg: dict[str, Any]) -> int:
    """ExecStopPost: record why the container stopped, while its cgroup still exists."""
    oom_kills = _oom_kills()
    record = {
        "service_result": os.environ.get("SERVICE_RESULT"),
        "exit_code": os.environ.get("EXIT_CODE"),
        "exit_status": os.environ.get("EXIT_STATUS"),
        "oom_killed": os.environ.get("SERVICE_RESULT") == "oom-kill" or oom_kills > 0,
        "oom_kills": oom_kills,  # the kernel's count for the unit's cgroup (see _oom_kills)
        "invocation_id": os.environ.get("INVOCATION_ID"),
    }
    _write_atomically(str(cfg["exit_file"]), json.dumps(record))
    return 0


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, path)


def _oom_kills() -> int:
    """OOM kills in this unit's memory cgroup (v2 memory.events, else v1 memory.oom_control)."""
    with open("/proc/self/cgroup") as fh:
        paths = dict(line.rstrip("\n").split(":", 2)[1:] for line in fh)
    candidates = []
    if "memory" in paths:
        candidates.append(f"/sys/fs/cgroup/memory{paths['memory']}/memory.oom_control")
    if "" in paths:
        candidates.append(f"/sys/fs/cgroup{paths['']}/memory.events")
    for path in candidates:
        try:
            with open(path) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return 0


def main(argv: list[str]) -> int:
    command, config_path = argv[1], argv[2]
    with open(config_path) as fh:
        cfg = json.load(fh)
    if command == "start":
        return start(cfg)
    if command == "record-exit":
        return record_exit(cfg)
    if command == "exec":
        from berth.shim.enter import enter

        return enter(cfg, int(argv[3]), json.loads(argv[4]))
    print(f"berth shim: unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
