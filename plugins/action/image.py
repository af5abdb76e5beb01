# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.image on the controller: copy an archive to a host only when the host lacks its image.

With `archive.location: controller` the plugin reads which image the archive holds (its index,
not its layers), then asks the host, by running the module in check mode with that image as
`archive.digest` and no path, what an import would change. The host answers without the archive:
nothing (a no-op run ends there, nothing copied), a tag (its store has the image: the module runs
again, still without the archive), or an `import` action (its store lacks the image: the archive is
copied into the task's remote temporary directory, the module imports it, and the directory is
removed). Every other use of the module passes straight through.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.berth.fleet.plugins.plugin_utils.archive_image import ArchiveError, archive_image

MODULE = "berth.fleet.image"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # not used since ansible-core 2.10
        archive = self._task.args.get("archive")
        from_controller = isinstance(archive, Mapping) and archive.get("location") == "controller"
        if not from_controller or self._task.args.get("state", "present") != "present":
            # The module itself refuses an archive with state=absent, with the reason.
            result.update(self._execute_module(module_name=MODULE, task_vars=task_vars))
            return result
        try:
            result.update(self._from_controller(dict(archive), task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _from_controller(self, archive, task_vars):
        if archive.get("digest"):
            return _failed(
                "archive.digest is read from the archive when archive.location=controller; leave it unset"
            )
        if not archive.get("path"):
            return _failed("archive.location=controller needs archive.path (the archive on the controller)")
        try:
            local = self._find_needle("files", archive["path"])
            fmt, image = archive_image(local, archive.get("format") or "auto")
        except (AnsibleError, ArchiveError) as exc:
            return _failed(str(exc))
        # The module sees the archive as the host will have it; the format is known now.
        wanted = dict(archive, location="host", digest=image, format=fmt)
        wanted.pop("path")
        facts = {"transferred": False, "archive_image": image}

        probe = self._module(wanted, task_vars, check=True)
        if probe.get("failed") or self._task.check_mode or not probe.get("changed"):
            return dict(probe, **facts)
        if any(action.get("action") == "import" for action in probe.get("actions") or []):
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            remote = self._connection._shell.join_path(tmpdir, "image-archive.tar")
            self._transfer_file(local, remote)
            self._fixup_perms2((tmpdir, remote), execute=False)
            wanted["path"] = remote
            facts["transferred"] = True
        return dict(self._module(wanted, task_vars, check=False), **facts)

    def _module(self, archive, task_vars, check):
        """Run the module with these archive options, in check mode if `check` (else the task's)."""
        args = copy.deepcopy(dict(self._task.args))
        args["archive"] = archive
        task_check_mode = self._task.check_mode
        self._task.check_mode = check or task_check_mode
        try:
            return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        finally:
            self._task.check_mode = task_check_mode


def _failed(msg):
    return {"failed": True, "changed": False, "msg": msg, "error": {"kind": "invalid-option", "details": {}}}
