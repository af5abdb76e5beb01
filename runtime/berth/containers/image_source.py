"""Where a container's layers come from: a directory tree, or an image in the local store.

An image is resolved once, at create: its layers (top first, as overlayfs wants them) and its
config are written into the container's record, and the store is told the container uses
them, so `berth image prune` keeps them and restarts or a reboot never need the store again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.containers.spec import ContainerSpec
from berth.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from berth.images.store import ImageRecord, ImageStore


@dataclass(frozen=True)
class Source:
    layers: list[str]
    image: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)


def holder(name: str) -> str:
    return f"container-{name}"


def resolve(spec: ContainerSpec) -> Source:
    """The container's layers and config; the store is told the container uses the image."""
    if spec.image is None:
        return inspect(spec)
    from berth.images.store import ImageStore

    with ImageStore().locked() as store:
        source, record = _lookup(store, spec.image)
        store.register_use(holder(spec.name), images=[record.digest], layers=record.chain_ids)
    return source


def inspect(spec: ContainerSpec) -> Source:
    """What `resolve` would give, registering nothing (reads of the store need no lock)."""
    if spec.image is None:
        for layer in spec.layers:
            if not Path(layer).is_dir():
                raise NotFound(f"layer {layer} does not exist or is not a directory")
        return Source(list(reversed(spec.layers)))
    from berth.images.store import ImageStore

    return _lookup(ImageStore(), spec.image)[0]


def _lookup(store: ImageStore, reference: str) -> tuple[Source, ImageRecord]:
    record = store.resolve(reference)
    layers: list[str] = []
    for chain_id in reversed(record.chain_ids):  # top first
        layers.append(str(store.layer_dir(chain_id)))
        if (store.layer_record(chain_id) or {}).get("opaque_root"):
            break  # overlayfs ignores an opaque xattr on a layer's root: hide the rest here
    for layer in layers:
        if not Path(layer).is_dir():
            raise NotFound(
                f"image {reference}: layer {layer} is not unpacked; run `berth image verify --repair`"
            )
    config = store.config(record).get("config") or {}
    image = {"reference": reference, "digest": record.digest, "id": record.id}
    return Source(layers, image, config), record


def _uses_image(name: str) -> bool:
    from berth.state.store import data_dir

    return (data_dir() / "images" / "uses" / f"{holder(name)}.json").exists()


@contextmanager
def store_lock_first(name: str, spec: ContainerSpec | None) -> Iterator[None]:
    """Hold the image store lock when the work on container `name` may touch the store.

    Taken before the containers lock, always: a build holds the store lock while it creates its
    step containers, so a container command that waited for the store while holding the
    containers lock would deadlock with it. (The store lock is re-entrant within a process.)
    """
    if (spec is None or spec.image is None) and not _uses_image(name):
        yield  # rootfs containers, the common case: no store at all
        return
    from berth.images.store import ImageStore

    with ImageStore().locked():
        yield


def release(name: str) -> None:
    """The container is gone: its image may be pruned now (if nothing else uses it)."""
    # Checked before importing the store: most removals (rootfs containers) have nothing to release.
    if not _uses_image(name):
        return
    from berth.images.store import ImageStore

    with ImageStore().locked() as store:
        store.release_use(holder(name))


def process(spec: ContainerSpec, config: dict[str, Any]) -> tuple[list[str], dict[str, str], str, str]:
    """argv, environment, working dir and user: the spec where it says, else the image (as docker)."""
    entrypoint = list(spec.entrypoint) or list(config.get("Entrypoint") or [])
    if spec.command:
        cmd = list(spec.command)
    elif spec.entrypoint:
        cmd = []  # a new entrypoint drops the image's Cmd
    else:
        cmd = list(config.get("Cmd") or [])
    argv = entrypoint + cmd
    if not argv:
        raise InvalidInput(f"container {spec.name}: no command given and the image has no Entrypoint or Cmd")
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    env.update(dict(spec.env))
    workdir = spec.workdir or config.get("WorkingDir") or "/"
    user = spec.user or config.get("User") or "0"
    return argv, env, workdir, user
