"""The VM lab's base image: Debian 12 built by mmdebstrap, cached by the hash of its recipe.

An image is a directory `images/<recipe-hash>/` under the lab state root holding `root.img` (a
raw ext4 file system, read-only: every VM host boots a qcow2 overlay over it), `vmlinuz` and
`initrd.img` (Debian's kernel, installed into the image and booted with qemu -kernel) and
`recipe.json`. It is built in a temporary directory and renamed into place only when complete,
so a failed or interrupted build never leaves a half-made image that a later `up` would use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.errors import LabError, Unsupported

CUSTOMIZE_SCRIPT = Path(__file__).with_name("vm_customize.sh")

BASE_PACKAGES = [
    "systemd", "systemd-sysv", "udev", "dbus", "openssh-server", "python3", "python3-venv",
    "iproute2", "nftables", "busybox-static", "e2fsprogs", "linux-image-amd64",
]  # fmt: skip
# The runtime's dependencies, from Debian (berth supports dbus-next and pyroute2 0.7).
RUNTIME_PACKAGES = [
    "python3-dbus-next", "python3-pyroute2", "python3-filelock", "python3-jsonschema",
    "python3-zstandard", "python3-rich",
]  # fmt: skip
# The recipe: change anything here (or in vm_customize.sh) and the next `up --vm` rebuilds.
RECIPE: dict[str, Any] = {
    "format": 1,
    "suite": "bookworm",
    "variant": "minbase",
    "packages": sorted(BASE_PACKAGES + RUNTIME_PACKAGES),
    "dpkg_excludes": ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*"],
    "size": "6G",  # sparse: only what is written takes space
}


@dataclass(frozen=True)
class Image:
    dir: Path

    @property
    def root(self) -> Path:
        return self.dir / "root.img"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def recipe_hash(self) -> str:
        return self.dir.name

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.root, self.kernel, self.initrd, self.dir / "recipe.json"))

    def info(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.dir / "recipe.json").read_text())
        except (OSError, ValueError):
            meta = {}
        return {
            "path": str(self.dir),
            "recipe_hash": self.recipe_hash,
            "build_seconds": meta.get("build_seconds"),
            "kernel": meta.get("kernel"),
        }


def recipe_hash() -> str:
    doc = {**RECIPE, "customize": CUSTOMIZE_SCRIPT.read_text()}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def images_dir(state_root: Path) -> Path:
    return state_root / "images"


def current(state_root: Path) -> Image:
    return Image(images_dir(state_root) / recipe_hash())


def ensure(state_root: Path, rebuild: bool = False, log: Path | None = None) -> tuple[Image, bool]:
    """The image for the current recipe, built if missing; (image, whether it was built now)."""
    from filelock import FileLock

    image = current(state_root)
    images_dir(state_root).mkdir(parents=True, exist_ok=True)
    with FileLock(str(images_dir(state_root) / ".build.lock"), timeout=3600):
        if image.complete() and not rebuild:
            return image, False
        _build(image, log)
        _prune(state_root, keep=image)
        return image, True


def _prune(state_root: Path, keep: Image) -> None:
    """Remove images of older recipes that no lab's hosts still boot from (their overlays' base)."""
    in_use = {str(keep.dir)}
    for state_file in state_root.glob("*/lab.json"):
        try:
            in_use.add(str(json.loads(state_file.read_text()).get("image")))
        except (OSError, ValueError):
            in_use.add("*")  # unreadable: be safe, keep everything
    if "*" in in_use:
        return
    for d in images_dir(state_root).iterdir():
        if d.is_dir() and not d.name.startswith(".") and str(d) not in in_use:
            shutil.rmtree(d, ignore_errors=True)
            (d.parent / f"build-{d.name}.log").unlink(missing_ok=True)


def _run(argv: list[str], what: str, log: Path | None, timeout: float = 3600) -> None:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        if log:
            out.write(f"$ {shlex.join(argv)}\n".encode())  # type: ignore[union-attr]
            out.flush()  # type: ignore[union-attr]
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"image build: {what} timed out after {timeout:.0f} s") from exc
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        tail = ""
        if log:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise LabError(f"image build: {what} failed (exit {proc.returncode}); log {log}:\n{tail}")


def _build(image: Image, log: Path | None) -> None:
    for tool in ("mmdebstrap", "mkfs.ext4"):
        if shutil.which(tool) is None:
            raise Unsupported(f"building the VM lab image needs {tool}: apt-get install mmdebstrap e2fsprogs")
    started = time.monotonic()
    tmp = image.dir.parent / f".build-{image.recipe_hash}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        if log is None:
            log = tmp.parent / f"build-{image.recipe_hash}.log"
        log.unlink(missing_ok=True)
        rootdir = tmp / "rootfs"
        argv = [
            "mmdebstrap",
            f"--variant={RECIPE['variant']}",
            f"--include={','.join(RECIPE['packages'])}",
            '--aptopt=Apt::Install-Recommends "false"',
            *[f"--dpkgopt=path-exclude={p}" for p in RECIPE["dpkg_excludes"]],
            f'--customize-hook=/bin/sh {shlex.quote(str(CUSTOMIZE_SCRIPT))} "$1"',
            RECIPE["suite"],
            str(rootdir),
        ]
        _run(argv, "mmdebstrap", log)
        kernels = sorted((rootdir / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise LabError("image build: no kernel in the image's /boot (linux-image-amd64 not installed?)")
        version = kernels[-1].name.removeprefix("vmlinuz-")
        initrd = rootdir / "boot" / f"initrd.img-{version}"
        if not initrd.is_file():
            raise LabError(f"image build: no initrd for kernel {version} in the image's /boot")
        shutil.copyfile(kernels[-1], tmp / "vmlinuz")
        shutil.copyfile(initrd, tmp / "initrd.img")
        size = RECIPE["size"]
        _run(
            ["mkfs.ext4", "-q", "-F", "-L", "berthroot", "-d", str(rootdir), str(tmp / "root.img"), size],
            "mkfs.ext4",
            log,
        )
        shutil.rmtree(rootdir)
        os.chmod(tmp / "root.img", 0o444)  # the shared backing file of every host's overlay
        meta = {**RECIPE, "kernel": version, "build_seconds": round(time.monotonic() - started, 1)}
        (tmp / "recipe.json").write_text(json.dumps(meta, indent=2) + "\n")
        if image.dir.exists():  # --rebuild: the old one goes only once the new one is complete
            shutil.rmtree(image.dir)
        os.rename(tmp, image.dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
