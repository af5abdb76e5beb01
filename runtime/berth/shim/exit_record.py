"""`shim record-exit` (the unit's ExecStopPost): why the container stopped, in exit.json.

A new Python process at every stop of a container, on the path of `berth run --rm`: it imports
nothing beyond `os` (its JSON is written by `jsonlite`, the config read only when the exit file's
path was not given on the command line, as by units that older versions of berth started).
"""

from __future__ import annotations

import os

from berth.shim import jsonlite


def record_exit(config_path: str, exit_file: str | None = None) -> int:
    """ExecStopPost: record why the container stopped, while its cgroup still exists."""
    oom_kills = _oom_kills()
    record = {
        "service_result": os.environ.get("SERVICE_RESULT"),
        "exit_code": os.environ.get("EXIT_CODE"),
        "exit_status": os.environ.get("EXIT_STATUS"),
        "oom_killed": os.environ.get("SERVICE_RESULT") == "oom-kill" or oom_kills > 0,
        "oom_kills": oom_kills,  # the kernel's count for the unit's cgroup (see _oom_kills)
        "invocation_id": os.environ.get("INVOCATION_ID"),
    }
    if exit_file is None:
        with open(config_path, "rb") as fh:
            exit_file = str(jsonlite.loads(fh.read())["exit_file"])
    write_atomically(exit_file, jsonlite.dumps(record))
    return 0


def write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, path)


def _oom_kills() -> int:
    """OOM kills in this unit's memory cgroup (v2 memory.events, else v1 memory.oom_control)."""
    with open("/proc/self/cgroup") as fh:
        paths = dict(line.rstrip("\n").split(":", 2)[1:] for line in fh)
    candidates = []
    if "memory" in paths:
        candidates.append(f"/sys/fs/cgroup/memory{paths['memory']}/memory.oom_control")
    if "" in paths:
        candidates.append(f"/sys/fs/cgroup{paths['']}/memory.events")
    for path in candidates:
        try:
            with open(path) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return 0
