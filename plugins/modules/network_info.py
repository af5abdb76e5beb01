#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.network_info: what `berth network ls` (or `network inspect`) says, read-only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: network_info
short_description: List the Berth container networks of a host
version_added: 0.1.0
description:
  - Returns the container networks the Berth runtime manages on the host (the ones created with
    M(berth.fleet.network), and the default network V(berth) once a container has used it), each
    with its subnet, gateway, bridge and the containers that use it.
  - With O(name), returns that network only, in more detail (its attached containers with their
    addresses, its address leases and its published ports), or none when the runtime does not know it.
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
      - The name of one network. When not set, all the networks are returned.
    type: str
seealso:
  - module: berth.fleet.network
"""

EXAMPLES = r"""
- name: List the networks
  berth.fleet.network_info:
  register: networks

- name: Show their subnets
  ansible.builtin.debug:
    msg: "{{ networks.networks | items2dict(key_name='name', value_name='subnet') }}"

- name: The addresses of the containers on the network shop
  berth.fleet.network_info:
    name: shop
  register: shop

- name: Show them
  ansible.builtin.debug:
    msg: "{{ shop.networks[0].attached | items2dict(key_name='container', value_name='address') }}"
"""

RETURN = r"""
networks:
  description: The networks; an empty list when there is none (or none of that name).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The network's name.
      type: str
      sample: shop
    subnet:
      description: The IPv4 subnet; V(null) for an IPv6-only network.
      type: str
      sample: 10.89.40.0/24
    gateway:
      description: The bridge's address on the subnet.
      type: str
      sample: 10.89.40.1
    subnet6:
      description: The IPv6 subnet.
      type: str
      returned: when the network has one
      sample: fd00:41::/64
    gateway6:
      description: The bridge's address on the IPv6 subnet.
      type: str
      returned: when the network has one
      sample: fd00:41::1
    bridge:
      description: The bridge interface on the host.
      type: str
      sample: berth1
    masquerade:
      description: Whether the containers' outbound traffic is masqueraded.
      type: bool
    created_at:
      description: When the network was created (UTC).
      type: str
    containers:
      description: The containers that use the network (that name it, running or not).
      type: list
      elements: str
    attached:
      description:
        - The running containers attached to the network, each with its C(container) name, its
          C(address) (IPv4 CIDR) and C(address6) (IPv6 CIDR; on dual-stack and IPv6-only networks),
          its interface names and the network's C(gateway), C(gateway6) and C(bridge).
      returned: when O(name) is set
      type: list
      elements: dict
    leases:
      description: The addresses leased to containers, as a mapping of address to container.
      returned: when O(name) is set
      type: dict
    ports:
      description:
        - The ports published by the network's attached containers, each with its C(port)
          (C([HOSTIP:]HOSTPORT:CONTAINERPORT/PROTO)), C(key) and C(container).
      returned: when O(name) is set
      type: list
      elements: dict
error:
  description: Why the module failed, typed for C(failed_when); see M(berth.fleet.container).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import call, lookup, run_module

ARGUMENT_SPEC = {"name": {"type": "str"}}


def read_networks(module):
    name = module.params["name"]
    if name is None:
        return {"changed": False, "networks": list(call(module, ["network", "ls"]).data or [])}
    response = lookup(module, ["network", "inspect", name])
    return {"changed": False, "networks": [] if response is None else list(response.data or [])}


def main():
    run_module(ARGUMENT_SPEC, read_networks)


if __name__ == "__main__":
    main()
