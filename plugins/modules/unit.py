#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.unit: options in, `berth unit apply` on the host, its verdict out."""

from __future__ import annotations

DOCUMENTATION = r"""
module: unit
short_description: Ensure a transient systemd service on a host
version_added: 0.1.0
description:
  - Ensures that a transient systemd service (a unit that systemd creates at run time, as
    C(systemd-run) does, with no unit file on disk) is started, stopped, or absent on the host.
  - The module is a thin client of the host's Berth runtime; it sends the desired unit as a spec
    to C(berth unit apply), which compares the spec's canonical hash and the unit's systemd state
    with what it recorded, and changes only what differs. So the module reports C(changed) exactly
    when the host was (or, in check mode, would be) changed.
  - Options left out take the runtime's defaults; they do not mean "keep what the unit has".
    A unit whose spec differs is replaced by one with the new spec, because systemd cannot
    change most properties of a running transient service.
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
    details: The diff shows the unit's state and canonical spec before and after.
options:
  name:
    description:
      - Name of the unit. The runtime adds the C(.service) suffix when it is missing.
    type: str
    required: true
  state:
    description:
      - V(started) runs the unit (it is created or replaced when its spec differs).
      - V(stopped) keeps the unit's record on the host but has no process running.
      - V(absent) stops the unit and forgets it.
    type: str
    choices: [started, stopped, absent]
    default: started
  command:
    description:
      - The program and its arguments, as a list; no shell is involved.
      - Required when O(state=started).
    type: list
    elements: str
  description:
    description:
      - The unit's C(Description=), shown by C(systemctl status); C(berth unit NAME) when not set.
    type: str
  slice:
    description:
      - The slice the unit runs in, for example V(berth.slice); the runtime's default slice when not set.
    type: str
  environment:
    description:
      - Environment variables of the service, as a mapping of names to string values.
      - Numbers are converted to strings; booleans and nulls are refused, because YAML turns
        C(yes), C(on) or C(~) into values whose string form is ambiguous. Quote such values.
    type: dict
  working_directory:
    description:
      - The service's C(WorkingDirectory=), an absolute path, or V(~) for the home directory of
        O(user) (systemd resolves it; the module does not expand it).
    type: str
  user:
    description:
      - The user the service runs as; V(root) when not set.
    type: str
  resources:
    description:
      - cgroup limits of the service. Limits that the host's cgroup hierarchy cannot enforce are
        reported as warnings.
      - Sizes are a number of bytes, a number with a V(K), V(M), V(G) or V(T) suffix (powers of
        1024) such as V(64M), or V(infinity). Equal sizes written differently (V(64M) and
        V(67108864)) are the same spec, so changing one into the other changes nothing.
    type: dict
    suboptions:
      memory_max:
        description:
          - Hard memory limit (C(MemoryMax=)), a size.
        type: str
      memory_high:
        description:
          - Memory throttling threshold (C(MemoryHigh=)), a size.
        type: str
      memory_swap_max:
        description:
          - Swap limit (C(MemorySwapMax=)), a size; V(0) makes O(resources.memory_max) a hard
            limit on hosts with swap.
        type: str
      cpu_quota:
        description:
          - CPU time limit (C(CPUQuota=)) as a percentage of one CPU, greater than 0 with at most
            two decimals, for example V(20%) or V(150%).
        type: str
      cpu_weight:
        description:
          - Relative CPU share (C(CPUWeight=)), from 1 to 10000.
        type: int
      tasks_max:
        description:
          - Maximum number of tasks (C(TasksMax=)), a number or V(infinity).
        type: str
      io_weight:
        description:
          - Relative block I/O share (C(IOWeight=)), from 1 to 10000.
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
  properties:
    description:
      - Further systemd properties of the service, by their D-Bus names (for example
        C(RestartUSec) or C(LimitNOFILE)), passed to the runtime as they are.
      - Properties that the options above set (such as C(ExecStart), C(Environment) or
        C(MemoryMax)) are refused; use the options.
    type: dict
seealso:
  - module: berth.fleet.unit_info
  - module: berth.fleet.runtime_info
  - name: systemd.resource-control
    description: The systemd resource control settings behind O(resources).
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.resource-control.html
"""

EXAMPLES = r"""
- name: Run a worker with memory and CPU limits
  berth.fleet.unit:
    name: worker
    command: [/usr/bin/python3, -m, http.server, "8080"]
    description: Demo HTTP worker
    environment:
      PYTHONUNBUFFERED: "1"
    resources:
      memory_max: 64M
      cpu_quota: 20%
      tasks_max: "50"
  register: worker

- name: Show the unit's systemd state
  ansible.builtin.debug:
    msg: "{{ worker.unit }} is {{ worker.status.active_state }} ({{ worker.status.main_pid }})"

- name: Stop it, keeping its record
  berth.fleet.unit:
    name: worker
    state: stopped

- name: Remove it
  berth.fleet.unit:
    name: worker
    state: absent

- name: Use a runtime installed elsewhere for every berth.fleet module of a play
  module_defaults:
    group/berth.fleet.berth:
      runtime_path: /opt/berth/venv/bin/berth
  block:
    - name: Run a one-off job
      berth.fleet.unit:
        name: report
        command: [/usr/local/bin/make-report]
"""

RETURN = r"""
unit:
  description: The systemd unit's full name.
  returned: success
  type: str
  sample: worker.service
spec_hash:
  description:
    - The runtime's hash of the unit's canonical spec; equal hashes mean equal units.
    - Null when the unit is (or, in check mode, would be) absent.
  returned: success
  type: str
status:
  description:
    - The unit as systemd reports it after the run; in check mode, as it is now.
    - Null when the unit does not exist.
  returned: success
  type: dict
  contains:
    active_state:
      description: systemd's C(ActiveState).
      type: str
      sample: active
    load_state:
      description: systemd's C(LoadState).
      type: str
      sample: loaded
    sub_state:
      description: systemd's C(SubState).
      type: str
      sample: running
    main_pid:
      description: The service's main process ID, 0 when none runs.
      type: int
      sample: 4242
    result:
      description: systemd's C(Result) of the service.
      type: str
      sample: success
    exec_main_status:
      description: Exit status (or signal number) of the main process, once it has exited.
      type: int
      sample: 0
    exec_main_code:
      description: How the main process ended (such as V(exited) or V(killed)); empty while it runs.
      type: str
    invocation_id:
      description: systemd's ID of this run of the unit.
      type: str
    control_group:
      description: The unit's cgroup path.
      type: str
      sample: /berth.slice/worker.service
actions:
  description:
    - The changes made, in order; in check mode, the changes that would be made.
    - On failure, the changes made before the failure.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: The kind of change.
      type: str
      sample: start
    target:
      description: What it changed.
      type: str
      sample: worker.service
    detail:
      description: Further facts about the change.
      type: dict
      returned: when the runtime gives any
error:
  description: Why the module failed, typed for C(failed_when).
  returned: failure
  type: dict
  contains:
    kind:
      description:
        - The runtime's error kind (such as V(invalid-input), V(job-failed) or V(systemd-unavailable)),
          or this collection's (V(runtime-missing), V(protocol-mismatch), V(bad-response), V(invalid-option)).
      type: str
      sample: invalid-input
    details:
      description: Facts about the failure, by kind.
      type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import (
    apply,
    change_result,
    run_module,
)
from ansible_collections.berth.fleet.plugins.module_utils._options import (
    resources_option,
    set_options,
    string_map,
)

# Every option here is a field of the runtime's spec (runtime_path is added by new_module).
ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "started", "choices": ["started", "stopped", "absent"]},
    "command": {"type": "list", "elements": "str"},
    "description": {"type": "str"},
    "slice": {"type": "str"},
    "environment": {"type": "dict"},
    "working_directory": {"type": "str"},
    "user": {"type": "str"},
    "resources": resources_option(),
    "properties": {"type": "dict"},
}


def unit_spec(params):
    """The runtime's spec from the module's options; unset options are left to the runtime."""
    spec = set_options(params, ARGUMENT_SPEC, list(ARGUMENT_SPEC))
    if "environment" in spec:
        spec["environment"] = string_map("environment", spec["environment"])
    return spec


def apply_unit(module):
    response = apply(module, ["unit", "apply", "-f", "-"], spec=unit_spec(module.params))
    data = response.data or {}
    return change_result(
        module,
        response,
        unit=data.get("unit"),
        spec_hash=data.get("spec_hash"),
        status=data.get("state"),
    )


def main():
    run_module(ARGUMENT_SPEC, apply_unit, required_if=[("state", "started", ["command"])])


if __name__ == "__main__":
    main()
