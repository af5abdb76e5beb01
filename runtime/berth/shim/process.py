"""The last steps before exec: identity, capabilities, no_new_privs, descriptors, exec."""

from __future__ import annotations

import os
import stat
import warnings  # noqa: F401  # os.execvpe imports it lazily, after pivot_root: out of reach then

from berth import kernel as k
from berth.shim import seccomp  # imported up front: after pivot_root the package is out of reach
from berth.shim.rootfs import SetupError

TYPE_CHECKING = False  # not `from typing import`: importing typing costs the shim ms at every start
if TYPE_CHECKING:
    from typing import Any


def resolve_user(user: str) -> tuple[int, int, list[int]]:
    """uid, gid and supplementary groups from "uid[:gid]" or names in the container's /etc."""
    name, _, group = user.partition(":")
    uid = gid = None
    home_gid = 0
    if name.isdigit():
        uid = int(name)
    for entry in _read_db("/etc/passwd"):
        if (uid is None and entry[0] == name) or (uid is not None and entry[2] == str(uid)):
            uid, home_gid = int(entry[2]), int(entry[3])
            name = entry[0]
            break
    if uid is None:
        raise SetupError(f"user {name!r} is not in the container's /etc/passwd")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gid = next((int(e[2]) for e in _read_db("/etc/group") if e[0] == group), None)
            if gid is None:
                raise SetupError(f"group {group!r} is not in the container's /etc/group")
    else:
        gid = home_gid
    # As initgroups(3): the primary group, then every group that lists the user as a member.
    members = {int(e[2]) for e in _read_db("/etc/group") if len(e) > 3 and name in e[3].split(",")}
    groups = [gid, *sorted(members - {gid})]
    return uid, gid, groups


# The most of an image's /etc/passwd or /etc/group the shim reads (glibc's are a few KiB).
DB_LIMIT = 4 << 20


def _read_db(path: str, root: str = "/") -> list[list[str]]:
    """The entries of the container's `path`, read with bounds: the image controls the file.

    Opened within the root (RESOLVE_IN_ROOT, no magic links), non-blocking (a FIFO must not hang
    the start), and only if it is a regular file of at most DB_LIMIT bytes: /etc/passwd linked
    to /dev/zero would otherwise be read until the OOM killer ends the shim.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = k.open_in_root(root_fd, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SetupError(f"cannot open the container's {path}: {exc.strerror}") from exc
    finally:
        os.close(root_fd)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SetupError(
                f"the container's {path} is not a regular file ({_kind(mode)}); refusing to read it"
            )
        chunks: list[bytes] = []
        size = 0
        while size <= DB_LIMIT:
            chunk = os.read(fd, min(65536, DB_LIMIT + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > DB_LIMIT:
            limit = f"{DB_LIMIT >> 20} MiB"
            raise SetupError(f"the container's {path} is larger than {limit}; refusing to read it")
    except OSError as exc:
        raise SetupError(f"cannot read the container's {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 2]


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return f"mode {stat.S_IFMT(mode):#o}"


def exec_process(proc: dict[str, Any], error_fd: int, go_fd: int | None = None) -> None:
    """Become the container's process; with `go_fd`, only once the shim says so (see start.py).

    Everything that can fail is done before the wait: the executable is looked up in PATH here
    rather than by execvpe, so "command not found" is still reported while the start job runs.
    """
    caps = frozenset(proc["capabilities"])
    k.drop_bounding_capabilities(caps)
    uid, gid, groups = resolve_user(proc.get("user") or "0")
    if proc.get("seccomp"):
        # Loaded while CAP_SYS_ADMIN is still effective (no_new_privs is optional); nothing that
        # follows (setgroups, setuid, capset, execve) is a call the profile denies.
        seccomp.install(proc["seccomp"])
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)  # for uid != 0 the kernel clears effective and permitted capabilities
    if uid == 0:
        k.set_capabilities(caps)
    if proc.get("no_new_privileges"):
        k.prctl(k.PR_SET_NO_NEW_PRIVS, 1)
    cwd = proc.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise SetupError(f"working directory {cwd}: {exc.strerror}") from exc
    keep = sorted({error_fd} if go_fd is None else {error_fd, go_fd})
    for low, high in zip([3] + [fd + 1 for fd in keep], [*keep, 65536], strict=True):
        os.closerange(low, high)
    env = dict(item.split("=", 1) for item in proc["env"])
    args = proc["args"]
    path = _executable(args[0], env)
    if go_fd is not None:
        os.write(error_fd, b".")  # set up: the shim may now hand this process to systemd
        if not os.read(go_fd, 1):  # the shim is gone: nobody would watch this process
            os._exit(127)
    try:
        os.execve(path, args, env)
    except OSError as exc:
        raise SetupError(f"cannot run {args[0]!r}: {exc.strerror}") from exc


def _executable(name: str, env: dict[str, str]) -> str:
    """`name` looked up as execvp(3) does: a path as is, else the first executable in PATH."""
    in_path = [os.path.join(d or ".", name) for d in os.get_exec_path(env)]
    candidates = [name] if "/" in name else in_path
    denied = None
    for candidate in candidates:
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and os.access(candidate, os.X_OK):
            _check_interpreter(name, candidate)
            return candidate
        denied = denied or candidate
    if denied is None:
        raise SetupError(f"cannot run {name!r}: {os.strerror(2)}")  # ENOENT
    raise SetupError(f"cannot run {name!r}: {os.strerror(13)}")  # EACCES


def _check_interpreter(name: str, path: str) -> None:
    """A script's #! interpreter must exist too, or execve fails with ENOENT after the start."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return  # executable but unreadable: execve decides
    if not head.startswith(b"#!"):
        return
    words = head[2:].split(b"\n", 1)[0].split()
    if words and not os.access(words[0], os.X_OK):
        interpreter = words[0].decode("utf-8", "replace")
        raise SetupError(f"cannot run {name!r}: its interpreter {interpreter} is missing or not executable")
