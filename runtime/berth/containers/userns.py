"""`userns`: root in the container as an unprivileged range of ids on the host.

Three modes, as `podman run --userns`:

- `host` (the default): no user namespace; root in the container is root on the host.
- `auto`: the container gets a range of AUTO_SIZE ids of its own, the first free one of the pool.
- `{uid, gid, size}`: an explicit range (container ids 0..size-1 are host uid..uid+size-1).

The pool is the `containers` user's entries in /etc/subuid and /etc/subgid, as podman's, or
DEFAULT_POOL when there are none. A container's range is written in its record at create, under
the containers lock (so concurrent berth processes never hand one range out twice), kept across
restarts and reboots, and free again once its record is removed (`rm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.errors import Conflict, InvalidInput

AUTO_SIZE = 65536  # podman's default size for --userns=auto: every 16-bit id of an image
POOL_USER = "containers"
# (first, count) without a `containers` entry: 4094 auto ranges between systemd-nspawn's pick range
# (up to 0x6FFFFFFF) and systemd's foreign range (0x7FFE0000); below 2^31, which procps prints
# as a negative uid.
DEFAULT_POOL = ((0x70000000, 0x7FFE0000 - 0x70000000),)
MAX_ID = 2**32 - 2  # (uid_t)-1 is "no id"
SUBUID, SUBGID = Path("/etc/subuid"), Path("/etc/subgid")


@dataclass(frozen=True)
class Userns:
    """A canonical `userns` field: mode "host", "auto" or "map" (uid, gid, size given)."""

    mode: str = "host"
    uid: int | None = None
    gid: int | None = None
    size: int | None = None

    def to_json(self) -> str | dict[str, int]:
        if self.mode == "map":
            assert self.uid is not None and self.gid is not None and self.size is not None
            return {"uid": self.uid, "gid": self.gid, "size": self.size}
        return self.mode

    @classmethod
    def from_json(cls, doc: Any) -> Userns:
        return parse(doc if doc is not None else "host")


HOST = Userns()


def parse(value: Any) -> Userns:
    """Check a spec's `userns` value; every refusal names the field and what is wrong."""
    if isinstance(value, str):
        if value in ("host", ""):
            return HOST
        if value == "auto":
            return Userns("auto")
        raise InvalidInput(
            f"spec field userns: {value!r} is not 'host', 'auto' or a mapping {{uid, gid, size}}"
        )
    if not isinstance(value, dict):
        raise InvalidInput("spec field userns: expected 'host', 'auto' or a mapping {uid, gid, size}")
    unknown = sorted(set(value) - {"uid", "gid", "size"})
    if unknown:
        raise InvalidInput(f"spec field userns: unknown key {unknown[0]!r} (expected uid, gid and size)")
    numbers = {}
    for key in ("uid", "gid", "size"):
        item = value.get(key)
        if not isinstance(item, int) or isinstance(item, bool):
            raise InvalidInput(f"spec field userns.{key}: a whole number is required")
        numbers[key] = item
    uid, gid, size = numbers["uid"], numbers["gid"], numbers["size"]
    if size < 1:
        raise InvalidInput(f"spec field userns.size: {size} ids cannot hold the container's root (1 or more)")
    for key, first in (("uid", uid), ("gid", gid)):
        if first < 1:
            raise InvalidInput(
                f"spec field userns.{key}: {first} would map the container's root to the host's "
                "root; use userns: host for that"
            )
        if first + size - 1 > MAX_ID:
            raise InvalidInput(f"spec field userns: {key} {first} + size {size} is past the last id {MAX_ID}")
    return Userns("map", uid, gid, size)


# -- the pool and the allocations ------------------------------------------------------------
def pool(path: Path, user: str = POOL_USER) -> tuple[tuple[int, int], ...]:
    """(first, count) ranges of `user` in a subordinate id file, or DEFAULT_POOL if it has none."""
    ranges = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] == user and parts[1].isdigit() and parts[2].isdigit():
            first, count = int(parts[1]), int(parts[2])
            if first > 0 and count > 0:
                ranges.append((first, count))
    return tuple(sorted(ranges)) or DEFAULT_POOL


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def first_free(ranges: tuple[tuple[int, int], ...], used: list[tuple[int, int]], size: int) -> int | None:
    """The lowest start of `size` free ids inside the pool `ranges`, or None when it is full."""
    for first, count in ranges:
        start = first
        while start + size <= first + count:
            clash = [u for u in used if _overlap((start, size), u)]
            if not clash:
                return start
            start = max(u[0] + u[1] for u in clash)
    return None


def in_use(records: list[dict[str, Any]], exclude: str | None = None) -> list[tuple[str, dict[str, int]]]:
    """(container, its range) for every container record that holds one."""
    return [
        (r["name"], r["userns"])
        for r in records
        if r.get("userns") and r.get("name") != exclude
    ]  # fmt: skip


def allocate(
    want: Userns,
    name: str,
    records: list[dict[str, Any]],
    subuid: Path = SUBUID,
    subgid: Path = SUBGID,
) -> dict[str, Any] | None:
    """The range to record for container `name` (None for `host`); call under the containers lock."""
    if want.mode == "host":
        return None
    held = in_use(records, exclude=name)
    if want.mode == "map":
        assert want.uid is not None and want.gid is not None and want.size is not None
        for other, r in held:
            for key, first in (("uid", want.uid), ("gid", want.gid)):
                if _overlap((first, want.size), (r[key], r["size"])):
                    raise Conflict(
                        f"userns: {key}s {first}-{first + want.size - 1} overlap those of container "
                        f"{other} ({r[key]}-{r[key] + r['size'] - 1}); choose another range or userns: auto"
                    )
        return {"uid": want.uid, "gid": want.gid, "size": want.size, "auto": False}
    found = {}
    for key, path in (("uid", subuid), ("gid", subgid)):
        ranges = pool(path)
        start = first_free(ranges, [(r[key], r["size"]) for _, r in held], AUTO_SIZE)
        if start is None:
            shown = ", ".join(f"{a}-{a + n - 1}" for a, n in ranges)
            raise Conflict(
                f"userns: auto: no free range of {AUTO_SIZE} {key}s left in the pool ({shown}, from "
                f"{path} for user {POOL_USER!r} or berth's default): remove containers or widen the pool"
            )
        found[key] = start
    return {"uid": found["uid"], "gid": found["gid"], "size": AUTO_SIZE, "auto": True}


# -- what the host can do ---------------------------------------------------------------------
def probe(
    layers: list[str], upper: str, work: str, mapping: dict[str, Any], idmapped_binds: tuple[str, ...] = ()
) -> None:
    """Build, detached, the idmapped root (and `idmapped_binds`) the shim will build; say in plain
    words why it cannot.

    Run at create, so a host whose kernel or layer filesystem cannot do it refuses the container
    then, rather than at every start. Nothing is attached anywhere: closing the fds undoes it all.
    """
    import errno
    import os

    from berth.errors import Unsupported
    from berth.kernel import idmap, statfs_type

    try:
        ns = idmap.userns_fd(mapping["uid"], mapping["gid"], mapping["size"])
    except OSError as exc:
        raise Unsupported(f"userns: cannot create a user namespace on this host: {exc.strerror}") from exc
    fds: list[int] = []

    def idmapped(path: str, what: str) -> int:
        try:
            return idmap.idmapped_tree(path, ns)
        except OSError as exc:
            why = (
                f"its filesystem ({statfs_type(path)}) does not support idmapped mounts"
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP)
                else exc.strerror
            )
            raise Unsupported(f"userns: cannot idmap {what} {path}: {why}") from exc

    try:
        for source in idmapped_binds:
            os.close(idmapped(source, "bind mount source"))
        for layer in layers:
            fds.append(idmapped(layer, "image layer"))
        try:
            staging = os.path.join(os.path.dirname(upper), "idmap-layers")  # as the shim's
            fds.append(idmap.overlay_fd(list(fds), upper, work, staging))  # top layer first
        except OSError as exc:
            raise Unsupported(
                f"userns: this kernel's overlayfs cannot stack idmapped layers (Linux 5.19+): {exc.strerror}"
            ) from exc
    finally:
        for fd in (*fds, ns):
            os.close(fd)


def configure(config: dict[str, Any], mounts: tuple[Any, ...], mapping: dict[str, Any]) -> None:
    """Tell the shim's config the range, and which mounts it must idmap.

    Volumes are berth's own, owned by root on disk: idmapped, the container's root owns them and
    containers with different ranges can share one. Bind mounts keep the host's ownership (as in
    podman without `:idmap`): the container sees the ids outside its range as nobody; with
    `idmap`, the host's ids 0.. are the container's 0.. on that mount, as on a volume.
    """
    config["userns"] = {k: mapping[k] for k in ("uid", "gid", "size")}
    # The spec's mounts come first in the shim's list (berth's own, such as the notify socket, follow).
    for spec_mount, entry in zip(mounts, config["mounts"][: len(mounts)], strict=True):
        if spec_mount.type == "volume" or spec_mount.idmap:
            entry["idmap"] = True


def make_reachable(run: Path, levels: int = 2) -> None:
    """Let the container's mapped root reach its rootfs and runtime files in `run`.

    Not listable (0711), only traversable; `levels` parents (berth's own run dirs) get o+x too,
    in case a umask made them 0700. The files there are 0644 (hosts, hostname, resolv.conf).
    """
    run.chmod(0o711)
    for parent in list(run.parents)[:levels]:
        mode = parent.stat().st_mode & 0o7777
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
