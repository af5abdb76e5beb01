"""`python -m berth.network.hook attach|detach|stopped CONTAINER [POLICY]`: run by a container's unit.

`detach` (ExecStopPost, no restart policy) always exits 0: the container is gone either way, and
a failure here must not turn a clean stop into a failed unit; what it could not remove, `berth
rm` and `berth network restore` remove later. `stopped CONTAINER POLICY` (ExecStopPost with a
restart policy) parks the container when systemd will start it again (same address and ports
on the restart) and detaches it otherwise; it exits 0 too. `attach` (ExecStartPre, restart
policies only) fails the start when the network cannot be set up, as `berth start` would.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    ok = (len(argv) == 3 and argv[1] in ("attach", "detach")) or (len(argv) == 4 and argv[1] == "stopped")
    if not ok:
        print("usage: python -m berth.network.hook attach|detach|stopped CONTAINER [POLICY]", file=sys.stderr)
        return 2
    command, name = argv[1], argv[2]
    if command == "attach":
        return attach(name)
    import os

    from berth.network.containers import detach_container, park_container, restart_follows

    try:
        if command == "stopped" and restart_follows(argv[3], os.environ.get("SERVICE_RESULT", "")):
            park_container(name)
        else:
            detach_container(name)
    except Exception as exc:  # reported in the unit's journal, never fatal
        print(f"berth: network {command} of {name} failed: {exc}", file=sys.stderr)
    return 0


def attach(name: str) -> int:
    if attached_this_boot(name):  # `berth start` attached it just before it started the unit
        return 0
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


def attached_this_boot(name: str) -> bool:
    """Whether `name` is attached, in this boot, to a live namespace: at a first start (the
    common case), the command that started the unit attached it and wrote its hosts file.

    Only the attachment record, the boot identity and the namespace handle are read: the full
    path imports pyroute2 and the container spec, which made ExecStartPre the larger part of a
    deployment container's start (restart: always). A parked container (a restart) takes the full path.
    """
    from berth.host import boot_identity
    from berth.network import state
    from berth.network.netns import exists

    record = state.attachments().get(name)
    return (
        record is not None
        and record.get("status") == "attached"
        and record.get("boot") == boot_identity()
        and exists(state.netns_path(name))
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
