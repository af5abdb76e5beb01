"""What a CLI command returns: one shape for every command, rendered as JSON or text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from berth.plan import Action


@dataclass
class Result:
    """The outcome of one command.

    `data` is the command's payload in the JSON contract; `text` renders it for people
    (when absent, `data` is pretty-printed).
    """

    data: Any = None
    changed: bool = False
    actions: list[Action] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    diff: dict[str, Any] | None = None
    text: Callable[[], str] | None = None
    exit_code: int = 0
