# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How far the modules support Ansible's action attributes, by kind of module.

A module extends this fragment (what every module of the collection shares) and one variant for its
kind: `berth.fleet.attributes.actionable` for a module that may change the host,
`berth.fleet.attributes.info_module` for one that only reads. Then it extends
`ansible.builtin.action_common_attributes` and its `actiongroups` for the attributes' descriptions.
List this fragment first: of two fragments that set the same key of an attribute, the one listed
first wins, and `actiongroups` would reset `action_group` to no membership.

A module still writes under its own `attributes` what is true of it alone (such as the `details`
of its `diff_mode`); each key it writes there replaces the fragments' for that attribute.
"""

from __future__ import annotations


class ModuleDocFragment:
    # Every module of the collection: where it runs, and its action group (meta/runtime.yml).
    DOCUMENTATION = r"""
attributes:
  platform:
    platforms: debian
    details: Hosts that run systemd as their service manager and the Berth runtime; tested on Debian 12.
  action_group:
    support: full
    membership:
      - berth.fleet.berth
"""

    # A module that may change the host: the runtime plans in check mode and diffs what it changes.
    # Each such module says in diff_mode's details what its diff shows.
    ACTIONABLE = r"""
attributes:
  check_mode:
    support: full
    details: In check mode the runtime plans the change without making it; RV(actions) lists the plan.
  diff_mode:
    support: full
  idempotent:
    description: A second run with the same options reports no change and makes none.
    support: full
"""

    # A module that only reads the host.
    INFO_MODULE = r"""
attributes:
  check_mode:
    support: full
    details: The module only reads, so it runs in check mode as it does otherwise.
  diff_mode:
    support: N/A
    details: The module never changes the host.
"""
