#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.slice: options in, `berth slice apply` on the host, its verdict out."""

from __future__ import annotations

DOCUMENTATION = r"""
module: slice
short_description: Ensure a Berth cgroup slice and its resources on a host
version_added: 0.1.0
description:
  - Ensures that a systemd slice for a group of containers is present with the given resources,
    or absent. Slices express the three ways containers share a host - static binding (pinned
    CPUs and memory nodes), priority (weights) and limits (quota, memory, tasks) - for every
    container placed in them (M(berth.fleet.container)'s O(berth.fleet.container#module:slice)).
  - Slices nest by name - V(shop-api) is C(berth-shop-api.slice) inside C(berth-shop.slice), itself
    inside C(berth.slice) - so a parent's limits hold for all its children together.
  - The module is a thin client of the host's Berth runtime. It sends the slice to
    C(berth slice apply), which compares the hash of its canonical form (sizes in bytes, CPU lists
    normalised) with the one it recorded. A changed slice is updated live; its containers keep running.
  - The runtime records slices and starts them again at boot (C(berth-restore.service), installed
    by the role C(berth.fleet.host)).
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
    details: The diff shows the slice's state and resources before and after.
options:
  name:
    description:
      - The slice's group name - lowercase letters, digits and C(_), up to four levels joined by C(-).
        The unit is C(berth-NAME.slice).
    type: str
    required: true
  state:
    description:
      - V(present) creates the slice or changes its resources live.
      - V(absent) stops the slice and forgets it; this fails while containers or nested slices use it.
    type: str
    choices: [present, absent]
    default: present
  resources:
    description:
      - The slice's resources; the ones left out are not limited. Limits that the host's cgroup
        hierarchy cannot enforce are reported as warnings, on every run.
      - Sizes are a number of bytes, a number with a V(K), V(M), V(G) or V(T) suffix such as V(256M),
        or V(infinity); equal sizes written differently are the same slice.
    type: dict
    suboptions:
      memory_max:
        description:
          - Hard memory limit of all the slice's containers together (C(MemoryMax=)), a size.
        type: str
      memory_high:
        description:
          - Memory throttling threshold (C(MemoryHigh=)), a size.
        type: str
      memory_swap_max:
        description:
          - Swap limit (C(MemorySwapMax=)), a size.
        type: str
      cpu_quota:
        description:
          - CPU time limit as a percentage of one CPU, such as V(50%) or V(200%).
        type: str
      cpu_weight:
        description:
          - Relative CPU share against sibling slices, from 1 to 10000.
        type: int
      io_weight:
        description:
          - Relative block I/O share against sibling slices, from 1 to 10000.
        type: int
      io_read_bandwidth_max:
        description:
          - 'Read bandwidth limits (C(IOReadBandwidthMax=)), a map of device to size per second
            such as C({"/dev/vda": "10M"}). The device is its node, or any file on the disk to
            limit (a partition''s disk is limited); a path that names no disk (missing, a character
            device, on tmpfs or overlayfs) is refused before anything changes, where systemd would
            only log it. V(infinity) lifts a device''s limit.'
        type: dict
      io_write_bandwidth_max:
        description:
          - Write bandwidth limits (C(IOWriteBandwidthMax=)), as O(resources.io_read_bandwidth_max).
            On cgroup v1, buffered writes are not throttled (the kernel's blkio limits only
            direct IO there).
        type: dict
      io_read_iops_max:
        description:
          - Read IO operations per second (C(IOReadIOPSMax=)), a map of device to a count. Enforced
            on cgroup v2 only; on v1 the result warns that it is not.
        type: dict
      io_write_iops_max:
        description:
          - Write IO operations per second (C(IOWriteIOPSMax=)), as O(resources.io_read_iops_max).
        type: dict
      tasks_max:
        description:
          - Maximum number of tasks, a number or V(infinity).
        type: str
      cpus:
        description:
          - The CPUs the slice's containers may run on (C(AllowedCPUs=)), such as V(0-1).
            Enforced on cgroup v2 hosts only.
        type: str
      mems:
        description:
          - The memory (NUMA) nodes the slice's containers may use (C(AllowedMemoryNodes=)),
            such as V(0). Enforced on cgroup v2 hosts only.
        type: str
seealso:
  - module: berth.fleet.slice_info
  - module: berth.fleet.container
  - name: systemd.resource-control
    description: The systemd resource control settings behind O(resources).
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.resource-control.html
"""

EXAMPLES = r"""
- name: A shop slice with a memory limit and three times the default CPU share
  berth.fleet.slice:
    name: shop
    resources:
      memory_max: 1G
      cpu_weight: 300

- name: Its API, nested, with a CPU quota
  berth.fleet.slice:
    name: shop-api
    resources:
      cpu_quota: 150%
      tasks_max: "512"

- name: Run a container in it
  berth.fleet.container:
    name: api1
    image: shop-api:4
    slice: shop-api

- name: Remove a slice (once nothing uses it)
  berth.fleet.slice:
    name: batch
    state: absent
"""

RETURN = r"""
slice:
  description:
    - The slice as asked, canonical; with O(state=absent), its name and unit.
  returned: success
  type: dict
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
      description: The resources, canonical (sizes in bytes, CPU quota in microseconds per second).
      type: dict
spec_hash:
  description: The runtime's hash of the slice's canonical form; equal hashes mean equal slices.
  returned: success
  type: str
actions:
  description:
    - The changes made (V(start), V(update), V(stop), V(forget)); in check mode, the changes that
      would be made.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: The kind of change.
      type: str
      sample: update
    target:
      description: What it changed.
      type: str
      sample: berth-shop-api.slice
    detail:
      description: Further facts about the change.
      type: dict
      returned: when the runtime gives any
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
from ansible_collections.berth.fleet.plugins.module_utils._options import resources_option, set_options

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "resources": resources_option(cpus={"type": "str"}, mems={"type": "str"}),
}


def slice_request(params):
    """The document `berth slice apply` reads on stdin."""
    return set_options(params, ARGUMENT_SPEC, ["name", "state", "resources"])


def apply_slice(module):
    response = apply(module, ["slice", "apply", "-f", "-"], spec=slice_request(module.params))
    data = dict(response.data or {})
    spec_hash = data.pop("spec_hash", None)
    for key in ("state", "check_mode"):
        data.pop(key, None)
    return change_result(module, response, slice=data, spec_hash=spec_hash)


def main():
    run_module(ARGUMENT_SPEC, apply_slice)


if __name__ == "__main__":
    main()
