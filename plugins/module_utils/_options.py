# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module options into runtime specs: what the argument spec cannot check by itself.

Private to this collection. Standard library only. Failures are `InvalidOption`s, raised before
the runtime is called, so a refused option never reaches the host.
"""

from __future__ import annotations

from ansible_collections.berth.fleet.plugins.module_utils._runtime import InvalidOption


def string_map(option, mapping):
    """A mapping's values as strings; refuse values whose string form YAML made ambiguous.

    Numbers become strings; booleans and nulls are refused, because YAML turns `yes`, `on` or `~`
    into values whose string form is not what the author wrote.
    """
    result = {}
    for key, value in mapping.items():
        where = f"{option}.{key}"
        if value is None:
            raise InvalidOption(
                f"{where} has no value; write '' for an empty string",
                details={"option": option, "key": str(key)},
            )
        if isinstance(value, bool):
            raise InvalidOption(
                f"{where} is the boolean {value}, not a string: quote the value you mean "
                f"(for example '{str(value).lower()}')",
                details={"option": option, "key": str(key)},
            )
        if not isinstance(value, (str, int, float)):
            raise InvalidOption(
                f"{where} must be a string, not a {type(value).__name__}",
                details={"option": option, "key": str(key)},
            )
        result[str(key)] = str(value)
    return result


def _without_unset(value, option_spec):
    """`value` without the suboptions left unset (None), by the option's spec; user data is kept."""
    suboptions = option_spec.get("options")
    if not suboptions:
        return value
    if isinstance(value, list):
        return [_without_unset(item, {"options": suboptions}) for item in value]
    if isinstance(value, dict):
        return {
            key: _without_unset(item, suboptions.get(key, {}))
            for key, item in value.items()
            if item is not None
        }
    return value


def set_options(params, argument_spec, keys):
    """The options among `keys` that are set (not None), without their unset suboptions.

    A dict option whose suboptions are all unset (such as `resources: {}`) is left out as well.
    """
    result = {}
    for key in keys:
        if params.get(key) is None:
            continue
        value = _without_unset(params[key], argument_spec[key])
        if value == {} and argument_spec[key].get("options"):
            continue
        result[key] = value
    return result


# The cgroup limits that unit, container and slice all take under `resources` (each module's
# DOCUMENTATION says what they mean there); a module adds its own with `resources_option`.
RESOURCE_LIMITS = {
    "memory_max": {"type": "str"},
    "memory_high": {"type": "str"},
    "memory_swap_max": {"type": "str"},
    "cpu_quota": {"type": "str"},
    "cpu_weight": {"type": "int"},
    "io_weight": {"type": "int"},
    "tasks_max": {"type": "str"},
    # device path -> limit: checked and resolved on the host by the runtime
    "io_read_bandwidth_max": {"type": "dict"},
    "io_write_bandwidth_max": {"type": "dict"},
    "io_read_iops_max": {"type": "dict"},
    "io_write_iops_max": {"type": "dict"},
}


def resources_option(**more):
    """The argument spec of a `resources` option: the shared limits, then the module's `more`."""
    options = {key: dict(value) for key, value in RESOURCE_LIMITS.items()}
    options.update(more)
    return {"type": "dict", "options": options}
