# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The arguments of berth.fleet.rollout_report, shared by its module file and its action plugin."""

from __future__ import annotations

ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "report": {"type": "dict", "required": True},
    "mode": {"type": "str", "default": "0644"},
}
