"""`python -m berth.network.hook attach|detach CONTAINER`: run by a container's unit.

`detach` (ExecStopPost) always exits 0: the container is gone either way, and a failure here
must not turn a clean stop into a failed unit; what it could not remove, `berth rm` and
`berth network restore` remove later. `attach` (ExecStartPre, restart policies only) fails the
start when the network cannot be set up, as `berth start` would.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("attach", "detach"):
        print("usage: python -m berth.network.hook attach|detach CONTAINER", file=sys.stderr)
        return 2
    command, name = argv[1], argv[2]
    if command == "detach":
        from berth.network.containers import detach_container

        try:
            detach_container(name)
        except Exception as exc:  # reported in the unit's journal, never fatal
            print(f"berth: network detach of {name} failed: {exc}", file=sys.stderr)
        return 0
    return attach(name)


def attach(name: str) -> int:
    from berth.containers import records
    from berth.containers.paths import ContainerPaths
    from berth.containers.spec import ContainerSpec
    from berth.errors import BerthError
    from berth.network.containers import attach_container
    from berth.network.hosts import rewrite_in_place

    record = records.get(name)
    if record is None:
        print(f"berth: no container named {name}", file=sys.stderr)
        return 1
    try:
        attached = attach_container(ContainerSpec.from_json(record["spec"]))
    except BerthError as exc:
        print(f"berth: cannot attach {name} to its networks: {exc.message}", file=sys.stderr)
        return 1
    if attached is not None:
        rewrite_in_place(ContainerPaths.of(name).run / "hosts", attached.hosts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
