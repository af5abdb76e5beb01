"""Container operations: each one observes, plans, and applies through `berth.plan.apply`.

Every mutation happens under the containers lock, in a handler below; nothing else creates
units, directories or records. What the host must provide for a spec (bind sources, image,
networks) is checked before the first action is applied (`preflight`), so a bad spec changes
nothing, not even the container it was meant to replace. A create or start that fails is undone
before the error is reported: no unit, upper dir, record or run dir is left behind by bad input.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from berth import plan as plans
from berth.containers import image_source, lifecycle, owner, preflight, records, userns, volumes
from berth.containers.config import resource_properties, shim_config, unit_properties
from berth.containers.files import write_runtime_files
from berth.containers.image_source import process
from berth.containers.live import EXEC_ONLY, apply_exec_properties
from berth.containers.observe import Observed, observe
from berth.containers.paths import ContainerPaths, unit_name
from berth.containers.plan import plan, plan_create, plan_remove, plan_stop
from berth.containers.spec import ContainerSpec, parse_resources
from berth.errors import BerthError, Conflict, JobFailed, NotFound, StartFailed
from berth.host import boot_identity
from berth.network.containers import attach_container, detach_container, park_container, stopping_marker
from berth.plan import Action, Handler
from berth.state.atomic import atomic_write_json
from berth.systemd.properties import to_dbus
from berth.systemd.status import RUNNING_STATES
from berth.systemd.sync import Systemd
from berth.units.devices import check_device_limits, with_resets
from berth.units.limits import cgroup_unified
from berth.units.observe import live_state


@dataclass
class Outcome:
    name: str
    planned: list[Action]
    applied: list[Action]
    warnings: list[str] = field(default_factory=list)
    before: Observed | None = None


@contextlib.contextmanager
def stopping(name: str) -> Iterator[None]:
    """While this command stops container `name` and parks or detaches it itself, its PID in the
    marker tells the unit's ExecStopPost (network/unless_berth.sh) not to start the network hook:
    one Python start less per stop. Gone afterwards; a marker whose process died counts as none."""
    marker = stopping_marker(name)
    try:
        marker.write_text(f"{os.getpid()}\n")
    except FileNotFoundError:  # no run dir (not started in this boot): nothing for the hook to do
        yield
        return
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def unmounted_image_volumes(spec: ContainerSpec, image_config: dict[str, Any]) -> list[str]:
    """Warnings for the image's VOLUME paths the spec mounts nothing on. berth makes no anonymous
    volumes (podman's --image-volume=ignore): writes there stay in the container's upper dir and
    go with it, which a user who counted on the VOLUME line should hear about."""
    mounted = {m.target for m in spec.mounts}
    return [
        f"the image declares VOLUME {path} and nothing is mounted there: what the container writes "
        "there stays in its own upper dir and is removed with it (mount a named volume to keep it)"
        for path in sorted(image_config.get("Volumes") or {})
        if (path.rstrip("/") or "/") not in mounted
    ]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Containers:
    """The container operations of one host, over one D-Bus connection."""

    def __init__(self, systemd: Systemd | None = None) -> None:
        self._systemd = systemd

    @property
    def systemd(self) -> Systemd:
        if self._systemd is None:
            self._systemd = Systemd()
        return self._systemd

    def close(self) -> None:
        if self._systemd is not None:
            self._systemd.close()

    # -- reading ---------------------------------------------------------------------------
    def observe(self, name: str) -> Observed:
        return observe(self.systemd, name)

    def require(self, name: str) -> Observed:
        observed = self.observe(name)
        if not observed.exists:
            raise NotFound(f"no container named {name!r}")
        return observed

    def names(self) -> list[str]:
        return records.names()

    def wait(self, name: str, recheck: float = 1.0) -> dict[str, Any]:
        """Block until the container's process has exited; return why it stopped.

        It looks when systemd signals that the unit stopped (no polling: it waits for the
        signal), and at least every `recheck` seconds whatever it hears; backends that do not
        follow signals look every 20 ms.
        """
        unit = unit_name(name)
        self.systemd.watch_unit(unit)  # before the first look: no change slips in between
        while True:
            if self.systemd.active_state(unit) not in RUNNING_STATES:  # a cheap look first
                observed = self.observe(name)
                if not observed.running:
                    return observed.exit() or {"reason": "unknown", "exit_code": None, "signal": None}
            self.systemd.wait_until_stopped(unit, recheck)

    def stats(self, name: str) -> dict[str, Any]:
        """Usage from cgroup accounting, as systemd reads it (None: not accounted on this host)."""
        from berth.containers.cgroup_files import STAT_KEYS, cgroup_stats
        from berth.systemd.jobs import SERVICE
        from berth.systemd.sizes import UINT64_MAX

        observed = self.require(name)
        if not observed.running:
            return {
                "name": name,
                "running": False,
                "cpu_ns": None,
                "memory_bytes": None,
                "memory_max": None,
                "tasks": None,
                "io_read_bytes": None,
                "io_write_bytes": None,
                "memory_high": None,
                **dict.fromkeys(STAT_KEYS),
            }
        props = self.systemd.unit_properties(unit_name(name), [SERVICE])

        def value(key: str) -> int | None:
            raw = props.get(key)
            return None if raw is None or raw == UINT64_MAX else int(raw)

        return {
            "name": name,
            "running": True,
            "cpu_ns": value("CPUUsageNSec"),
            "memory_bytes": value("MemoryCurrent"),
            "memory_max": value("MemoryMax") if value("MemoryMax") is not None else "infinity",
            "tasks": value("TasksCurrent"),
            "io_read_bytes": value("IOReadBytes"),
            "io_write_bytes": value("IOWriteBytes"),
            "memory_high": value("MemoryHigh") if value("MemoryHigh") is not None else "infinity",
            # from the cgroup's own files (v2: memory.events, cpu.stat, PSI)
            **cgroup_stats(observed.live.control_group or "", cgroup_unified()),
        }

    # -- changing --------------------------------------------------------------------------
    def converge(self, spec: ContainerSpec | None, state: str, name: str, check: bool = False) -> Outcome:
        """Declarative: make container `name` be `spec` in `state` (the modules' entry point)."""
        with image_source.store_lock_first(name, spec), records.locked():
            observed = self.observe(name)
            actions = plan(spec, state, observed)
            warnings = self._preflight(spec, actions, check)
            outcome = self._apply(name, spec, actions, observed, check)
            outcome.warnings[:0] = warnings
            return outcome

    def create(
        self,
        spec: ContainerSpec,
        start: bool = False,
        stdio: tuple[int, int, int] | None = None,
        owned: bool = False,
    ) -> Outcome:
        """A new container; `owned`: it lives only as long as this process (see `owner`)."""
        # Nothing is applied before the create handler (which checks the rest and undoes itself
        # on failure); the sources are looked at first so a bad one is named, even for a taken name.
        preflight.check_sources(spec)
        with image_source.store_lock_first(spec.name, spec), records.locked():
            observed = self.observe(spec.name)
            actions = plan_create(spec, observed)
            if owned:
                actions = [replace(a, detail={**a.detail, "owner": owner.current()}) for a in actions]
            if start:
                actions.append(Action("start", spec.name))
            try:
                return self._apply(spec.name, spec, actions, observed, False, stdio)
            except BaseException as exc:
                if start:  # `run`: a container that could not start is not kept
                    self._undo_create(spec.name)
                    exc.applied = []  # type: ignore[attr-defined]  # undone: nothing changed
                raise

    def start(self, name: str) -> Outcome:
        return self._simple(name, lambda o: [] if o.running else [Action("start", name)])

    def stop(self, name: str, timeout: int | None = None, keep_network: bool = False) -> Outcome:
        """Stop `name`: its stop signal, then SIGKILL after its stop timeout (or `timeout` seconds).

        `keep_network`: leave its network attachment parked rather than detached (a deployment's
        retired revision, which a rollback starts again: same address, and no netlink then).
        """
        return self._simple(name, lambda o: plan_stop(o, timeout, keep_network))

    def restart(self, name: str) -> Outcome:
        return self._simple(
            name, lambda o: ([Action("stop", name)] if o.running else []) + [Action("start", name)]
        )

    def update(self, name: str, changes: dict[str, Any]) -> Outcome:
        """Change resources live: the unit's cgroup now, the record for every later start."""
        new = parse_resources(changes)
        check_device_limits(new)  # what systemd would only log and ignore
        return self._simple(name, lambda o: [Action("update", name, {"resources": new})] if new else [])

    def kill(self, name: str, signal: int) -> Outcome:
        return self._simple(name, lambda o: [Action("kill", name, {"signal": signal})] if o.running else [])

    def remove(self, name: str, force: bool = False, timeout: int | None = None) -> Outcome:
        """Remove `name`; with `force`, stop it first (`timeout`: seconds before SIGKILL, as `stop`)."""
        return self._simple(name, lambda o: plan_remove(o, force, timeout))

    def reap_orphans(self, check: bool = False) -> Outcome:
        """Remove the containers whose owner died without removing them (a killed build's steps).

        Each is checked again under the lock, then removed by the ordinary `remove` handler (its
        process killed, unit stopped, record, dirs and image use released). A failure is a warning:
        the command that reaps has work of its own to do.
        """
        outcome = Outcome("", [], [])
        candidates, debris = owner.orphans(), owner.debris()
        if not candidates and not debris:
            return outcome  # the common case: no lock, no D-Bus
        with contextlib.ExitStack() as locks:
            for name in {*candidates, *debris}:  # the store first, as everywhere (re-entrant)
                locks.enter_context(image_source.store_lock_first(name, None))
            locks.enter_context(records.locked())
            for name in candidates:
                observed = self.observe(name)
                if observed.record is None or owner.status(observed.record.get("owner")) != owner.GONE:
                    continue
                detail = {"reason": "its owner is gone", "owner": observed.record["owner"]}
                outcome.planned.append(Action("remove-container", name, detail))
                if check:
                    continue
                spec = ContainerSpec.from_json(observed.record["spec"])
                try:
                    self._apply(name, spec, [Action("remove", name)], observed, False)
                except (BerthError, OSError) as exc:
                    why = exc.message if isinstance(exc, BerthError) else str(exc)
                    outcome.warnings.append(f"could not remove orphaned container {name}: {why}")
                else:
                    outcome.applied.append(outcome.planned[-1])
            for name in owner.debris():  # a record-less dir is debris only under the lock
                action = Action("remove-container", name, {"reason": "a killed create or remove left it"})
                outcome.planned.append(action)
                if not check:
                    paths = ContainerPaths.of(name)
                    shutil.rmtree(paths.run, ignore_errors=True)
                    shutil.rmtree(paths.data, ignore_errors=True)
                    image_source.release(name)
                    outcome.applied.append(action)
        return outcome

    def _preflight(self, spec: ContainerSpec | None, actions: list[Action], check: bool) -> list[str]:
        """Refuse a spec the host cannot run before any action; in check mode, warn instead.

        Check mode only warns: an earlier task of the same play may create the missing source
        or pull the image, and check mode does not run it.
        """
        kinds = {a.kind for a in actions}
        if spec is None or not kinds & {"create", "start"}:
            return []
        found = preflight.problems(spec, create="create" in kinds)
        if found and not check:
            raise found[0]
        return [f"check mode: applying this would fail: {exc.message}" for exc in found]

    def _simple(self, name: str, make: Any) -> Outcome:
        with image_source.store_lock_first(name, None), records.locked():
            observed = self.require(name)
            spec = ContainerSpec.from_json(observed.record["spec"]) if observed.record else None
            return self._apply(name, spec, make(observed), observed, False)

    def _apply(
        self,
        name: str,
        spec: ContainerSpec | None,
        actions: list[Action],
        observed: Observed,
        check: bool,
        stdio: tuple[int, int, int] | None = None,
    ) -> Outcome:
        outcome = Outcome(name, actions, [], before=observed)
        if check:
            return outcome
        outcome.applied = plans.apply(actions, self._handlers(name, spec, outcome, stdio))
        return outcome

    def _handlers(
        self, name: str, spec: ContainerSpec | None, outcome: Outcome, stdio: tuple[int, int, int] | None
    ) -> Mapping[str, Handler]:
        paths = ContainerPaths.of(name)
        unit = unit_name(name)

        def create(action: Action) -> None:
            assert spec is not None
            outcome.warnings += self._create(spec, paths, action.detail.get("owner"))

        def start(_: Action) -> None:
            assert spec is not None
            outcome.warnings += self._start(spec, paths, stdio)

        def stop(action: Action) -> None:
            timeout = action.detail.get("timeout")
            with stopping(name):  # the unit's ExecStopPost leaves the network to us
                try:
                    if timeout is None:  # systemd's own: KillSignal, SIGKILL after TimeoutStopSec
                        self.systemd.stop(unit)
                    else:
                        self.systemd.stop_within(unit, float(timeout))
                except NotFound:
                    pass
                self._reset_failed(unit)
                if action.detail.get("keep_network"):
                    park_container(name)  # kept for a rollback: same address, no port rules
                else:
                    detach_container(name)
            record = records.get(name)
            if record is not None:
                lifecycle.advance(record, lifecycle.EXITED)
                record["finished_at"] = _now()
                records.put(record)

        def update(action: Action) -> None:
            record = records.get(name)
            assert record is not None and spec is not None
            resources = {**dict(spec.resources), **action.detail["resources"]}
            updated = replace(spec, resources=tuple(sorted(resources.items())))
            props, warnings = resource_properties(dict(action.detail["resources"]), cgroup_unified())
            outcome.warnings += warnings
            if live_state(self.systemd, unit).running:
                live = {k: v for k, v in props.items() if k not in EXEC_ONLY}
                if live:
                    typed = with_resets([to_dbus(k, v) for k, v in live.items()])
                    self.systemd.set_unit_properties(unit, typed)
                apply_exec_properties(self.systemd, unit, {k: v for k, v in props.items() if k in EXEC_ONLY})
            record["spec"], record["spec_hash"] = updated.to_json(), updated.spec_hash
            records.put(record)

        def kill(action: Action) -> None:
            self.systemd.kill(unit, int(action.detail["signal"]), "main")

        def remove(_: Action) -> None:
            record = records.get(name)
            if record is not None:
                lifecycle.advance(record, lifecycle.REMOVING)
                records.put(record)
            with stopping(name):  # the unit's ExecStopPost leaves the network to us
                if live_state(self.systemd, unit).running:
                    self.systemd.kill(unit, 9)
                    self.systemd.stop(unit)
                self._reset_failed(unit)
                detach_container(name)
            shutil.rmtree(paths.run, ignore_errors=True)
            shutil.rmtree(paths.data)
            image_source.release(name)

        return {
            "create": create,
            "start": start,
            "stop": stop,
            "update": update,
            "kill": kill,
            "remove": remove,
        }

    def _reset_failed(self, unit: str) -> None:
        try:
            self.systemd.reset_failed(unit)
        except NotFound:
            pass

    def _create(
        self, spec: ContainerSpec, paths: ContainerPaths, owned_by: dict[str, Any] | None
    ) -> list[str]:
        preflight.check_sources(spec)
        unit = unit_name(spec.name)
        live = live_state(self.systemd, unit)
        if live.exists:
            raise Conflict(f"a unit named {unit} exists and is not a berth container: choose another name")
        paths.data.mkdir(parents=True, mode=0o700)
        try:
            source = image_source.resolve(spec)
            argv = process(spec, source.config)[0]  # nothing to run is refused now, not at start
            record = {
                "name": spec.name,
                "spec": spec.to_json(),
                "spec_hash": spec.spec_hash,
                "unit": unit,
                "layers": source.layers,
                "image": source.image,
                "image_config": source.config,
                "argv": argv,
                "status": lifecycle.CREATING,
                "created_at": _now(),
            }
            if owned_by is not None:  # in the first write: no moment without it
                record["owner"] = owned_by
            # under the containers lock, in the first write: no two containers get one range
            ids: dict[str, Any] | None = None
            if spec.userns.mode != "host":  # reads every record: only when a range is wanted
                every = [r for r in map(records.get, records.names()) if r]
                ids = userns.allocate(spec.userns, spec.name, every)
            if ids is not None:
                record["userns"] = ids
            records.put(record)
            paths.upper.mkdir(mode=0o755)
            paths.work.mkdir(mode=0o700)
            if ids is not None:  # the container's root writes its upper layer as its host uid
                for d in (paths.upper, paths.work):
                    os.chown(d, ids["uid"], ids["gid"])
                binds = tuple(m.source or "" for m in spec.mounts if m.idmap)
                userns.probe(source.layers, str(paths.upper), str(paths.work), ids, binds)
            for m in spec.mounts:
                if m.type == "volume":  # made if missing; a fresh one gets the image's files
                    volumes.ensure(m.source or "")
                    if not m.nocopy:  # nocopy: left fresh, a later mount without it copies
                        volumes.copy_up(m.source or "", source.layers, m.target)
            lifecycle.advance(record, lifecycle.CREATED)
            records.put(record)
        except BaseException:
            shutil.rmtree(paths.data, ignore_errors=True)
            image_source.release(spec.name)
            raise
        return unmounted_image_volumes(spec, source.config)

    def _start(
        self, spec: ContainerSpec, paths: ContainerPaths, stdio: tuple[int, int, int] | None = None
    ) -> list[str]:
        record = records.get(spec.name)
        assert record is not None
        attached = attach_container(spec)  # first: a port conflict or a missing network changes nothing
        files = write_runtime_files(spec, paths, attached.hosts if attached else None)
        netns = attached.netns_path if attached else None
        config = shim_config(
            spec,
            paths,
            record["layers"],
            files,
            netns,
            image_config=record.get("image_config"),
            attached=stdio is not None,
        )
        if record.get("userns"):  # the mapped root must reach its rootfs and runtime files
            userns.configure(config, spec.mounts, record["userns"])
            userns.make_reachable(paths.run)
        atomic_write_json(paths.config, config, mode=0o600)
        paths.exit_file.unlink(missing_ok=True)
        paths.error_file.unlink(missing_ok=True)
        props, warnings = unit_properties(spec, paths, cgroup_unified(), stdio)
        if config["process"]["seccomp"] is None and not spec.privileged and spec.seccomp == "default":
            warnings.append("seccomp: berth has no syscall table for this architecture; no filter is loaded")
        unit = unit_name(spec.name)
        self._reset_failed(unit)
        try:
            self.systemd.start_transient(unit, props)
        except JobFailed as exc:
            self._reset_failed(unit)
            detach_container(spec.name)
            record["status"] = lifecycle.EXITED
            records.put(record)
            not_ready = _not_ready(spec, paths)
            try:
                reason = paths.error_file.read_text().strip()
            except FileNotFoundError:
                reason = f"it {not_ready}" if not_ready else exc.message
            if not_ready:  # the deployments' notify gate reports it as its own failure
                exc.details["not_ready"] = not_ready
            raise StartFailed(f"container {spec.name} failed to start: {reason}", **exc.details) from None
        lifecycle.advance(record, lifecycle.RUNNING)
        record["started_at"] = _now()
        record["boot"] = boot_identity()
        records.put(record)
        return warnings

    def _undo_create(self, name: str) -> None:
        paths = ContainerPaths.of(name)
        unit = unit_name(name)
        try:
            if live_state(self.systemd, unit).running:
                self.systemd.stop(unit)
            self._reset_failed(unit)
        finally:
            detach_container(name)
            shutil.rmtree(paths.run, ignore_errors=True)
            shutil.rmtree(paths.data, ignore_errors=True)
            image_source.release(name)


def _not_ready(spec: ContainerSpec, paths: ContainerPaths) -> str | None:
    """Why an `sdnotify: container` start failed, in the app's terms: no READY=1, and why not
    (from the exit record ExecStopPost wrote before systemd failed the start job)."""
    import json

    if spec.sdnotify != "container":
        return None
    try:
        info = json.loads(paths.exit_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if info.get("service_result") == "timeout":
        within = f"{spec.start_timeout}s" if spec.start_timeout else "systemd's start timeout"
        return f"did not send READY=1 within {within} (start_timeout)"
    code, status = info.get("exit_code"), info.get("exit_status")
    if code == "exited":
        how = f"with status {status}"
    elif code in ("killed", "dumped"):
        how = f"on signal {status}"
    else:
        return None
    return f"exited {how} before it sent READY=1"
