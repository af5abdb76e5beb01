"""The default seccomp profile, in the spirit of podman's: dangerous calls denied unless the
container holds the capability that podman's profile requires for them.

podman ships an allow-list of ~370 calls; Berth's filter is the complement for the calls that
matter: what podman's list leaves out, or allows only with a capability, is denied here the same
way (EPERM), and clone() with namespace flags is refused as podman's argument filter does. The
32-bit ABIs, whose syscall numbers differ, are refused outright (ENOSYS), so they cannot be used
to slip past the list.
"""

from __future__ import annotations

import os
from typing import Any

# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
X86_64 = {
    "acct": 163, "add_key": 248, "bpf": 321, "clock_adjtime": 305, "clock_settime": 227,
    "create_module": 174, "delete_module": 176, "finit_module": 313, "fsconfig": 431, "fsmount": 432,
    "fsopen": 430, "fspick": 433, "get_kernel_syms": 177, "init_module": 175, "ioperm": 173, "iopl": 172,
    "kcmp": 312, "kexec_file_load": 320, "kexec_load": 246, "keyctl": 250, "lookup_dcookie": 212,
    "mbind": 237, "mount": 165, "mount_setattr": 442, "move_mount": 429, "move_pages": 279,
    "name_to_handle_at": 303, "nfsservctl": 180, "open_by_handle_at": 304, "open_tree": 428,
    "perf_event_open": 298, "pivot_root": 155, "process_vm_readv": 310, "process_vm_writev": 311,
    "ptrace": 101, "query_module": 178, "quotactl": 179, "quotactl_fd": 443, "reboot": 169,
    "request_key": 249, "set_mempolicy": 238, "setns": 308, "settimeofday": 164, "swapoff": 168,
    "swapon": 167, "_sysctl": 156, "sysfs": 139, "syslog": 103, "umount2": 166, "unshare": 272,
    "uselib": 134, "userfaultfd": 323, "ustat": 136, "vhangup": 153, "clone3": 435,
}  # fmt: skip

# A capability that lets the container make these calls again, as in podman's profile.
ALLOWED_WITH = {
    "SYS_ADMIN": {"bpf", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount",
                  "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "perf_event_open",
                  "pivot_root", "quotactl", "quotactl_fd", "setns", "umount2", "unshare"},
    "SYS_MODULE": {"delete_module", "finit_module", "init_module"},
    "SYS_BOOT": {"reboot"},
    "SYS_TIME": {"clock_adjtime", "clock_settime", "settimeofday"},
    "SYS_PTRACE": {"kcmp", "process_vm_readv", "process_vm_writev", "ptrace"},
    "SYS_NICE": {"mbind", "move_pages", "set_mempolicy"},
    "SYS_RAWIO": {"ioperm", "iopl"},
    "SYS_PACCT": {"acct"},
    "SYSLOG": {"syslog"},
    "DAC_READ_SEARCH": {"open_by_handle_at"},
}  # fmt: skip
ENOSYS = {"clone3"}  # its flags live in memory a filter cannot read; libc falls back to clone()


def default_profile(capabilities: set[str]) -> dict[str, Any] | None:
    """The filter for a container holding `capabilities`; None where Berth has no syscall table."""
    if os.uname().machine != "x86_64":
        return None
    allowed = set().union(*(calls for cap, calls in ALLOWED_WITH.items() if cap in capabilities))
    deny = [nr for name, nr in X86_64.items() if name not in allowed and name not in ENOSYS]
    return {
        "arch": "x86_64",
        "deny": sorted(deny),
        "enosys": [X86_64[name] for name in ENOSYS],
        "deny_clone_namespaces": "SYS_ADMIN" not in capabilities,
    }
