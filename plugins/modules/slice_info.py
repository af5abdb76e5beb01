#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.slice_info: what `berth slice ls` says, read-only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: slice_info
short_description: List the Berth slices of a host
version_added: 0.1.0
description:
  - Returns the slices the Berth runtime manages on the host (the ones created with
    M(berth.fleet.slice)), each with its recorded resources and its current systemd state.
  - With O(name), returns that slice only, or none when the runtime does not know it.
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
      - The group name of one slice (such as V(shop-api)), or its unit name (V(berth-shop-api.slice)).
      - When not set, all the slices are returned.
    type: str
seealso:
  - module: berth.fleet.slice
"""

EXAMPLES = r"""
- name: List the slices
  berth.fleet.slice_info:
  register: slices

- name: Show their states
  ansible.builtin.debug:
    msg: "{{ slices.slices | items2dict(key_name='unit', value_name='active_state') }}"
"""

RETURN = r"""
slices:
  description: The slices; an empty list when there is none (or none of that name).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The group name.
      type: str
      sample: shop-api
    unit:
      description: The systemd slice unit.
      type: str
      sample: berth-shop-api.slice
    resources:
      description: The recorded resources, canonical.
      type: dict
    spec_hash:
      description: The runtime's hash of the slice's canonical form.
      type: str
    active_state:
      description: systemd's C(ActiveState) of the slice (V(inactive) when systemd does not have it).
      type: str
      sample: active
    control_group:
      description: The slice's cgroup path, when it is active.
      type: str
error:
  description: Why the module failed, typed for C(failed_when); see M(berth.fleet.container).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import call, run_module

ARGUMENT_SPEC = {"name": {"type": "str"}}


def read_slices(module):
    rows = list(call(module, ["slice", "ls"]).data or [])
    name = module.params["name"]
    if name is not None:
        rows = [row for row in rows if name in (row.get("name"), row.get("unit"))]
    return {"changed": False, "slices": rows}


def main():
    run_module(ARGUMENT_SPEC, read_slices)


if __name__ == "__main__":
    main()
