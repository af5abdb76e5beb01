#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.container_info: what `berth ps --all` / `berth inspect` say, read-only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: container_info
short_description: List or inspect the Berth containers of a host
version_added: 0.1.0
description:
  - Returns every container the Berth runtime knows on the host (running or not), each with its
    recorded spec, its status and its systemd unit.
  - With O(name), returns that container only, or none when the runtime does not know it.
  - Never changes the host.
author:
  - Berth maintainers (@berth-project)
extends_documentation_fragment:
  - berth.fleet.attributes
  - berth.fleet.attributes.info_module
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - berth.fleet.runtime
options:
  name:
    description:
      - Name of one container to inspect. When not set, all the containers are returned.
    type: str
seealso:
  - module: berth.fleet.container
"""

EXAMPLES = r"""
- name: List the containers of every host
  berth.fleet.container_info:
  register: listed

- name: Show the running ones
  ansible.builtin.debug:
    msg: "{{ listed.containers | selectattr('status', 'eq', 'running') | map(attribute='name') | list }}"

- name: Inspect one container
  berth.fleet.container_info:
    name: web1
  register: web1

- name: Fail unless it runs
  ansible.builtin.assert:
    that:
      - web1.containers | length == 1
      - web1.containers[0].status == 'running'
"""

RETURN = r"""
containers:
  description:
    - The containers, as the runtime describes them, with the keys of
      RV(berth.fleet.container#module:container); an empty list when there is none (or, with
      O(name), when the runtime does not know that container).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The container's name.
      type: str
      sample: web1
    status:
      description: V(created), V(running), V(exited) or another lifecycle status.
      type: str
      sample: running
    unit:
      description: The systemd unit that runs the container.
      type: str
      sample: berth-web1.service
    spec_hash:
      description: The runtime's hash of the container's canonical spec.
      type: str
    spec:
      description: The container's recorded spec, canonical.
      type: dict
    pid:
      description: The main process ID on the host, or null when the container does not run.
      type: int
    networks:
      description:
        - The container's network interfaces (address, gateway, MAC) while it is attached.
        - C(parked) is true while they are kept for a restart or for a deployment's rollback (a
          retired revision's containers), without port rules.
      type: list
      elements: dict
    exit:
      description: Why the container's process last ended, or null.
      type: dict
error:
  description: Why the module failed, typed for C(failed_when); see M(berth.fleet.container).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import (
    call,
    lookup,
    run_module,
)

ARGUMENT_SPEC = {"name": {"type": "str"}}


def read_containers(module):
    name = module.params["name"]
    if name is None:
        return {"changed": False, "containers": list(call(module, ["ps", "--all"]).data or [])}
    response = lookup(module, ["inspect", name])
    return {"changed": False, "containers": [] if response is None else list(response.data or [])}


def main():
    run_module(ARGUMENT_SPEC, read_containers)


if __name__ == "__main__":
    main()
