"""plan(desired, observed) -> actions, for one container. Pure: no I/O, no clock."""

from __future__ import annotations

from typing import Any

from berth.containers.observe import Observed
from berth.containers.spec import ContainerSpec
from berth.errors import Conflict
from berth.plan import Action

STATES = ("started", "created", "stopped", "restarted", "absent")


def plan(spec: ContainerSpec | None, state: str, observed: Observed) -> list[Action]:
    """The actions that take `observed` to `spec` in `state`.

    A container whose recorded spec hash differs from the desired one is re-created: a
    container is immutable, like its image, and only its resources change live (`update`).
    """
    name = observed.name
    if state == "absent":
        stop = [Action("stop", name)] if observed.running else []
        return stop + ([Action("remove", name)] if observed.exists else [])
    if spec is None:
        raise AssertionError("a desired state other than absent needs a spec")
    same = observed.exists and observed.spec_hash == spec.spec_hash
    actions: list[Action] = []
    if observed.exists and not same:
        if observed.running:
            actions.append(Action("stop", name))
        actions.append(Action("remove", name, {"reason": "spec changed"}))
    if not same:
        actions.append(Action("create", name, {"spec_hash": spec.spec_hash}))
    running = same and observed.running
    if state == "started" and not running:
        actions.append(Action("start", name))
    elif state == "restarted":
        if running:
            actions.append(Action("stop", name))
        actions.append(Action("start", name))
    elif state == "stopped" and running:
        actions.append(Action("stop", name))
    return actions


def plan_create(spec: ContainerSpec, observed: Observed) -> list[Action]:
    if observed.exists:
        raise Conflict(f"container {spec.name} already exists: remove it first (berth rm {spec.name})")
    return [Action("create", spec.name, {"spec_hash": spec.spec_hash})]


def plan_stop(observed: Observed, timeout: int | None = None, keep_network: bool = False) -> list[Action]:
    """Stop a running container; `timeout` (seconds before SIGKILL) overrides its stop timeout.

    A timeout is only recorded when given: without one, systemd stops the unit as configured.
    `keep_network` parks its network attachment instead of detaching it (see `Containers.stop`).
    """
    if not observed.running:
        return []
    detail: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    if keep_network:
        detail["keep_network"] = True
    return [Action("stop", observed.name, detail)]


def plan_remove(observed: Observed, force: bool, timeout: int | None = None) -> list[Action]:
    """Remove a container; a running one only with `force`, stopped first as `plan_stop` does."""
    if observed.running and not force:
        raise Conflict(f"container {observed.name} is running: stop it first, or remove it with -f")
    return plan_stop(observed, timeout) + ([Action("remove", observed.name)] if observed.exists else [])
