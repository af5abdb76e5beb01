"""From a canonical spec to what runs: the shim's config and the unit's typed properties."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from berth.containers.capabilities import CAP_NUMBER
from berth.containers.image_source import process
from berth.containers.paths import ContainerPaths
from berth.containers.seccomp_profile import default_profile
from berth.containers.spec import ContainerSpec
from berth.containers.volumes import path_of as volume_path
from berth.network.containers import network_hooks
from berth.systemd.properties import Property, to_dbus
from berth.systemd.sizes import INFINITY
from berth.units.limits import cpuset_available, unenforced
from berth.units.spec import RESOURCES, resource_value

SHIM = Path(__file__).resolve().parent.parent / "shim" / "main.py"
# ExecStopPost: the shim's `record-exit` in POSIX sh, so no Python starts at a container's stop.
RECORD_EXIT = SHIM.parent / "record-exit.sh"

# podman's defaults (containers/common pkg/config): hidden, and read-only, kernel interfaces.
MASKED_PATHS = (
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux",
    "/sys/dev/block",
)  # fmt: skip
READONLY_PATHS = ("/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# The device nodes a container gets (and the devices cgroup allows); everything else is denied.
ALLOWED_DEVICES = (
    ("/dev/null", "rwm"), ("/dev/zero", "rwm"), ("/dev/full", "rwm"), ("/dev/random", "rwm"),
    ("/dev/urandom", "rwm"), ("/dev/tty", "rwm"), ("/dev/ptmx", "rwm"), ("char-pts", "rwm"),
)  # fmt: skip
CREDENTIALS_TARGET = "/run/secrets"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def shim_config(
    spec: ContainerSpec,
    paths: ContainerPaths,
    layers: list[str],
    files: dict[str, str],
    netns_path: str | None = None,
    image_config: dict[str, Any] | None = None,
    attached: bool = False,
) -> dict[str, Any]:
    """The document the shim reads at every start (a restart by systemd included).

    `attached`: the unit's stdio is the caller's terminal (a foreground `berth run`), which
    reports a failed start itself; the shim then keeps quiet rather than say it twice.
    """
    namespaces = ["mount", "uts", "ipc", "pid", "cgroup"]
    if spec.network != "host":
        namespaces.append("net")
    argv, image_env, workdir, user = process(spec, image_config or {})
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": spec.hostname, "container": "berth", **image_env}
    mounts: list[dict[str, Any]] = []
    for m in spec.mounts:
        entry: dict[str, Any] = {
            "type": "tmpfs" if m.type == "tmpfs" else "bind",
            "target": m.target,
            "read_only": m.read_only,
        }
        if m.type == "bind":
            entry["source"] = m.source
        elif m.type == "volume":
            entry["source"] = str(volume_path(m.source or ""))
        else:
            entry["size"] = m.size
            entry["mode"] = m.mode or "1777"
        mounts.append(entry)
    notify = None
    if spec.sdnotify == "container":  # the shim relays the app's READY=1 (berth.shim.notify)
        from berth.shim.notify import TARGET, TARGET_DIR

        notify = str(paths.run / "notify" / "notify.sock")
        mounts.append({"type": "bind", "source": str(paths.run / "notify"), "target": TARGET_DIR,
                       "read_only": True})  # fmt: skip
        env["NOTIFY_SOCKET"] = TARGET
    return {
        "name": spec.name,
        "rootfs": str(paths.rootfs),
        "layers": layers,
        "upper": str(paths.upper),
        "work": str(paths.work),
        "namespaces": namespaces,
        "hostname": spec.hostname,
        "files": files,
        "mounts": mounts,
        "credentials_target": CREDENTIALS_TARGET if spec.secrets else None,
        "masked_paths": [] if spec.privileged else list(MASKED_PATHS),
        "readonly_paths": [] if spec.privileged else list(READONLY_PATHS),
        "read_only": spec.read_only,
        "process": {
            "args": argv,
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": workdir,
            "user": user,
            "capabilities": sorted(CAP_NUMBER[c] for c in spec.capabilities),
            "no_new_privileges": spec.no_new_privileges,
            "seccomp": None
            if spec.privileged or spec.seccomp == "unconfined"
            else default_profile(set(spec.capabilities)),
        },
        "netns_path": netns_path,
        "notify_socket": notify,
        "exit_file": str(paths.exit_file),
        "error_file": str(paths.error_file),
        "attached": attached,
    }


def unit_properties(
    spec: ContainerSpec,
    paths: ContainerPaths,
    unified: bool | None,
    stdio: tuple[int, int, int] | None = None,
) -> tuple[list[Property], list[str]]:
    """Typed properties for StartTransientUnit, and warnings for what this host cannot enforce."""
    shim = [sys.executable, "-S", str(SHIM)]
    restart, _, retries = spec.restart.partition(":")
    props: dict[str, Any] = {
        "Description": f"berth container {spec.name}",
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": [[*shim, "start", str(paths.config)]],
        "ExecStopPost": [["/bin/sh", str(RECORD_EXIT), str(paths.exit_file)]],
        "Slice": spec.slice,
        "KillMode": "mixed",
        "KillSignal": spec.stop_signal,
        "TimeoutStopUSec": spec.stop_timeout * 1_000_000,
        "Restart": restart,
        "OOMPolicy": "stop",
        "CollectMode": "inactive-or-failed",
        "StandardInput": "null",
        "StandardOutput": "journal",
        "StandardError": "journal",
        "SyslogIdentifier": spec.name,
        "Environment": [f"BERTH_CONTAINER={spec.name}", f"BERTH_SPEC_HASH={spec.spec_hash}"],
        "MemoryAccounting": True,
        "TasksAccounting": True,
        "CPUAccounting": True,
    }
    extra = journal_fields(spec.labels)
    if extra:
        props["LogExtraFields"] = extra
    for key, commands in network_hooks(spec).items():
        props[key] = props.get(key, []) + commands
    if stdio is not None:
        # A foreground run: the container writes straight to the caller's stdio, as with
        # `systemd-run --pipe`; detached containers log to the journal.
        for key, fd in zip(("StandardInput", "StandardOutput", "StandardError"), stdio, strict=True):
            del props[key]
            props[f"{key}FileDescriptor"] = fd
    if spec.sdnotify == "container":
        # The shim relays READY=1 after it handed the main PID over, so it is no longer "main".
        props["NotifyAccess"] = "all"
    if spec.start_timeout:
        props["TimeoutStartUSec"] = spec.start_timeout * 1_000_000
    if retries:
        # on-failure:N: N restarts, then systemd gives up (the first start counts as one).
        props["StartLimitBurst"] = int(retries) + 1
        props["StartLimitIntervalUSec"] = INFINITY
    if not spec.privileged:
        props["DevicePolicy"] = "closed"
        props["DeviceAllow"] = [list(d) for d in ALLOWED_DEVICES]
    if spec.secrets:
        props["LoadCredential"] = [[name, source] for name, source in spec.secrets]
    resource_props, warnings = resource_properties(dict(spec.resources), unified)
    props.update(resource_props)
    return [to_dbus(name, value) for name, value in props.items()], warnings


def journal_fields(labels: tuple[tuple[str, str], ...]) -> list[bytes]:
    """`berth.*` labels as fields of every journal entry of the unit (LogExtraFields).

    berth.deployment=shop becomes BERTH_DEPLOYMENT=shop, so `journalctl BERTH_DEPLOYMENT=shop`
    finds the output of every container of a deployment, with its revision and image digest.
    """
    fields = []
    for key, value in labels:
        if key.startswith("berth.") and "\n" not in value:
            field = "BERTH_" + "".join(ch if ch.isalnum() else "_" for ch in key[6:]).upper()
            fields.append(f"{field}={value}".encode())
    return fields


def resource_properties(resources: dict[str, Any], unified: bool | None) -> tuple[dict[str, Any], list[str]]:
    """systemd properties for canonical resource fields, and what this host cannot enforce."""
    props: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in resources.items():
        if key == "cpus":
            cpus = [int(c) for c in str(value).split(",")]
            if not cpuset_available(unified):
                props["CPUAffinity"] = cpus
                why = "has cgroup v1" if unified is False else "has no cpuset controller delegated"
                warnings.append(
                    f"cpus: this host {why}, so the CPUs are pinned with CPUAffinity "
                    "(sched_setaffinity) rather than a cpuset cgroup (AllowedCPUs)"
                )
            else:
                props["AllowedCPUs"] = cpus
        elif key == "nice":
            props["Nice"] = value
        else:
            props[RESOURCES[key][0]] = resource_value(key, value)
    return props, warnings + unenforced(props, unified)
