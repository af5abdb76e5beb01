"""`berth lab status|up --json`: the fields scripts rely on (the demo reads the gateway). Pure."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from berth.cli.lab_cmd import _status_data, _status_text
from berth.lab.config import LabPaths
from berth.lab.fleet import HostState, LabState


def test_status_names_the_machine_side_of_the_bridge(tmp_path: Path) -> None:
    state = LabState(
        "demo",
        "10.251.7.0/24",
        [HostState(name="demo-1", index=1, address="10.251.7.11/24", machine_id="0" * 32)],
    )
    lab = SimpleNamespace(paths=LabPaths("demo", tmp_path))
    data = _status_data(lab, state)
    assert data["subnet"] == "10.251.7.0/24" and data["gateway"] == "10.251.7.1"
    assert data["hosts"][0]["address"] == "10.251.7.11" and data["hosts"][0]["running"] is False
    assert "gateway 10.251.7.1" in _status_text(data)
