# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.rollout_report: write a JSON report on the controller, in this process.

No module runs anywhere: the file is the controller's, and `ansible.builtin.copy` started a module
process (plus a stat) to write one local file: 2 s of a 6-host rollout's 22 s in bench/fleet.py.
"""

from __future__ import annotations

import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.filter.core import to_nice_json
from ansible_collections.berth.fleet.plugins.module_utils._rollout_report import ARGUMENT_SPEC


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # not used since ansible-core 2.10
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        path = os.path.abspath(os.path.expanduser(args["path"]))
        try:
            mode = int(args["mode"], 8)
        except ValueError:
            raise AnsibleActionFail(f"mode {args['mode']!r} is not an octal permission string") from None
        text = to_nice_json(args["report"]) + "\n"  # what the playbooks wrote with `copy` before
        before = _read(path)
        changed = before != text
        if self._task.diff and changed:
            result["diff"] = {
                "before": before or "",
                "after": text,
                "before_header": path,
                "after_header": path,
            }
        if changed and not self._task.check_mode:
            _write_atomically(path, text, mode)
        result.update(changed=changed, path=path)
        return result


def _read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnsibleActionFail(f"cannot read the report {path}: {exc}") from exc


def _write_atomically(path, text, mode):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise AnsibleActionFail(f"cannot write the report {path}: no directory {directory}")
    fd, temp = tempfile.mkstemp(prefix=".rollout-report.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise AnsibleActionFail(f"cannot write the report {path}: {exc}") from exc
