"""Unit specs: schema and value validation, canonical form, hash, and the systemd properties."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from berth.errors import InvalidInput
from berth.units.limits import unenforced
from berth.units.spec import MARKER_ENV, UnitSpec, parse_spec

BASE: dict[str, Any] = {"name": "web", "command": ["/bin/sleep", "infinity"]}


def spec(**fields: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


def props(s: UnitSpec) -> dict[str, Any]:
    return {p.name: (p.signature, p.value) for p in s.systemd_properties()}


def test_defaults() -> None:
    s = parse_spec(BASE)
    assert s.to_json() == {
        "name": "web.service",
        "state": "started",
        "command": ["/bin/sleep", "infinity"],
        "description": "berth unit web.service",
        "slice": None,
        "environment": {},
        "working_directory": None,
        "user": None,
        "resources": {},
        "properties": {},
    }


def test_full_spec_to_properties() -> None:
    s = parse_spec(
        spec(
            description="Web",
            slice="berth",
            environment={"B": "2", "A": "1"},
            working_directory="/srv",
            user="www-data",
            resources={
                "memory_max": "64M",
                "memory_high": 1048576,
                "memory_swap_max": "0",
                "cpu_quota": "20%",
                "cpu_weight": 100,
                "tasks_max": "50",
                "io_weight": 200,
            },
            properties={"Restart": "on-failure", "RestartUSec": 100000, "Type": "simple"},
        )
    )
    assert props(s) == {
        "Description": ("s", "Web"),
        "Type": ("s", "simple"),
        "Environment": ("as", ["A=1", "B=2", f"{MARKER_ENV}={s.spec_hash}"]),
        "ExecStart": ("a(sasb)", [["/bin/sleep", ["/bin/sleep", "infinity"], False]]),
        "Slice": ("s", "berth.slice"),
        "WorkingDirectory": ("s", "/srv"),
        "User": ("s", "www-data"),
        "MemoryMax": ("t", 67108864),
        "MemoryHigh": ("t", 1048576),
        "MemorySwapMax": ("t", 0),
        "CPUQuotaPerSecUSec": ("t", 200000),
        "CPUWeight": ("t", 100),
        "TasksMax": ("t", 50),
        "IOWeight": ("t", 200),
        "Restart": ("s", "on-failure"),
        "RestartUSec": ("t", 100000),
    }


def test_default_type_is_exec_so_exec_failures_fail_the_start_job() -> None:
    assert props(parse_spec(BASE))["Type"] == ("s", "exec")


@pytest.mark.parametrize(
    "a, b",
    [
        ({"resources": {"memory_max": "64M"}}, {"resources": {"memory_max": 67108864}}),
        ({"resources": {"cpu_quota": "20%"}}, {"resources": {"cpu_quota": "20.00%"}}),
        ({"resources": {"tasks_max": 5}}, {"resources": {"tasks_max": "5"}}),
        ({"name": "web"}, {"name": "web.service"}),
        ({"environment": {"A": "1", "B": "2"}}, {"environment": {"B": "2", "A": "1"}}),
        ({"state": "started"}, {"state": "stopped"}),  # the state is not part of the definition
        ({"resources": {"memory_max": None}}, {}),
        ({"properties": {"KillSignal": "SIGINT"}}, {"properties": {"KillSignal": 2}}),
    ],
)
def test_same_meaning_same_hash(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert parse_spec(spec(**a)).spec_hash == parse_spec(spec(**b)).spec_hash


@pytest.mark.parametrize(
    "change",
    [
        {"command": ["/bin/sleep", "1"]},
        {"resources": {"memory_max": "32M"}},
        {"environment": {"A": "1"}},
        {"description": "other"},
        {"slice": "other.slice"},
        {"properties": {"Restart": "always"}},
    ],
)
def test_a_change_of_definition_changes_the_hash(change: dict[str, Any]) -> None:
    assert parse_spec(spec(**change)).spec_hash != parse_spec(BASE).spec_hash


@pytest.mark.parametrize(
    "doc",
    [
        BASE,
        spec(state="stopped", command=...),
        spec(resources={"memory_max": "1G", "cpu_quota": "1.5%", "tasks_max": "infinity"}),
        spec(properties={"CPUAffinity": "0-2", "KillSignal": "TERM", "Type": "simple"}),
        spec(slice="a.slice", user="0", working_directory="~", environment={"X": "a b"}),
    ],
)
def test_canonical_form_is_a_fixed_point(doc: dict[str, Any]) -> None:
    s = parse_spec(doc)
    again = parse_spec(s.to_json())
    assert again == s
    assert again.spec_hash == s.spec_hash


# (spec fields, fragment the message must contain)
BAD: list[tuple[Any, str]] = [
    (["not", "an", "object"], "spec must be a JSON object"),
    ({"command": ["/bin/true"]}, "'name' is a required property"),
    (spec(name="a/b"), "'a/b' contains '/'"),
    (spec(name="x;y"), "contains ';'"),
    (spec(name="x.socket"), "not a service"),
    (spec(command=...), "command is required when state is 'started'"),
    (spec(command=[]), "spec field command"),
    (spec(command=["bin/x"]), "absolute path or a bare program name"),
    (spec(command="/bin/true"), "spec field command"),
    (spec(state="running"), "spec field state"),
    (spec(extra=1), "'extra' was unexpected"),
    (spec(environment={"1A": "x"}), "not a variable name"),
    (spec(environment={"A": 1}), "spec field environment.A"),
    (spec(environment={MARKER_ENV: "x"}), "reserved"),
    (spec(environment={"A": "x\x01"}), "control characters"),
    (spec(working_directory="srv"), "not an absolute path"),
    (spec(user="a b"), "not a user name"),
    (spec(slice="a/b"), "spec field slice"),
    (spec(slice="x.service"), "not a slice"),
    (spec(description="a\nb"), "control characters"),
    (
        spec(resources={"memory_max": "12 potatoes"}),
        "spec field resources.memory_max: cannot read '12 potatoes'",
    ),
    (spec(resources={"memory_high": "lots"}), "spec field resources.memory_high"),
    (spec(resources={"cpu_quota": "20"}), "spec field resources.cpu_quota"),
    (spec(resources={"cpu_weight": 0}), "spec field resources.cpu_weight"),
    (spec(resources={"cpu_weight": 10001}), "spec field resources.cpu_weight"),
    (spec(resources={"io_weight": "heavy"}), "spec field resources.io_weight"),
    (spec(resources={"tasks_max": "many"}), "spec field resources.tasks_max"),
    (spec(resources={"swap": 1}), "'swap' was unexpected"),
    (spec(properties={"Bogus": 1}), "spec field properties.Bogus: unknown systemd property"),
    (spec(properties={"Nice": "high"}), "spec field properties.Nice"),
    (spec(properties={"ExecStart": ["/bin/x"]}), "properties.ExecStart conflicts with command"),
    (spec(properties={"Environment": ["A=1"]}), "conflicts with environment"),
    (spec(properties={"Description": "x"}), "conflicts with description"),
    (
        spec(resources={"memory_max": "1G"}, properties={"MemoryMax": 5}),
        "properties.MemoryMax conflicts with resources.memory_max",
    ),
    (spec(user="root", properties={"User": "nobody"}), "properties.User conflicts with user"),
]


@pytest.mark.parametrize("doc, fragment", BAD)
def test_bad_spec(doc: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_spec(doc)
    assert fragment in err.value.message


def test_raw_property_may_override_a_default() -> None:
    assert props(parse_spec(spec(properties={"Type": "oneshot"})))["Type"] == ("s", "oneshot")


@pytest.mark.parametrize(
    "names, unified, expected",
    [
        (["MemoryMax", "MemoryHigh", "AllowedCPUs"], False, ["MemoryHigh", "AllowedCPUs"]),
        (["MemoryMax", "MemoryHigh"], True, []),
        (["MemoryHigh"], None, []),
        (["MemoryMax", "TasksMax", "CPUQuotaPerSecUSec"], False, []),
    ],
)
def test_unenforced_limits(names: list[str], unified: bool | None, expected: list[str]) -> None:
    warnings = unenforced(names, unified)
    assert [w.split()[0] for w in warnings] == expected
    assert all("cgroup v1" in w for w in warnings)
