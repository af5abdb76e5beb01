"""Install a seccomp filter: a classic BPF program built from the runtime's profile.

Standard library only (no libseccomp binding on the hosts): the program is small and fixed in
shape, so it is assembled here. Shape, for the one architecture of the profile:

    load arch; other arch (including the i386/x32 ABIs that number syscalls differently) -> ENOSYS
    load nr; each denied nr -> EPERM; each "enosys" nr -> ENOSYS
    clone with a namespace flag in its first argument -> EPERM (when the profile says so)
    allow
"""

from __future__ import annotations

import ctypes
import errno

from berth import kernel as k

TYPE_CHECKING = False  # not `from typing import`: importing typing costs the shim ms at every start
if TYPE_CHECKING:
    from typing import Any

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000
CLONE_NAMESPACE_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
CLONE_NR = {"x86_64": 56, "aarch64": 220}

RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Insn))]


def assemble(profile: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """(code, jt, jf, k) instructions; jumps are resolved to the three return labels at the end."""
    arch = profile["arch"]
    denied = sorted(set(profile.get("deny", [])))
    enosys = sorted(set(profile.get("enosys", [])))
    body: list[tuple[int, str | int, str | int, int]] = [
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
        (BPF_JEQ_K, 0, "enosys", AUDIT_ARCH[arch]),
        (BPF_LD_W_ABS, 0, 0, OFFSET_NR),
    ]
    if arch == "x86_64":
        body.append((BPF_JGE_K, "enosys", 0, X32_SYSCALL_BIT))
    body += [(BPF_JEQ_K, "eperm", 0, nr) for nr in denied]
    body += [(BPF_JEQ_K, "enosys", 0, nr) for nr in enosys]
    if profile.get("deny_clone_namespaces"):
        body += [
            (BPF_JEQ_K, 0, "allow", CLONE_NR[arch]),
            (BPF_LD_W_ABS, 0, 0, OFFSET_ARG0),
            (BPF_JSET_K, "eperm", "allow", CLONE_NAMESPACE_FLAGS),
        ]
    labels = {"allow": len(body), "eperm": len(body) + 1, "enosys": len(body) + 2}
    tail = [(BPF_RET_K, 0, 0, RET_ALLOW), (BPF_RET_K, 0, 0, RET_ERRNO | errno.EPERM),
            (BPF_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS)]  # fmt: skip
    program = [
        (code, _offset(jt, i, labels), _offset(jf, i, labels), kval)
        for i, (code, jt, jf, kval) in enumerate(body)
    ]
    return program + tail


def _offset(target: str | int, at: int, labels: dict[str, int]) -> int:
    if isinstance(target, int):
        return target
    distance = labels[target] - at - 1
    if distance > 255:
        raise ValueError("seccomp profile too long for 8-bit jumps")
    return distance


def install(profile: dict[str, Any]) -> None:
    """Load the filter into this process (inherited by what it execs; never removable)."""
    program = assemble(profile)
    insns = (_Insn * len(program))(*(_Insn(c, jt, jf, kv) for c, jt, jf, kv in program))
    prog = _Prog(len(program), insns)
    libc = k._libc()
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {errno.errorcode.get(err, err)}")
