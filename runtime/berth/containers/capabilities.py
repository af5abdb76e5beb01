"""Linux capability names and podman's default set."""

from __future__ import annotations

from berth.errors import InvalidInput

CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_NUMBER = {name: number for number, name in enumerate(CAPABILITIES)}

# podman's default bounding set (containers.conf default_capabilities).
DEFAULT_CAPABILITIES = frozenset(
    ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETFCAP", "SETGID",
     "SETPCAP", "SETUID", "SYS_CHROOT")
)  # fmt: skip


def canonical_cap(name: str) -> str:
    """ "cap_net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all mean NET_ADMIN; "ALL" is all."""
    upper = name.strip().upper()
    upper = upper[4:] if upper.startswith("CAP_") else upper
    if upper != "ALL" and upper not in CAP_NUMBER:
        raise InvalidInput(f"unknown capability {name!r}")
    return upper


def effective_set(add: list[str], drop: list[str], privileged: bool) -> frozenset[str]:
    if privileged:
        return frozenset(CAPABILITIES)
    caps = set(DEFAULT_CAPABILITIES)
    drops = {canonical_cap(c) for c in drop}
    adds = {canonical_cap(c) for c in add}
    if "ALL" in drops:
        caps.clear()
    caps -= drops
    caps |= set(CAPABILITIES) if "ALL" in adds else adds
    return frozenset(caps)
