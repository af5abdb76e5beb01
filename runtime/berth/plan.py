"""Plan, then apply: the one choke point through which the runtime changes a host.

A command computes `plan(desired, observed) -> list[Action]` with no side effects; check mode
returns that list as is. `apply` runs the actions in order and reports exactly what ran, so
`changed` is true if and only if at least one action was applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from berth.errors import STORAGE_ERRNOS, storage_error


@dataclass(frozen=True)
class Action:
    """One change to a host: `kind` names the operation, `target` the object it touches."""

    kind: str
    target: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.kind, "target": self.target}
        if self.detail:
            out["detail"] = dict(self.detail)
        return out


Handler = Callable[[Action], None]


def apply(actions: Sequence[Action], handlers: Mapping[str, Handler]) -> list[Action]:
    """Run `actions` in order through `handlers`; return those that were applied.

    A handler that raises stops the run: the exception propagates with the actions applied
    so far attached as `applied`, so the caller can report a partial result honestly.
    """
    done: list[Action] = []
    for action in actions:
        try:
            handler = handlers[action.kind]
        except KeyError:
            raise AssertionError(f"no handler for action {action.kind!r}") from None
        try:
            handler(action)
        except OSError as exc:  # a full or read-only disk under any step: typed, so callers undo
            if exc.errno not in STORAGE_ERRNOS:
                exc.applied = list(done)  # type: ignore[attr-defined]
                raise
            typed = storage_error(exc, f"{action.kind} of {action.target}: cannot write")
            typed.applied = list(done)  # type: ignore[attr-defined]
            raise typed from exc
        except Exception as exc:
            exc.applied = list(done)  # type: ignore[attr-defined]
            raise
        done.append(action)
    return done
