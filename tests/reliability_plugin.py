"""The reliability summary of the hostile-input and fault suite (issue 8, part 7).

A pytest plugin, registered with `-p tests.reliability_plugin` (pytest.ini addopts). Tests that
try hostile inputs or inject faults tell it what they did through `pytestconfig` (no import, so
they run without the plugin too), or through `recorder(pytestconfig)`, which stands in a
recorder that counts nothing when the plugin is not loaded:

    rec = recorder(pytestconfig)
    rec.inputs(n, "kind")        # n hostile inputs tried (layers, specs, images, examples)
    rec.faults(n, "kind")        # n faults injected (kill -9, full disk, reload, races)
    rec.guard("escape")          # this test guards against an escape: if it fails, count one
    rec.guard("corrupt-store")   # ... a corrupted store (`berth image verify` failed)
    rec.guard("lost-revision")   # ... a lost deployment revision

At the end of the session it prints the summary and writes it to docs/reliability.md (or to
$BERTH_RELIABILITY_REPORT; set it to "-" to print only). A guarded test that fails counts as an
escape / corrupted store / lost revision; one marked xfail(strict=True) for a known bug counts as
"known, open" with its reason, so the document never hides a bug the suite knows about.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
GUARDS = {"escape": "escapes", "corrupt-store": "corrupted stores", "lost-revision": "lost revisions"}


def recorder(config: pytest.Config) -> Any:
    """The session's Recorder, or a stand-in that counts nothing when the plugin is not loaded."""
    return getattr(config, "berth_reliability", None) or _Null()


class _Null:
    def __getattr__(self, _name: str) -> Any:
        return lambda *a, **k: None


@dataclass
class Recorder:
    inputs_by_kind: Counter[str] = field(default_factory=Counter)
    faults_by_kind: Counter[str] = field(default_factory=Counter)
    guarded: dict[str, set[str]] = field(default_factory=dict)  # nodeid -> guard kinds
    failures: dict[str, list[str]] = field(default_factory=dict)  # guard -> nodeids that failed
    known: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # guard -> (nodeid, reason)
    passed: Counter[str] = field(default_factory=Counter)  # guard -> guarded tests that passed
    notes: dict[str, str] = field(default_factory=dict)
    current: str = ""
    started: float = field(default_factory=time.monotonic)

    # -- the API tests use --------------------------------------------------------------------
    def inputs(self, n: int = 1, kind: str = "input") -> None:
        self.inputs_by_kind[kind] += n

    def faults(self, n: int = 1, kind: str = "fault") -> None:
        self.faults_by_kind[kind] += n

    def meta(self, key: str, value: str) -> None:
        """A fact about the run shown in the summary (the fault seed, say)."""
        self.notes[key] = value

    def guard(self, kind: str) -> None:
        if kind not in GUARDS:
            raise ValueError(f"unknown guard {kind!r}: one of {sorted(GUARDS)}")
        self.guarded.setdefault(self.current, set()).add(kind)

    # -- outcomes -----------------------------------------------------------------------------
    def outcome(self, report: pytest.TestReport) -> None:
        kinds = self.guarded.get(report.nodeid)
        if not kinds:
            return
        xfail = getattr(report, "wasxfail", None)
        for kind in kinds:
            if xfail is not None and report.skipped:  # an expected failure: a known, open bug
                self.known.setdefault(kind, []).append((report.nodeid, str(xfail)))
            elif report.failed and report.when != "setup":  # a broken fixture is no escape
                self.failures.setdefault(kind, []).append(report.nodeid)
            elif report.passed and report.when == "call":
                self.passed[kind] += 1

    def summary(self, session_tests: int) -> str:
        lines = [
            "# Reliability summary",
            "",
            "Written by the test suite (`tests/reliability_plugin.py`) at the end of a run: what the",
            "hostile-input and fault tests tried, and what got through. Regenerate with `make test`.",
            "",
            f"- run: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {session_tests} tests, "
            f"{time.monotonic() - self.started:.0f} s",
            f"- inputs tried: **{sum(self.inputs_by_kind.values())}**",
            f"- faults injected: **{sum(self.faults_by_kind.values())}**",
        ]
        lines += [f"- {key}: {value}" for key, value in sorted(self.notes.items())]
        for kind, title in GUARDS.items():
            failed = self.failures.get(kind, [])
            known = self.known.get(kind, [])
            lines.append(
                f"- {title}: **{len(failed)}** (must be 0); known and open (xfail): {len(known)}; "
                f"guarded tests passed: {self.passed.get(kind, 0)}"
            )
        if self.inputs_by_kind:
            lines += ["", "| inputs | count |", "|---|---:|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(self.inputs_by_kind.items())]
        if self.faults_by_kind:
            lines += ["", "| faults | count |", "|---|---:|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(self.faults_by_kind.items())]
        failures = [(GUARDS[k], n) for k, ids in self.failures.items() for n in ids]
        if failures:
            lines += ["", "## Failed guards", ""] + [f"- {t}: `{n}`" for t, n in failures]
        known = [(GUARDS[k], n, r) for k, items in self.known.items() for n, r in items]
        if known:
            lines += ["", "## Known, open (xfail strict: the test flips when the fix lands)", ""]
            lines += [f"- {t}: `{n}`: {r}" for t, n, r in known]
        return "\n".join(lines) + "\n"

    # -- across pytest-xdist workers: each worker records its own tests, the controller merges ---
    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": dict(self.inputs_by_kind),
            "faults": dict(self.faults_by_kind),
            "guarded": {nodeid: sorted(kinds) for nodeid, kinds in self.guarded.items()},
            "failures": self.failures,
            "known": {k: [list(item) for item in items] for k, items in self.known.items()},
            "passed": dict(self.passed),
            "notes": self.notes,
        }

    def merge(self, data: dict[str, Any]) -> None:
        self.inputs_by_kind.update(data["inputs"])
        self.faults_by_kind.update(data["faults"])
        for nodeid, kinds in data["guarded"].items():
            self.guarded.setdefault(nodeid, set()).update(kinds)
        for kind, ids in data["failures"].items():
            self.failures.setdefault(kind, []).extend(ids)
        for kind, items in data["known"].items():
            self.known.setdefault(kind, []).extend((nodeid, reason) for nodeid, reason in items)
        self.passed.update(data["passed"])
        self.notes.update(data["notes"])


def pytest_configure(config: pytest.Config) -> None:
    rec = Recorder()
    config.berth_reliability = rec  # type: ignore[attr-defined]
    distributed = getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput")
    hooks = _ControllerHooks(rec) if distributed else _Hooks(rec, config)
    config.pluginmanager.register(hooks, "berth-reliability-hooks")


class _Hooks:
    """Records the tests run in this process (a plain run, or one pytest-xdist worker)."""

    def __init__(self, rec: Recorder, config: pytest.Config) -> None:
        self.rec, self.config = rec, config

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.rec.current = item.nodeid

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.rec.outcome(report)

    def pytest_sessionfinish(self) -> None:
        output = getattr(self.config, "workeroutput", None)
        if output is not None:  # a worker: hand the records to the controller
            output["berth_reliability"] = self.rec.to_json()


class _ControllerHooks:
    """The pytest-xdist controller: no test runs here; the workers' records arrive as they end."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get("berth_reliability")
        if data:
            self.rec.merge(data)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rec: Recorder = config.berth_reliability  # type: ignore[attr-defined]
    if not (rec.inputs_by_kind or rec.faults_by_kind or rec.guarded):
        return  # nothing of this suite ran (a unit subset, say): leave the document alone
    # The tests of the run: the collection count, which the pytest-xdist controller (which
    # collects nothing itself) lacks; there, the outcomes its workers reported.
    outcomes = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")
    reported = sum(len(terminalreporter.stats.get(kind, [])) for kind in outcomes)
    text = rec.summary(terminalreporter._numcollected or reported)
    terminalreporter.write_sep("=", "reliability summary")
    terminalreporter.write(text.split("\n", 5)[5])  # without the heading and the preamble
    # The document is the suite's: a run without any guarded test (a unit subset) only prints.
    target = os.environ.get("BERTH_RELIABILITY_REPORT") or (
        str(REPO / "docs" / "reliability.md") if rec.guarded else "-"
    )
    if target != "-":
        tmp = Path(f"{target}.tmp-{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(target)
        terminalreporter.write_line(f"written to {target}")
