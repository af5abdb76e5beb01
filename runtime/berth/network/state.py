"""Networking's records under `<data dir>/network/`, all changed under one file lock.

- `networks/<name>.json`      the networks (what `berth network restore` re-creates at boot)
- `attachments/<container>.json`  a container's netns, interfaces and addresses, while attached
- `leases/<network>.json`     IPAM: address -> container
- `ports.json`                published ports: key -> {port, container}; one file, so the traffic
                              switch is one atomic write followed by one nftables transaction

An attachment is written before the kernel objects it names are created, so a crash halfway
leaves a record that `detach` can follow to remove whatever exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.state.atomic import atomic_write_json, read_json, remove_file
from berth.state.flock import flocked
from berth.state.store import RecordStore, data_dir

if TYPE_CHECKING:  # imported where used: `detach` of a container without networks needs neither
    from berth.network.model import Network
    from berth.network.ports import PortMapping


def root() -> Path:
    return data_dir() / "network"


def run_root() -> Path:
    return Path(os.environ.get("BERTH_RUN_DIR") or "/run/berth")


def netns_path(container: str) -> Path:
    return run_root() / "netns" / container


def networks() -> RecordStore:
    return RecordStore("networks", root())


def attachments() -> RecordStore:
    return RecordStore("attachments", root())


def leases() -> RecordStore:
    return RecordStore("leases", root())


@contextmanager
def locked() -> Iterator[None]:
    """The one lock over every networking record: leases, ports, attachments, networks."""
    root().mkdir(parents=True, exist_ok=True)
    with flocked(root() / ".lock"):
        yield


def all_networks() -> dict[str, Network]:
    from berth.network.model import Network

    store = networks()
    out = {}
    for name in store.names():
        record = store.get(name)
        if record is not None:
            out[name] = Network.from_json(record)
    return out


def get_leases(network: str) -> dict[str, str]:
    record = leases().get(network)
    return dict(record["leases"]) if record else {}


def put_leases(network: str, table: dict[str, str]) -> None:
    if table:
        leases().put(network, {"network": network, "leases": dict(sorted(table.items()))})
    else:
        leases().delete(network)


def _ports_file() -> Path:
    return root() / "ports.json"


def get_ports() -> dict[str, tuple[PortMapping, str]]:
    from berth.network.ports import PortMapping

    """Published ports: key -> (mapping, container holding it)."""
    try:
        doc: dict[str, Any] = read_json(_ports_file())
    except FileNotFoundError:
        return {}
    return {k: (PortMapping.from_json(v["port"]), str(v["container"])) for k, v in doc["ports"].items()}


def put_ports(table: dict[str, tuple[PortMapping, str]]) -> None:
    if not table:
        remove_file(_ports_file())
        return
    doc = {"ports": {k: {"port": p.to_json(), "container": c} for k, (p, c) in sorted(table.items())}}
    atomic_write_json(_ports_file(), doc, mode=0o600)
