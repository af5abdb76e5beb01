# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper: the wall time of every task of a run, written as JSON to $BENCH_TASK_CLOCK.

A task's time runs from its start to the next task's start (or the end of the run): under the
linear strategy that is what the task costs the play, all its hosts together.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_clock
type: aggregate
short_description: wall time per task, for bench/
description: Writes [[play, task, start, end], ...] to the file named by BENCH_TASK_CLOCK.
requirements: [enable in ansible.cfg or ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_clock"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[list[object]] = []
        self._play = ""

    def _close(self) -> None:
        if self._rows and self._rows[-1][3] is None:
            self._rows[-1][3] = time.perf_counter()

    def v2_playbook_on_play_start(self, play: object) -> None:
        self._close()
        self._play = str(getattr(play, "get_name", lambda: "")())

    def v2_playbook_on_task_start(self, task: object, is_conditional: bool) -> None:
        self._close()
        self._rows.append(
            [self._play, str(getattr(task, "get_name", lambda: "")()), time.perf_counter(), None]
        )

    def v2_playbook_on_stats(self, stats: object) -> None:
        self._close()
        path = os.environ.get("BENCH_TASK_CLOCK")
        if path:
            with open(path, "w") as fh:
                json.dump(self._rows, fh)
