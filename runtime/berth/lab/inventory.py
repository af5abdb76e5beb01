"""The Ansible inventory of a lab: every host over SSH as root, with pinned host keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from berth.lab.config import LabPaths


class _Host(Protocol):
    name: str
    address: str


def inventory_data(paths: LabPaths, hosts: Sequence[_Host]) -> dict[str, Any]:
    return {
        "all": {
            "children": {
                "berth_lab": {
                    "hosts": {h.name: {"ansible_host": h.address.split("/")[0]} for h in hosts},
                    "vars": {
                        "ansible_user": "root",
                        "ansible_python_interpreter": "/usr/bin/python3",
                        "ansible_ssh_private_key_file": str(paths.private_key),
                        "ansible_ssh_common_args": (
                            f"-o UserKnownHostsFile={paths.known_hosts} -o StrictHostKeyChecking=yes"
                        ),
                        "berth_lab_name": paths.name,
                    },
                }
            }
        }
    }


def write_inventory(paths: LabPaths, hosts: Sequence[_Host]) -> None:
    import json

    from berth.state.atomic import atomic_write_bytes

    # JSON is valid YAML: no YAML library needed on the lab's side.
    text = json.dumps(inventory_data(paths, hosts), indent=2) + "\n"
    atomic_write_bytes(paths.inventory, text.encode())
