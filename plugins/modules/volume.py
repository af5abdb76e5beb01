#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.volume: options in, `berth volume apply` on the host, its verdict out."""

from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: Ensure a Berth named volume on a host
version_added: 0.1.0
description:
  - Ensures that a named volume - a directory the host's Berth runtime keeps under its data
    directory and mounts into containers (M(berth.fleet.container)'s O(berth.fleet.container#module:mounts)
    with C(type=volume)) - is present or absent, as C(podman volume create) and C(podman volume rm).
  - A container's create makes the volumes it names, and removing the container keeps them, so
    data outlives containers and deployment revisions. Declaring a volume makes its existence part
    of the play, and V(absent) removes its data for good.
  - A volume is in use while a container or a kept deployment revision names it (a rollback needs
    the same data); removing one in use fails, naming the users, and changes nothing.
  - The module is a thin client of the host's Berth runtime (C(berth volume apply)).
author:
  - Berth maintainers (@berth-project)
extends_documentation_fragment:
  - berth.fleet.attributes
  - berth.fleet.attributes.actionable
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - berth.fleet.runtime
attributes:
  diff_mode:
    details: The diff shows whether the volume was there before and is after.
options:
  name:
    description:
      - The volume's name - letters, digits, C(_), C(.) and C(-), up to 63, starting with a letter or
        a digit.
    type: str
    required: true
  state:
    description:
      - V(present) makes the volume (an empty directory) unless it is there.
      - V(absent) removes the volume and its data; this fails while a container or a kept
        deployment revision uses it.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: berth.fleet.volume_info
  - module: berth.fleet.container
  - module: berth.fleet.deployment
"""

EXAMPLES = r"""
- name: A volume for the shop's database
  berth.fleet.volume:
    name: shop-db

- name: Use it
  berth.fleet.container:
    name: db
    image: postgres:16
    mounts:
      - type: volume
        source: shop-db
        target: /var/lib/postgresql/data

- name: Remove it and its data, once nothing uses it
  berth.fleet.volume:
    name: scratch
    state: absent
"""

RETURN = r"""
volume:
  description: The volume; null with O(state=absent).
  returned: success
  type: dict
  contains:
    name:
      description: Its name.
      type: str
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
      description: Whether anything uses it.
      type: bool
actions:
  description:
    - The changes made (V(create-volume), V(remove-volume)); in check mode, the changes that
      would be made.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: The kind of change.
      type: str
    target:
      description: The volume's name.
      type: str
error:
  description: Why the module failed, typed for C(failed_when); see M(berth.fleet.container).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import (
    apply,
    change_result,
    run_module,
)
from ansible_collections.berth.fleet.plugins.module_utils._options import set_options

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


def apply_volume(module):
    spec = set_options(module.params, ARGUMENT_SPEC, ["name", "state"])
    response = apply(module, ["volume", "apply", "-f", "-"], spec=spec)
    return change_result(module, response, volume=(response.data or {}).get("volume"))


def main():
    run_module(ARGUMENT_SPEC, apply_volume)


if __name__ == "__main__":
    main()
