"""What systemd says about a unit, as plain data: the fields berth reports and plans on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth.systemd.properties import json_value

# ExecMainCode is a waitid() si_code.
EXEC_MAIN_CODES = {0: None, 1: "exited", 2: "killed", 3: "dumped"}
RUNNING_STATES = frozenset({"active", "activating", "reloading", "deactivating"})


@dataclass(frozen=True)
class UnitState:
    """A unit's live state, from GetAll on its Unit and Service interfaces."""

    name: str
    load_state: str
    active_state: str
    sub_state: str
    result: str | None = None
    main_pid: int = 0
    exec_main_status: int | None = None
    exec_main_code: str | None = None
    control_group: str | None = None
    invocation_id: str | None = None
    environment: tuple[str, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_properties(cls, name: str, props: Mapping[str, Any]) -> UnitState:
        inv = props.get("InvocationID")
        return cls(
            name=name,
            load_state=str(props.get("LoadState", "")),
            active_state=str(props.get("ActiveState", "")),
            sub_state=str(props.get("SubState", "")),
            result=props.get("Result"),
            main_pid=int(props.get("MainPID") or 0),
            exec_main_status=props.get("ExecMainStatus"),
            exec_main_code=EXEC_MAIN_CODES.get(props.get("ExecMainCode", 0), "unknown"),
            control_group=props.get("ControlGroup") or None,
            invocation_id=bytes(inv).hex() if isinstance(inv, (bytes, bytearray)) and inv else None,
            environment=tuple(props.get("Environment") or ()),
            properties=dict(props),
        )

    @classmethod
    def not_loaded(cls, name: str) -> UnitState:
        """A unit systemd does not have loaded: for a transient unit, one that is gone."""
        return cls(name=name, load_state="not-loaded", active_state="inactive", sub_state="dead")

    @property
    def exists(self) -> bool:
        """Whether systemd has the unit (a transient unit is gone once stopped and collected)."""
        return self.load_state not in ("not-loaded", "not-found")

    @property
    def running(self) -> bool:
        return self.active_state in RUNNING_STATES

    def env(self, key: str) -> str | None:
        prefix = f"{key}="
        for entry in self.environment:
            if entry.startswith(prefix):
                return entry[len(prefix) :]
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "load_state": self.load_state,
            "active_state": self.active_state,
            "sub_state": self.sub_state,
            "result": self.result,
            "main_pid": self.main_pid,
            "exec_main_status": self.exec_main_status,
            "exec_main_code": self.exec_main_code,
            "control_group": self.control_group,
            "invocation_id": self.invocation_id,
        }

    def property_json(self, names: list[str]) -> dict[str, Any]:
        return {n: json_value(self.properties[n], n) for n in names if n in self.properties}


@dataclass(frozen=True)
class UnitListEntry:
    """One row of ListUnitsByPatterns."""

    name: str
    description: str
    load_state: str
    active_state: str
    sub_state: str
    path: str

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.name,
            "description": self.description,
            "load_state": self.load_state,
            "active_state": self.active_state,
            "sub_state": self.sub_state,
        }
