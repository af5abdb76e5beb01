#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.network: options in, `berth network apply` on the host, its verdict out."""

from __future__ import annotations

DOCUMENTATION = r"""
module: network
short_description: Ensure a Berth container network on a host
version_added: 0.1.0
description:
  - Ensures that a container network is present with the given settings, or absent. A Berth
    network is a Linux bridge on the host with an IPv4 subnet, an IPv6 subnet, or both (dual
    stack); the bridge holds each subnet's gateway address, and the runtime leases the other
    addresses to the containers that join the network (M(berth.fleet.container)'s
    O(berth.fleet.container#module:network) and O(berth.fleet.container#module:networks)), which
    reach each other by name.
  - The module is a thin client of the host's Berth runtime. It sends the network to
    C(berth network apply), which compares it with the network it recorded and plans the change
    before making it; every refusal (a subnet that overlaps another network or a route of the host,
    a bridge name that is taken, a network in use) happens in the plan, so nothing changes then.
  - A change of O(masquerade) alone is made live. Any other change (O(subnet), O(gateway),
    O(subnet6), O(gateway6), O(bridge)) re-creates the network, which the runtime refuses while
    containers use it.
  - The runtime records networks and creates their bridges again at boot (C(berth-restore.service),
    installed by the role C(berth.fleet.host)).
author:
  - Berth maintainers (@berth-project)
extends_documentation_fragment:
  - berth.fleet.attributes
  - berth.fleet.attributes.actionable
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - berth.fleet.runtime
attributes:
  check_mode:
    details:
      - In check mode the runtime plans the change without making it (C(berth network apply --check));
        no bridge, record or nftables rule is created, changed or removed. RV(actions) lists the plan.
      - The plan refuses in check mode what it would refuse otherwise, so a check run fails when the
        real one would.
  diff_mode:
    details: >-
      The diff shows the network's state, subnets, gateways, bridge and masquerade before and after.
options:
  name:
    description:
      - Name of the network, 1 to 63 letters, digits, C(_), C(.) or C(-), starting with a letter or
        digit. V(none), V(host) and V(bridge) are network modes of a container, not names.
      - V(berth) is the default network, the one that containers with
        O(berth.fleet.container#module:network=bridge) join.
    type: str
    required: true
  state:
    description:
      - V(present) creates the network, or changes it to match the options.
      - V(absent) removes the network's bridge, nftables rules and record; this fails while
        containers use it (containers that name it, running or not).
    type: str
    choices: [present, absent]
    default: present
  subnet:
    description:
      - The network's IPv4 subnet in CIDR notation, such as V(10.89.40.0/24), with a prefix length
        from 8 to 30 and no host bits set. It must not overlap another network of the host or a
        route of the host (such as the networks of its interfaces).
      - When not set, a network that exists keeps its subnet, and a new one gets the first free
        C(/24) of V(10.89.0.0/16), unless O(subnet6) is set (a new network with only O(subnet6) is
        IPv6-only).
    type: str
  gateway:
    description:
      - The address of the bridge on the subnet, which containers route through; a host address of
        O(subnet).
      - The subnet's first host address when not set (such as V(10.89.40.1)).
    type: str
  subnet6:
    description:
      - The network's IPv6 subnet, such as V(fd00:40::/64), with a prefix length from 48 to 120 and
        no host bits set; link-local, multicast, loopback and IPv4-mapped ranges are refused. A
        unique local prefix (V(fd00::/8)) is masqueraded to the host's addresses like IPv4; a
        routed global prefix works too when O(masquerade=false) and the routers know it.
      - Containers on the network get an IPv6 address and default route besides (or, without
        O(subnet), instead of) their IPv4 ones, their names resolve to both, and published ports
        answer on the host's IPv6 addresses too (not on V(::1), because the kernel does not forward
        IPv6 loopback traffic).
      - When not set, a network that exists keeps its IPv6 subnet (or stays without one).
      - Turns IPv6 forwarding on in the host; a host that configures its own IPv6 address from
        router advertisements then needs C(accept_ra=2) on its uplink.
    type: str
  gateway6:
    description:
      - The address of the bridge on O(subnet6); the subnet's first address (such as
        V(fd00:40::1)) when not set.
    type: str
  bridge:
    description:
      - The name of the bridge interface on the host, 1 to 15 letters, digits, C(_), C(.) or C(-).
      - When not set, a network that exists keeps its bridge, and a new one gets the first free
        name C(berthN) (C(berth0) for the default network V(berth)).
    type: str
  masquerade:
    description:
      - Masquerade (source NAT) the traffic of the network's containers to destinations outside the
        subnet, so they can reach other hosts through the host's addresses.
      - When V(false), containers reach only the host and each other; published ports still answer.
    type: bool
    default: true
seealso:
  - module: berth.fleet.network_info
  - module: berth.fleet.container
"""

EXAMPLES = r"""
- name: A network for the shop's containers
  berth.fleet.network:
    name: shop
    subnet: 10.89.40.0/24

- name: A web server on it, published on the host's port 8080
  berth.fleet.container:
    name: web1
    image: web:1
    network: shop
    ports:
      - "8080:80"

- name: A dual-stack network (unique local IPv6 addresses)
  berth.fleet.network:
    name: dual
    subnet: 10.89.41.0/24
    subnet6: fd00:41::/64

- name: A network whose containers cannot reach other hosts
  berth.fleet.network:
    name: backend
    masquerade: false

- name: Remove a network (once no container uses it)
  berth.fleet.network:
    name: shop
    state: absent
"""

RETURN = r"""
network:
  description:
    - The network as asked, with the subnet, gateway and bridge the runtime picked for options that
      were not set; in check mode, as it would be. With O(state=absent), its name only.
  returned: success
  type: dict
  contains:
    name:
      description: The network's name.
      type: str
      sample: shop
    subnet:
      description: The IPv4 subnet.
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
    containers:
      description: The containers that use the network.
      type: list
      elements: str
actions:
  description:
    - The changes made (V(create-network), V(update-network), V(remove-network)); in check mode,
      the changes that would be made. A re-created network is V(remove-network) then V(create-network).
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: The kind of change.
      type: str
      sample: create-network
    target:
      description: What it changed.
      type: str
      sample: shop
    detail:
      description: Further facts about the change.
      type: dict
      returned: when the runtime gives any
error:
  description:
    - Why the module failed, typed for C(failed_when); see M(berth.fleet.container).
    - V(conflict) when the subnet overlaps another network or a route of the host, when the bridge name
      is taken, or when a network in use would be removed or re-created (its C(details.containers)
      names the containers); V(invalid-input) for a malformed subnet, gateway, bridge or name.
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
    "subnet": {"type": "str"},
    "gateway": {"type": "str"},
    "subnet6": {"type": "str"},
    "gateway6": {"type": "str"},
    "bridge": {"type": "str"},
    "masquerade": {"type": "bool", "default": True},
}


def network_request(params):
    """The document `berth network apply` reads on stdin; a network to remove needs its name only."""
    if params["state"] == "absent":
        return {"name": params["name"], "state": "absent"}
    keys = ["name", "state", "subnet", "gateway", "subnet6", "gateway6", "bridge", "masquerade"]
    return set_options(params, ARGUMENT_SPEC, keys)


def apply_network(module):
    response = apply(module, ["network", "apply", "-f", "-"], spec=network_request(module.params))
    data = dict(response.data or {})
    for key in ("state", "check_mode"):
        data.pop(key, None)
    return change_result(module, response, network=data)


def main():
    run_module(ARGUMENT_SPEC, apply_network)


if __name__ == "__main__":
    main()
