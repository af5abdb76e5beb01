"""The files the runtime provides inside every container: /etc/hosts, hostname, resolv.conf."""

from __future__ import annotations

from pathlib import Path

from berth.containers.paths import ContainerPaths
from berth.containers.spec import ContainerSpec
from berth.state.atomic import atomic_write_bytes

# With systemd-resolved, /etc/resolv.conf names a stub on the host's loopback that a container
# in its own network namespace cannot reach; resolved keeps the real upstream list here.
RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")


def _resolv_conf() -> str:
    for path in (Path("/etc/resolv.conf"), RESOLVED_UPSTREAM):
        try:
            text = path.read_text()
        except OSError:
            continue
        if "127.0.0.53" in text and path != RESOLVED_UPSTREAM:
            continue
        return text
    return ""


def _hosts(spec: ContainerSpec) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if spec.network == "host":
        try:
            lines = Path("/etc/hosts").read_text().splitlines()
        except OSError:
            pass
    lines.append(f"127.0.1.1\t{spec.hostname}")
    return "\n".join(lines) + "\n"


def write_runtime_files(
    spec: ContainerSpec, paths: ContainerPaths, hosts: str | None = None
) -> dict[str, str]:
    """Write the files (again: /run is empty after a reboot); return target -> source.

    `hosts`: the /etc/hosts networking made (the container and its peers), if it is on networks.
    """
    paths.run.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.rootfs.mkdir(exist_ok=True)
    files = {
        "/etc/hosts": hosts if hosts is not None else _hosts(spec),
        "/etc/hostname": f"{spec.hostname}\n",
        "/etc/resolv.conf": _resolv_conf(),
    }
    out = {}
    for target, text in files.items():
        source = paths.run / Path(target).name
        atomic_write_bytes(source, text.encode())
        out[target] = str(source)
    return out
