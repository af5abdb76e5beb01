#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.rollout_report: the documentation and arguments; the work is the action plugin's."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_report
short_description: Write a rollout's JSON report on the controller
version_added: 0.1.0
description:
  - Writes O(report) as indented JSON to O(path) on the Ansible controller, atomically (a
    temporary file in the same directory, flushed to disk, then renamed over O(path)), so a CI
    job that reads the report never sees half of one.
  - Used by C(playbooks/deploy.yml) and C(playbooks/rollback.yml). It runs in the controller's
    own process, as an action plugin, where M(ansible.builtin.copy) starts a module process (and a
    stat) for one local file, 2 s of a 6-host rollout's 22 s in the fleet benchmark
    (C(docs/benchmarks.md)).
author:
  - Berth maintainers (@berth-project)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: In check mode nothing is written; the task reports a change when the file would change.
  diff_mode:
    support: full
    details: The file's text before and after.
  idempotent:
    description: A second run with the same report reports no change and writes nothing.
    support: full
  platform:
    platforms: all
    details: Runs on the controller, whatever the host of the task.
options:
  path:
    description:
      - The report file on the controller. Its directory must exist.
    type: path
    required: true
  report:
    description:
      - The report. Written as the P(ansible.builtin.to_nice_json#filter) filter renders it (sorted
        keys, 4-space indent), with a final newline.
    type: dict
    required: true
  mode:
    description:
      - The file's permission bits, as an octal string.
    type: str
    default: "0644"
seealso:
  - module: berth.fleet.deployment
"""

EXAMPLES = r"""
- name: Write the rollout report
  berth.fleet.rollout_report:
    path: "{{ playbook_dir }}/rollout-42.json"
    report:
      rollout: rollout-42
      completed: true
      hosts: "{{ reports }}"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The report file on the controller.
  returned: always
  type: str
  sample: /srv/ci/rollout-42.json
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.fleet.plugins.module_utils._rollout_report import ARGUMENT_SPEC


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="berth.fleet.rollout_report runs on the controller, through its action plugin")


if __name__ == "__main__":
    main()
