# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the modules meet Ansible: options shared by all, and the one place results are emitted.

Private to this collection. A module's `main` hands its argument spec and an
`operation(module) -> result dict` to `run_module`, which builds the AnsibleModule with
`new_module` and runs the operation with `run`: typed `BerthError`s become `fail_json` there and
nowhere else, and the result becomes `exit_json`. An operation talks to the runtime with `call`
(or `apply`, for a command that may change the host, and `lookup`, for one that may find nothing).
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.fleet.plugins.module_utils._runtime import (
    BerthError,
    BerthRuntime,
    RuntimeFailed,
    locate,
)

# Options of the doc fragment berth.fleet.runtime; keep the two in step.
RUNTIME_OPTIONS = {"runtime_path": {"type": "path"}}


def new_module(argument_spec, **kwargs):
    """An AnsibleModule with the shared runtime options added to `argument_spec`."""
    spec = dict(RUNTIME_OPTIONS)
    spec.update(argument_spec)
    return AnsibleModule(argument_spec=spec, **kwargs)


def connect(module):
    """The host's runtime, found from `runtime_path` or the search path; raises RuntimeMissing."""
    path = locate(module.params.get("runtime_path"), os.environ.get("PATH"))

    def run(argv, stdin):
        # No `~`/`$VAR` expansion: arguments such as unit names are data, not shell words.
        return module.run_command(
            argv,
            data=stdin,
            binary_data=True,
            expand_user_and_vars=False,
            handle_exceptions=False,
        )

    return BerthRuntime(path, run)


def call(module, args, spec=None, check=False):
    """Run one runtime command and pass its warnings on to Ansible; returns the Response."""
    response = connect(module).call(args, spec=spec, check=check)
    for warning in response.warnings:
        module.warn(warning)
    return response


def apply(module, args, spec=None):
    """Run a command that may change the host (in check mode, the runtime only plans it)."""
    return call(module, args, spec=spec, check=module.check_mode)


def lookup(module, args):
    """Run a read-only command about one thing; None when the runtime does not know it (not-found)."""
    try:
        return call(module, args)
    except RuntimeFailed as exc:
        if exc.kind == "not-found":
            return None
        raise


def change_result(module, response, **payload):
    """The result of a command that may change the host: changed, actions, and diff if asked."""
    result = {"changed": response.changed, "actions": response.actions}
    if module._diff and response.diff is not None:
        result["diff"] = response.diff
    result.update(payload)
    return result


def run(module, operation):
    """Run `operation(module)`, then exit with its result or fail with the typed error."""
    try:
        result = operation(module)
    except BerthError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**result)


def run_module(argument_spec, operation, **kwargs):
    """A module's `main`: build it (every module supports check mode), run `operation`, exit."""
    run(new_module(argument_spec, supports_check_mode=True, **kwargs), operation)
