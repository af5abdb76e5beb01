"""After a boot: containers come back as their restart policy says, the rest are marked exited.

Transient units vanish when a host reboots. Berth notices a reboot by itself (the boot identity
in each record differs from this boot's) and never trusts a `running` it recorded before it.
`berth restore` runs at boot from berth-restore.service, and is harmless to run at any time.
"""

from __future__ import annotations

import time
from typing import Any

from berth.containers import lifecycle, records
from berth.containers.manager import Containers
from berth.host import boot_identity


def restore(containers: Containers) -> list[dict[str, Any]]:
    """Start every container of restart policy `always` that ran before this boot."""
    report = []
    boot = boot_identity()
    for name in containers.names():
        record = records.get(name)
        if record is None or record["status"] != lifecycle.RUNNING or record.get("boot") == boot:
            continue
        if containers.observe(name).running:
            continue
        policy = record["spec"]["restart"]
        if policy == "always":
            containers.start(name)
            report.append({"name": name, "action": "started", "restart": policy})
        else:
            with records.locked():
                record = records.get(name)
                if record is not None and record["status"] == lifecycle.RUNNING:
                    lifecycle.advance(record, lifecycle.EXITED)
                    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    record["finished_reason"] = "host-rebooted"
                    records.put(record)
            report.append({"name": name, "action": "marked-exited", "restart": policy})
    return report
