#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.image_info: what `berth image ls` / `berth image inspect` say, read-only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: List or inspect the images in a host's Berth image store
version_added: 0.1.0
description:
  - Returns the images in the host's image store, each with its digest, ID, names, size and source.
  - With O(name), returns that image only, with its config and layers, or none when the store
    does not have it.
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
      - One image, by name (V(web:1)), digest or ID. When not set, all the images are returned.
    type: str
seealso:
  - module: berth.fleet.image
"""

EXAMPLES = r"""
- name: List the images
  berth.fleet.image_info:
  register: images

- name: Show their names
  ansible.builtin.debug:
    msg: "{{ images.images | map(attribute='tags') | flatten }}"

- name: Inspect one image
  berth.fleet.image_info:
    name: web:1
  register: web

- name: Show its command
  ansible.builtin.debug:
    msg: "{{ web.images[0].config.config.Cmd | default([]) }}"
  when: web.images | length == 1
"""

RETURN = r"""
images:
  description:
    - The images; an empty list when there is none (or, with O(name), when the store does not have it).
  returned: success
  type: list
  elements: dict
  contains:
    digest:
      description: The image's manifest digest.
      type: str
    id:
      description: The image's ID (its config's digest).
      type: str
    tags:
      description: The image's names.
      type: list
      elements: str
    repo_digests:
      description: The C(NAME@DIGEST) references the image was pulled as.
      type: list
      elements: str
    size:
      description: The image's size in bytes (its layers and config, compressed as stored).
      type: int
    created:
      description: The image's creation date, from its config.
      type: str
    platform:
      description: The image's OS and architecture.
      type: dict
    source:
      description: How the image came into the store (V(pull), V(build) or V(import)).
      type: str
    config:
      description: The image's OCI config.
      type: dict
      returned: with O(name)
    layers:
      description: The image's layers.
      type: list
      elements: dict
      returned: with O(name)
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


def read_images(module):
    name = module.params["name"]
    if name is None:
        data = call(module, ["image", "ls"]).data or {}
        return {"changed": False, "images": list(data.get("images") or [])}
    response = lookup(module, ["image", "inspect", name])
    return {"changed": False, "images": [] if response is None else [response.data]}


def main():
    run_module(ARGUMENT_SPEC, read_images)


if __name__ == "__main__":
    main()
