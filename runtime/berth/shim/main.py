"""Entry point of the shim: `python3 -S .../berth/shim/main.py start|record-exit|exec CONFIG ...`.

The shim is a new Python process at every start (ExecStart) and stop (ExecStopPost) of a
container, both on the path of `berth run`: each command imports only what it needs.

    start CONFIG                    create the container's process (berth.shim.start)
    record-exit CONFIG [EXIT_FILE]  write why it stopped (berth.shim.exit_record)
    exec CONFIG PID REQUEST         a new process in the running container (berth.shim.enter)
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # run as a script with -S: make the berth package importable
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str]) -> int:
    command, config_path = argv[1], argv[2]
    if command == "record-exit":
        from berth.shim.exit_record import record_exit

        return record_exit(config_path, argv[3] if len(argv) > 3 else None)
    from berth.shim import jsonlite

    with open(config_path, "rb") as fh:
        cfg = jsonlite.loads(fh.read())
    if command == "start":
        from berth.shim.start import start

        return start(cfg)
    if command == "exec":
        from berth.shim.enter import enter

        return enter(cfg, int(argv[3]), jsonlite.loads(argv[4]))
    print(f"berth shim: unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
