"""The seam through which build runs RUN steps in a container.

The container runtime (berth.containers / berth.shim) is being written; until it lands,
`run_step` says so. Its contract, which build.py already follows:

- `rootfs_layers`: the image so far, unpacked layer dirs, lowest first (overlay lower dirs).
- `upper`: an empty directory on the store's filesystem; the step's changes must end up there in
  overlay form (whiteouts as 0/0 character devices, opaque dirs with trusted.overlay.opaque=y).
  Build turns it into the step's layer with `berth.images.layers.dir_to_tar`.
- `command`: argv (the shell form is already wrapped in the image's SHELL, e.g. /bin/sh -c).
- `env`, `workdir`, `user`: from the image config at that step.
- `network`: False unless the Containerfile asks (`RUN --network=host`).
Non-zero exit raises a BerthError naming the command and status.
"""

from __future__ import annotations

from pathlib import Path

from berth.errors import Unsupported


def run_step(
    rootfs_layers: list[Path],
    upper: Path,
    command: list[str],
    env: dict[str, str],
    workdir: str,
    user: str,
    network: bool,
) -> None:
    raise Unsupported(
        "RUN steps need the container runtime (berth.containers), which has not landed yet",
        command=command,
    )
