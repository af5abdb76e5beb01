#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.runtime_info: which runtime a host has, so a role can decide to install one."""

from __future__ import annotations

DOCUMENTATION = r"""
module: runtime_info
short_description: Report the host's Berth runtime and whether this collection can use it
version_added: 0.1.0
description:
  - Finds the host's Berth runtime as the other modules of the collection do, and reports its
    version and the protocol version it speaks.
  - Unlike the other modules, it does not fail when the runtime is missing or speaks another
    protocol. It reports RV(installed=false) or RV(compatible=false) instead, so that a role can
    install a matching runtime.
author:
  - Berth maintainers (@berth-project)
extends_documentation_fragment:
  - berth.fleet.attributes
  - berth.fleet.attributes.info_module
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - berth.fleet.runtime
attributes:
  platform:
    details: Hosts that run systemd as their service manager; tested on Debian 12.
options: {}
seealso:
  - module: berth.fleet.unit
"""

EXAMPLES = r"""
- name: Find out which runtime the host has
  berth.fleet.runtime_info:
  register: berth_runtime

- name: Say when the host needs the role berth.fleet.host
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} needs a runtime for protocol {{ berth_runtime.collection_protocol }}"
  when: not berth_runtime.compatible
"""

RETURN = r"""
installed:
  description: Whether a runtime executable was found.
  returned: always
  type: bool
  sample: true
compatible:
  description: Whether the runtime speaks this collection's protocol, so the other modules can use it.
  returned: always
  type: bool
  sample: true
collection_protocol:
  description: The protocol version this collection speaks.
  returned: always
  type: int
  sample: 1
runtime_path:
  description: Where the runtime executable was found.
  returned: when RV(installed) is true
  type: str
  sample: /usr/local/bin/berth
version:
  description: The runtime's version.
  returned: when RV(installed) is true
  type: str
  sample: 0.1.0
protocol:
  description: The protocol version the runtime speaks.
  returned: when RV(installed) is true
  type: int
  sample: 1
python:
  description: The version of the Python that runs the runtime.
  returned: when RV(installed) is true
  type: str
  sample: 3.11.2
python_executable:
  description: The Python interpreter that runs the runtime.
  returned: when RV(installed) is true
  type: str
  sample: /opt/berth/venv/bin/python3
error:
  description: Why the module failed (the runtime exists but could not be run or answered nonsense).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import connect, run_module
from ansible_collections.berth.fleet.plugins.module_utils._runtime import (
    PROTOCOL,
    RuntimeMissing,
)


def describe_runtime(module):
    # No `path` key: exit_json would add that file's stat to the result.
    result = {"changed": False, "collection_protocol": PROTOCOL}
    try:
        runtime = connect(module)
    except RuntimeMissing:
        result.update(installed=False, compatible=False)
        return result
    about = runtime.version()
    result.update(
        installed=True,
        compatible=about.get("protocol") == PROTOCOL,
        runtime_path=runtime.path,
        version=about.get("runtime"),
        protocol=about.get("protocol"),
        python=about.get("python"),
        python_executable=about.get("executable"),
    )
    return result


def main():
    run_module({}, describe_runtime)


if __name__ == "__main__":
    main()
