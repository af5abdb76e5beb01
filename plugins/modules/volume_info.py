#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.volume_info: what `berth volume ls` says, read-only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_info
short_description: List the Berth named volumes of a host
version_added: 0.1.0
description:
  - Returns the named volumes the Berth runtime keeps on the host, each with its path, when it
    was made and what uses it (containers, and the kept revisions of deployments).
  - With O(name), returns that volume only, or none when the runtime does not have it.
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
      - The name of one volume. When not set, all the volumes are returned.
    type: str
seealso:
  - module: berth.fleet.volume
"""

EXAMPLES = r"""
- name: List the volumes
  berth.fleet.volume_info:
  register: volumes

- name: Those nothing uses
  ansible.builtin.debug:
    msg: "{{ volumes.volumes | rejectattr('in_use') | map(attribute='name') }}"
"""

RETURN = r"""
volumes:
  description: The volumes; an empty list when there is none (or none of that name).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Its name.
      type: str
      sample: shop-db
    path:
      description: Its directory on the host, what containers mount.
      type: str
    created_at:
      description: When it was made (UTC), or null for one made by an older runtime.
      type: str
    users:
      description: What uses it - C(container NAME) and C(deployment NAME revision N) entries.
      type: list
      elements: str
    in_use:
      description: Whether anything uses it (then M(berth.fleet.volume) refuses to remove it).
      type: bool
error:
  description: Why the module failed, typed for C(failed_when); see M(berth.fleet.container).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import call, run_module

ARGUMENT_SPEC = {"name": {"type": "str"}}


def read_volumes(module):
    rows = list(call(module, ["volume", "ls"]).data or [])
    name = module.params["name"]
    if name is not None:
        rows = [row for row in rows if row.get("name") == name]
    return {"changed": False, "volumes": rows}


def main():
    run_module(ARGUMENT_SPEC, read_volumes)


if __name__ == "__main__":
    main()
