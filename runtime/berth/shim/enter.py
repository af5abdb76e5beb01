"""`berth exec`: a new process inside a running container, confined as its main process is.

It joins the container's cgroups and namespaces (the pid namespace through a fork), then
takes the container's user, capabilities and no_new_privs before it execs. Standard library
only, and run in a fresh process: setns(CLONE_NEWNS) refuses a multi-threaded caller.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from berth import kernel as k
from berth.shim.process import exec_process
from berth.shim.rootfs import SetupError

# Joined in this order: the mount namespace last, since it changes what /proc/PID means.
NAMESPACES = (("cgroup", k.CLONE_NEWCGROUP), ("ipc", k.CLONE_NEWIPC), ("uts", k.CLONE_NEWUTS),
              ("net", k.CLONE_NEWNET), ("pid", k.CLONE_NEWPID), ("mnt", k.CLONE_NEWNS))  # fmt: skip
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)  # fmt: skip


def _cgroup_dirs(pid: int) -> list[str]:
    """The cgroup directories of `pid` in every hierarchy mounted here (v1, v2 or hybrid)."""
    v1: list[tuple[set[str], str]] = []
    v2 = None
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, right = line.split(" - ", 1)
            fstype, _source, opts = right.split()[:3]
            if fstype == "cgroup2":
                v2 = left.split()[4]
            elif fstype == "cgroup":
                v1.append((set(opts.split(",")), left.split()[4]))
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
                dirs.append(os.path.join(mount, path.lstrip("/")))
    return dirs


def enter(cfg: dict[str, Any], pid: int, request: dict[str, Any]) -> int:
    for d in _cgroup_dirs(pid):
        try:
            with open(os.path.join(d, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
        except OSError as exc:
            print(f"berth exec: cannot join cgroup {d}: {exc.strerror}", file=sys.stderr)
            return 126
    fds = [(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag) for name, flag in NAMESPACES]
    for fd, flag in fds:
        k.setns(fd, flag)
        os.close(fd)
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(error_r)
        try:
            process = dict(cfg["process"])
            env = dict(item.split("=", 1) for item in process["env"])
            env.update(request.get("env") or {})
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
