"""A container spec: validated (schema, then meaning), canonicalised and hashed.

The canonical form fills defaults and normalises values ("64M" -> 67108864, "cap_kill" ->
"KILL", maps sorted), so two specs that mean the same container hash the same. That hash is
what decides whether a container must be re-created: never fuzzy inspect output.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from berth.containers.capabilities import effective_set
from berth.containers.schema import CONTAINER_SPEC_SCHEMA
from berth.containers.userns import HOST, Userns
from berth.containers.userns import parse as parse_userns
from berth.errors import InvalidInput
from berth.network.ports import PortMapping
from berth.network.spec_fields import network_fields
from berth.systemd.names import slice_name
from berth.systemd.properties import parse_cpu_set
from berth.systemd.sizes import parse_size
from berth.units.spec import RESOURCES

# podman's rule for names: they become unit names, directory names and hostnames.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
_HOSTNAME = re.compile(r"^(?!-)[a-zA-Z0-9-]{1,63}(?<!-)(\.(?!-)[a-zA-Z0-9-]{1,63}(?<!-))*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$")
_SECRET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_RESTART = re.compile(r"^(no|always|on-failure(:[1-9][0-9]{0,3})?)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15, "WINCH": 28,
    "PWR": 30, "RTMIN+3": 37,
}  # fmt: skip
DEFAULT_TASKS_MAX = 2048  # podman's pids-limit default
DEFAULT_STOP_TIMEOUT = 10


@dataclass(frozen=True)
class Mount:
    type: str
    target: str
    source: str | None = None
    read_only: bool = False
    size: int | None = None
    mode: str | None = None
    idmap: bool = False  # a bind mount shown through the container's user namespace (podman's :idmap)
    nocopy: bool = False  # a volume: no copy-up of the image's files at its first mount

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str | None = None
    layers: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""  # "": the image's WorkingDir, else /
    user: str = ""  # "": the image's User, else root
    hostname: str = ""
    mounts: tuple[Mount, ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()
    read_only: bool = False
    restart: str = "no"
    stop_signal: int = 15
    stop_timeout: int = DEFAULT_STOP_TIMEOUT
    capabilities: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp: str = "default"  # or "unconfined"
    labels: tuple[tuple[str, str], ...] = ()
    slice: str = "berth.slice"
    network: str = "none"
    resources: tuple[tuple[str, Any], ...] = field(default=())
    networks: tuple[str, ...] = ()  # bridge mode: the networks joined, eth0 first
    ports: tuple[PortMapping, ...] = ()
    userns: Userns = HOST  # see berth.containers.userns
    sdnotify: str = "runtime"  # "container": the app itself sends READY=1 (see berth.shim.notify)
    start_timeout: int = 0  # seconds for the start (READY=1 with sdnotify container); 0: systemd's

    def to_json(self) -> dict[str, Any]:
        # networks/ports only in bridge mode, so hashes of specs from before networking stay put
        net: dict[str, Any] = (
            {"networks": list(self.networks), "ports": [p.to_json() for p in self.ports]}
            if self.network == "bridge"
            else {}
        )
        # only when set, so hashes of specs from before sd_notify stay put
        if self.sdnotify != "runtime":
            net["sdnotify"] = self.sdnotify
        if self.start_timeout:
            net["start_timeout"] = self.start_timeout
        if self.userns != HOST:  # only when set, so hashes of specs from before userns stay put
            net["userns"] = self.userns.to_json()
        return net | {
            "name": self.name,
            "image": self.image,
            "layers": list(self.layers),
            "command": list(self.command),
            "entrypoint": list(self.entrypoint),
            "env": dict(self.env),
            "workdir": self.workdir,
            "user": self.user,
            "hostname": self.hostname,
            "mounts": [m.to_json() for m in self.mounts],
            "secrets": [{"name": n, "source": s} for n, s in self.secrets],
            "read_only": self.read_only,
            "restart": self.restart,
            "stop_signal": self.stop_signal,
            "stop_timeout": self.stop_timeout,
            "capabilities": list(self.capabilities),
            "privileged": self.privileged,
            "no_new_privileges": self.no_new_privileges,
            "seccomp": self.seccomp,
            "labels": dict(self.labels),
            "slice": self.slice,
            "network": self.network,
            "resources": dict(self.resources),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ContainerSpec:
        """Back from `to_json` (a record berth wrote itself: already canonical)."""
        return cls(
            name=doc["name"],
            image=doc.get("image"),
            layers=tuple(doc["layers"]),
            command=tuple(doc["command"]),
            entrypoint=tuple(doc["entrypoint"]),
            env=tuple(sorted(doc["env"].items())),
            workdir=doc["workdir"],
            user=doc["user"],
            hostname=doc["hostname"],
            mounts=tuple(Mount(**m) for m in doc["mounts"]),
            secrets=tuple((s["name"], s["source"]) for s in doc["secrets"]),
            read_only=doc["read_only"],
            restart=doc["restart"],
            stop_signal=doc["stop_signal"],
            stop_timeout=doc["stop_timeout"],
            capabilities=tuple(doc["capabilities"]),
            privileged=doc["privileged"],
            no_new_privileges=doc["no_new_privileges"],
            seccomp=doc.get("seccomp", "default"),
            labels=tuple(sorted(doc["labels"].items())),
            slice=doc["slice"],
            network=doc["network"],
            resources=tuple(sorted(doc["resources"].items())),
            networks=tuple(doc.get("networks") or ()),
            ports=tuple(PortMapping.from_json(p) for p in doc.get("ports") or ()),
            userns=Userns.from_json(doc.get("userns")),
            sdnotify=doc.get("sdnotify", "runtime"),
            start_timeout=int(doc.get("start_timeout", 0)),
        )

    @cached_property
    def spec_hash(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def argv(self) -> list[str]:
        return list(self.entrypoint) + list(self.command)


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise InvalidInput(
            f"invalid container name {shown!r}: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def _abs_path(value: str, what: str) -> str:
    if not value.startswith("/") or "\0" in value or _CONTROL.search(value):
        raise InvalidInput(f"{what}: {value!r} is not an absolute path")
    normal = posixpath.normpath(value)
    if ".." in normal.split("/"):
        raise InvalidInput(f"{what}: {value!r} may not contain '..'")
    return "/" + normal.lstrip("/")


def _signal(value: Any) -> int:
    if isinstance(value, int) and 1 <= value <= 64:
        return value
    if isinstance(value, str):
        text = value.upper().removeprefix("SIG")
        if text.isdigit() and 1 <= int(text) <= 64:
            return int(text)
        if text in _SIGNALS:
            return _SIGNALS[text]
    raise InvalidInput(f"spec field stop_signal: {value!r} is not a signal name or number")


def _validate_schema(doc: Any) -> None:
    from berth.containers.fastschema import surely_valid

    if surely_valid(CONTAINER_SPEC_SCHEMA, doc):  # no jsonschema import (70-90 ms) for valid specs
        return
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(CONTAINER_SPEC_SCHEMA).iter_errors(doc))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise InvalidInput(f"spec field {where}: {error.message}" if where else f"spec: {error.message}")


def _mounts(items: list[dict[str, Any]]) -> tuple[Mount, ...]:
    mounts, targets = [], set()
    for i, m in enumerate(items):
        what = f"spec field mounts.{i}"
        target = _abs_path(m["target"], f"{what}.target")
        if target in targets:
            raise InvalidInput(f"{what}.target: {target} is mounted twice")
        targets.add(target)
        source = m.get("source")
        if m["type"] == "bind":
            if not source:
                raise InvalidInput(f"{what}: a bind mount needs a source")
            source = _abs_path(source, f"{what}.source")
        elif m["type"] == "volume":
            validate_volume_name(source, f"{what}.source")
        elif source:
            raise InvalidInput(f"{what}: a tmpfs mount takes no source")
        size = parse_size(m["size"], f"{what}.size") if m.get("size") is not None else None
        if size == "infinity":
            size = None
        idmap, nocopy = bool(m.get("idmap")), bool(m.get("nocopy"))
        if idmap and m["type"] != "bind":
            raise InvalidInput(f"{what}.idmap: only bind mounts take it (named volumes are always idmapped)")
        if nocopy and m["type"] != "volume":
            raise InvalidInput(f"{what}.nocopy: only named volumes take it (the others get no copy-up)")
        read_only = bool(m.get("read_only"))
        mounts.append(Mount(m["type"], target, source, read_only, size, m.get("mode"), idmap, nocopy))  # type: ignore[arg-type]
    return tuple(sorted(mounts, key=lambda m: m.target))


def validate_volume_name(name: Any, what: str = "volume name") -> str:
    """A named volume's name: like a container's (it is a directory under the data dir)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"{what}: {name!r} is not a volume name (letters, digits, '_', '.', '-'; up to 63, "
            "starting with a letter or digit)"
        )
    return name


def parse_resources(doc: dict[str, Any]) -> dict[str, Any]:
    """Resource fields in canonical form ("64M" -> 67108864, "0-1" -> "0,1")."""
    resources: dict[str, Any] = {}
    for key, value in doc.items():
        what = f"spec field resources.{key}"
        if key == "cpus":
            resources[key] = ",".join(str(c) for c in parse_cpu_set(what, value))
        elif key == "nice":
            resources[key] = int(value)
        elif key in RESOURCES:
            resources[key] = RESOURCES[key][1](value, what)
        else:
            raise InvalidInput(f"{what}: unknown resource")
    return resources


def _slice(value: str | None) -> str:
    """A group name ("web" -> berth-web.slice, nested in berth.slice) or a full slice unit name."""
    if not value:
        return "berth.slice"
    if value.endswith(".slice"):
        return slice_name(value, "spec field slice")
    return slice_name(f"berth-{value}.slice", "spec field slice")


def parse_spec(doc: Any) -> ContainerSpec:
    """Validate a container spec document and return its canonical form."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"spec must be a JSON object, not {type(doc).__name__}")
    _validate_schema(doc)
    name = validate_name(doc["name"])
    sources = [k for k in ("image", "rootfs", "layers") if doc.get(k)]
    if len(sources) != 1:
        raise InvalidInput("spec: give exactly one of image, rootfs or layers")
    layers: tuple[str, ...] = ()
    if doc.get("rootfs"):
        layers = (_abs_path(doc["rootfs"], "spec field rootfs"),)
    elif doc.get("layers"):
        layers = tuple(_abs_path(p, "spec field layers") for p in doc["layers"])
    for path in layers:
        if any(c in path for c in ",:\\"):
            raise InvalidInput(f"layer path {path!r} may not contain ',', ':' or '\\' (overlayfs options)")

    env = doc.get("env") or {}
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise InvalidInput(f"spec field env: {key!r} is not a variable name")
        if "\0" in value:
            raise InvalidInput(f"spec field env.{key}: NUL characters are not allowed")
    user = doc.get("user", "")
    if user and not _USER.match(user):
        raise InvalidInput(f"spec field user: {user!r} is not a user[:group] name or id")
    hostname = doc.get("hostname") or name
    if len(hostname) > 64 or not _HOSTNAME.match(hostname):
        raise InvalidInput(f"spec field hostname: {hostname!r} is not a valid host name")
    restart = doc.get("restart", "no")
    if not _RESTART.match(restart):
        raise InvalidInput(f"spec field restart: {restart!r} is not no, always, on-failure or on-failure:N")
    secrets = []
    for s in doc.get("secrets") or []:
        if not _SECRET.match(s["name"]):
            raise InvalidInput(f"spec field secrets: {s['name']!r} is not a valid secret name")
        secrets.append((s["name"], _abs_path(s["source"], f"spec field secrets.{s['name']}.source")))

    resources = {"tasks_max": DEFAULT_TASKS_MAX, **parse_resources(doc.get("resources") or {})}
    network, networks, ports = network_fields(doc)

    command = tuple(doc.get("command") or ())
    entrypoint = tuple(doc.get("entrypoint") or ())
    if not command and not entrypoint and not doc.get("image"):
        raise InvalidInput("spec: a container from a rootfs needs a command or an entrypoint")
    workdir = _abs_path(doc["workdir"], "spec field workdir") if doc.get("workdir") else ""
    privileged = bool(doc.get("privileged"))
    caps = effective_set(doc.get("cap_add") or [], doc.get("cap_drop") or [], privileged)
    userns = parse_userns(doc.get("userns", "host"))
    mounts = _mounts(doc.get("mounts") or [])
    if userns.mode == "host" and any(m.idmap for m in mounts):
        raise InvalidInput(
            "spec field mounts: idmap needs a user namespace of the container's own (userns: auto or a range)"
        )
    return ContainerSpec(
        name=name,
        image=doc.get("image"),
        layers=layers,
        command=command,
        entrypoint=entrypoint,
        env=tuple(sorted(env.items())),
        workdir=workdir,
        user=user,
        hostname=hostname,
        mounts=mounts,
        secrets=tuple(sorted(secrets)),
        read_only=bool(doc.get("read_only")),
        restart=restart,
        stop_signal=_signal(doc.get("stop_signal", 15)),
        stop_timeout=int(doc.get("stop_timeout", DEFAULT_STOP_TIMEOUT)),
        capabilities=tuple(sorted(caps)),
        privileged=privileged,
        no_new_privileges=bool(doc.get("no_new_privileges")),
        seccomp=doc.get("seccomp", "default"),
        labels=tuple(sorted((doc.get("labels") or {}).items())),
        slice=_slice(doc.get("slice")),
        network=network,
        resources=tuple(sorted(resources.items())),
        networks=networks,
        ports=ports,
        userns=userns,
        sdnotify=doc.get("sdnotify", "runtime"),
        start_timeout=int(doc.get("start_timeout", 0)),
    )
