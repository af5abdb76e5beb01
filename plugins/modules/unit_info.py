#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.unit_info: what `berth unit ls` / `berth unit inspect` say, read-only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: unit_info
short_description: List or inspect the transient services Berth manages on a host
version_added: 0.1.0
description:
  - Returns the units that the Berth runtime manages on the host (the ones created with
    M(berth.fleet.unit)), each with its recorded spec and its current systemd state.
  - With O(name), returns that unit only, or none when the runtime does not know it.
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
      - Name of one unit to inspect, with or without its C(.service) suffix.
      - When not set, all the units the runtime manages are returned.
    type: str
seealso:
  - module: berth.fleet.unit
"""

EXAMPLES = r"""
- name: List the units Berth manages
  berth.fleet.unit_info:
  register: managed

- name: Show their names
  ansible.builtin.debug:
    msg: "{{ managed.units | map(attribute='unit') | list }}"

- name: Inspect one unit
  berth.fleet.unit_info:
    name: worker
  register: worker

- name: Fail unless it runs
  ansible.builtin.assert:
    that:
      - worker.units | length == 1
      - worker.units[0].state.active_state == 'active'
"""

RETURN = r"""
units:
  description:
    - The managed units, as the runtime reports them; an empty list when there is none
      (or, with O(name), when the runtime does not know that unit).
  returned: success
  type: list
  elements: dict
  contains:
    unit:
      description: The systemd unit's full name.
      type: str
      sample: worker.service
    desired_state:
      description: The state the unit was last applied with (V(started) or V(stopped)).
      type: str
      sample: started
    spec_hash:
      description: The runtime's hash of the unit's canonical spec.
      type: str
    spec:
      description: The unit's recorded spec, canonical, in the shape M(berth.fleet.unit) takes its options.
      type: dict
    state:
      description:
        - The unit as systemd reports it, with the keys of RV(berth.fleet.unit#module:status).
        - Null when systemd does not have the unit loaded.
      type: dict
    managed:
      description: Whether berth manages the unit (it has a record, or carries berth's marker).
      type: bool
      returned: with O(name)
    running_spec_hash:
      description:
        - The hash of the spec the loaded unit was started with (berth's marker in its environment).
        - Differs from RV(units[].spec_hash) when the record and the running unit disagree.
      type: str
      returned: with O(name)
    properties:
      description: Live systemd properties of the unit, such as the limits systemd applied.
      type: dict
      returned: with O(name)
error:
  description: Why the module failed, typed for C(failed_when); see M(berth.fleet.unit).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import (
    call,
    lookup,
    run_module,
)

ARGUMENT_SPEC = {"name": {"type": "str"}}


def listed_units(data):
    """`berth unit ls` data: a list of units, or a mapping that holds one under `units`."""
    if isinstance(data, dict):
        data = data.get("units")
    return list(data or [])


def read_units(module):
    name = module.params["name"]
    if name is None:
        return {"changed": False, "units": listed_units(call(module, ["unit", "ls"]).data)}
    response = lookup(module, ["unit", "inspect", name])
    return {"changed": False, "units": [] if response is None else [response.data]}


def main():
    run_module(ARGUMENT_SPEC, read_units)


if __name__ == "__main__":
    main()
