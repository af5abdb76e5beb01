"""What a container needs from the host, checked before any action of a plan is applied.

A replace stops and removes the old container before it creates the new one, so a new spec that
cannot work there (a bind source or secret that is missing, an image that is not in the store, a
network nobody created, a port another container publishes) must be refused first: then a bad
spec changes nothing. The create handler and the start check again where they use each thing,
since the host may change in between; this is the early, complete look.
"""

from __future__ import annotations

from pathlib import Path

from berth.containers import image_source
from berth.containers.spec import ContainerSpec
from berth.errors import BerthError, Conflict, InvalidInput, NotFound
from berth.units.devices import check_device_limits


def check(spec: ContainerSpec, create: bool = True) -> None:
    """Raise the first problem `problems` finds."""
    found = problems(spec, create)
    if found:
        raise found[0]


def problems(spec: ContainerSpec, create: bool = True) -> list[BerthError]:
    """Everything that would make creating (`create`) and starting `spec` here fail.

    Without `create` only what a start of an existing container uses is looked at: its layers
    and image config were recorded at its create, and the store is not needed again.
    """
    found: list[BerthError] = []
    try:
        check_sources(spec)
    except BerthError as exc:
        found.append(exc)
    if create:
        try:
            source = image_source.inspect(spec)
            image_source.process(spec, source.config)  # nothing to run
        except BerthError as exc:
            found.append(exc)
        if spec.userns.mode != "host":  # a range another container holds, or a full pool
            from berth.containers import records, userns

            try:
                userns.allocate(spec.userns, spec.name, [r for r in map(records.get, records.names()) if r])
            except BerthError as exc:
                found.append(exc)
    if spec.network == "bridge":
        found += _network_problems(spec)
    return found


def check_sources(spec: ContainerSpec) -> None:
    """Bind sources, secrets and the network mode: what the start would trip over."""
    for m in spec.mounts:
        if m.type == "bind" and not Path(m.source or "").exists():
            raise NotFound(f"bind mount source {m.source} does not exist", path=m.source)
    for name, source in spec.secrets:
        if not Path(source).is_file():
            raise NotFound(f"secret {name}: {source} does not exist or is not a file", path=source)
    if spec.network not in ("none", "host", "bridge"):
        raise InvalidInput(f"network {spec.network!r} is not available")
    check_device_limits(dict(spec.resources))


def _network_problems(spec: ContainerSpec) -> list[BerthError]:
    """Networks that do not exist, and ports another container publishes (this one's own are freed)."""
    from berth.network import state
    from berth.network.model import DEFAULT_NETWORK
    from berth.network.ports import find_clash

    found: list[BerthError] = []
    known = state.all_networks()
    for net in spec.networks:
        if net not in known and net != DEFAULT_NETWORK:  # the default one is made on first use
            found.append(NotFound(f"no network named {net!r}: create it with `berth network create {net}`"))
    held = state.get_ports()
    for port in spec.ports:
        holder = find_clash(port, held, spec.name)
        if holder is not None:
            found.append(
                Conflict(f"port {port.key} is already published by container {holder}", port=str(port))
            )
    return found
