"""The seam through which build runs RUN steps: each one in a Berth container on this host.

- `rootfs_layers`: the image so far, unpacked layer dirs, lowest first (overlay lower dirs).
- `upper`: an empty directory on the store's filesystem; the step's changes end up there in
  overlay form (whiteouts as 0/0 character devices, opaque dirs with trusted.overlay.opaque=y):
  the container's own upper dir is renamed onto it, which is why both live under the data dir.
- `command`: argv (the shell form is already wrapped in the image's SHELL, e.g. /bin/sh -c).
- `env`, `workdir`, `user`: from the image config at that step.
- `network`: False unless the Containerfile asks (`RUN --network=host`).
- `mounts`: (host directory, container path) pairs bound read-only: a heredoc script's directory.
The step's output goes to our stderr, so `--json` output on stdout stays parseable.
A non-zero exit raises a BerthError naming the command and status.

The step container is owned by this process (`berth.containers.owner`): if the build is killed
before it removes the container, the next build or `image prune` does, through `reap_orphaned_steps`.
It stops with SIGKILL: a step being abandoned has nobody to flush anything for.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from berth.errors import BerthError
from berth.plan import Action


class StepFailed(BerthError):
    kind = "build-step-failed"
    exit_code = 14


def run_step(
    rootfs_layers: list[Path],
    upper: Path,
    command: list[str],
    env: dict[str, str],
    workdir: str,
    user: str,
    network: bool,
    mounts: Sequence[tuple[str, str]] = (),
) -> None:
    from berth.cli.container_cmd import exit_status
    from berth.containers.manager import Containers
    from berth.containers.paths import ContainerPaths
    from berth.containers.spec import parse_spec

    name = f"build-{secrets.token_hex(6)}"
    spec = parse_spec(
        {
            "name": name,
            "layers": [str(p) for p in rootfs_layers],
            "command": command,
            "env": env,
            "workdir": workdir or "/",
            "user": user or "0",
            "network": "host" if network else "none",
            "slice": "build",
            "stop_signal": "KILL",
            "mounts": [
                {"type": "bind", "source": src, "target": dst, "read_only": True} for src, dst in mounts
            ],
        }
    )
    containers = Containers()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        containers.create(
            spec, start=True, stdio=(devnull, sys.stderr.fileno(), sys.stderr.fileno()), owned=True
        )
        exit_info = containers.wait(name)
        status = exit_status(exit_info)
        if status != 0:
            raise StepFailed(f"RUN {' '.join(command)} failed with exit status {status}", exit=exit_info)
        os.rename(ContainerPaths.of(name).upper, upper)
    finally:
        os.close(devnull)
        try:
            if containers.observe(name).exists:  # a step that failed to start was undone already
                containers.remove(name, force=True)
        finally:
            containers.close()


def reap_orphaned_steps(check: bool = False) -> tuple[list[Action], list[str]]:
    """Remove the step containers of builds that were killed: actions (planned in check mode), warnings."""
    from berth.containers.owner import reap

    return reap(check)
