"""The CLI builds only the parser of the command it runs: the table behind that stays true."""

from __future__ import annotations

import argparse

import pytest

from berth.cli import COMMAND_MODULES, COMMANDS, build_parser, command_module, command_word


def _registered(name: str) -> list[str]:
    sub = argparse.ArgumentParser().add_subparsers()
    command_module(name).register(sub)
    return list(sub.choices)


def test_commands_table_matches_what_the_modules_register() -> None:
    found = {command: name for name in COMMAND_MODULES for command in _registered(name)}
    assert found == COMMANDS


def _choices(parser: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--rm", "x"], "run"),
        (["--json", "rm", "-f", "x"], "rm"),
        (["--help"], None),
        ([], None),
        (["--", "run"], None),
    ],
)
def test_command_word(argv: list[str], expected: str | None) -> None:
    assert command_word(argv) == expected


def test_a_known_command_gets_its_module_only_and_parses_alike() -> None:
    argv = ["--json", "run", "--rm", "--rootfs", "/r", "-e", "A=1", "true", "-x"]
    small, full = build_parser(argv), build_parser()
    assert _choices(small) == ["run"]
    assert _choices(full) == list(COMMANDS)
    a, b = vars(small.parse_args(argv)), vars(full.parse_args(argv))
    assert a.keys() == b.keys()
    assert {k: v for k, v in a.items() if k != "handler"} == {k: v for k, v in b.items() if k != "handler"}
    assert a["handler"].__qualname__ == b["handler"].__qualname__ == "run_run"


@pytest.mark.parametrize("argv", [["bogus"], ["--help"], []])
def test_no_known_command_builds_every_parser(argv: list[str]) -> None:
    assert _choices(build_parser(argv)) == list(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_parses_its_help_alike(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for parser in (build_parser([command, "--help"]), build_parser()):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert _choices(build_parser([command])) == [command]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--bogus", "x"],
        ["rm"],
        ["container", "apply"],
        ["image", "nope"],
        ["--json", "stop", "-t", "x", "y"],
    ],
)
def test_errors_read_alike(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for parser in (build_parser(argv), build_parser()):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(argv)
        outputs.append((exit_.value.code, capsys.readouterr().err))
    assert outputs[0] == outputs[1]
