# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module that talks to the host runtime shares: how it finds the runtime."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  runtime_path:
    description:
      - Path of the Berth runtime executable (C(berth)) on the managed host.
      - When not set, the module looks for C(berth) on E(PATH), then at C(/usr/local/bin/berth),
        then at C(/opt/berth/bin/berth).
      - Set it for every module of the collection at once with
        C(module_defaults) and the action group C(group/berth.fleet.berth).
    type: path
requirements:
  - The Berth runtime (C(berth)) of protocol 1 on the managed host, as the role
    C(berth.fleet.host) installs it
  - Python 3.8 or newer on the managed host (its standard library only)
notes:
  - Requests go to the runtime as JSON on standard input, never on the command line, and come
    back as a versioned JSON result. A runtime that speaks another protocol version is refused
    with a message that says which version it speaks (M(berth.fleet.runtime_info) reports it
    instead).
"""
