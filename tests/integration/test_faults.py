"""Injected faults (issue 8, part 4): kill -9 at random points, a full disk, daemon-reloads,
a D-Bus disconnect mid-start and racing berth processes. After every fault a normal run must
converge, and `berth image verify` must pass.

Reproducible: the delays come from `random.Random(seed)`, the seed is printed (and shown in the
reliability summary) and BERTH_FAULT_SEED replays a run. A few iterations by default; more
under the `slow` marker (BERTH_FAULT_ITERATIONS overrides both).

Image pulls run on this machine against the loopback registry with a temp BERTH_DATA_DIR (lab
hosts cannot reach it); builds with RUN steps and container starts run on a lab host.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from images_helpers import BERTH, berth, busybox_rootfs
from labkit import Lab
from rootfs import ROOTFS, build_rootfs

from tests.reliability_plugin import recorder as _rec

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="the image store needs root (mknod, trusted xattrs)")
SEED = int(os.environ.get("BERTH_FAULT_SEED") or random.SystemRandom().randrange(1 << 31))
ITERATIONS = int(os.environ.get("BERTH_FAULT_ITERATIONS") or 0)


@pytest.fixture
def rng(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> random.Random:
    """One generator per test, derived from the session seed and the test's name."""
    _rec(pytestconfig).meta("fault seed", f"{SEED} (replay: BERTH_FAULT_SEED={SEED})")
    print(f"fault seed: {SEED} (BERTH_FAULT_SEED={SEED} replays this run)")
    return random.Random(SEED ^ zlib.crc32(request.node.name.encode()))


def iterations(request: pytest.FixtureRequest, default: int, slow: int) -> int:
    if ITERATIONS:
        return ITERATIONS
    return slow if request.node.get_closest_marker("slow") else default


def both_speeds(fn: Any) -> Any:
    """A fault test once with a few iterations and once, under `slow`, with many."""
    return pytest.mark.parametrize("speed", ["quick", pytest.param("long", marks=pytest.mark.slow)])(fn)


def kill_after(argv: list[str], delay: float, env: dict[str, str] | None = None) -> int | None:
    """Start argv, SIGKILL it after `delay` seconds (if it still runs); its exit code if it ended."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(delay)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def verified(store: Path) -> None:
    out = berth(store, "image", "verify", check=False)
    assert out["ok"], f"store {store} is corrupt: {out.get('error')}"


# == on this machine: image store faults ==========================================================
@pytest.fixture(scope="module")
def fat_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox plus 24 MiB of incompressible files: extraction takes long enough to be hit."""
    d = tmp_path_factory.mktemp("fat")
    tar = busybox_rootfs(d)
    rnd = random.Random(1)
    with tarfile.open(tar, "a") as tf:
        for i in range(24):
            data = rnd.randbytes(1 << 20)
            info = tarfile.TarInfo(f"data/blob-{i:02d}")
            info.size, info.mtime = len(data), 1_700_000_000
            import io

            tf.addfile(info, io.BytesIO(data))
    return tar


@pytest.fixture(scope="module")
def reference(fat_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A clean import of the fat rootfs: its digest, how long it takes and how much room it needs."""
    store = tmp_path_factory.mktemp("ref") / "data"
    start = time.monotonic()
    out = berth(store, "image", "import", str(fat_rootfs), "-t", "fat:1", "-c", 'CMD ["sh"]')
    took = time.monotonic() - start
    used = sum(f.stat().st_size for f in store.rglob("*") if f.is_file() and not f.is_symlink())
    return {
        "diff_ids": diff_ids(store, "fat:1"),
        "seconds": took,
        "bytes": used,
        "digest": out["data"]["digest"],
    }


def diff_ids(store: Path, ref: str) -> list[str]:
    """What an import must reproduce (the manifest digest also covers the `created` time)."""
    return [layer["diff_id"] for layer in berth(store, "image", "inspect", ref)["data"]["layers"]]


@ROOT
@both_speeds
def test_kill_during_import_and_extraction_converges(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    rng: random.Random,
    fat_rootfs: Path,
    reference: dict[str, Any],
    tmp_path: Path,
    speed: str,
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    store = tmp_path / "data"
    env = {**os.environ, "BERTH_DATA_DIR": str(store)}
    for _ in range(iterations(request, 3, 15)):
        delay = rng.uniform(0.0, reference["seconds"] * 1.1)
        kill_after([BERTH, "image", "import", str(fat_rootfs), "-t", "fat:1", "-c", 'CMD ["sh"]'], delay, env)
        rec.faults(1, "kill -9 during image import/extraction")
        verified(store)
    berth(store, "image", "import", str(fat_rootfs), "-t", "fat:1", "-c", 'CMD ["sh"]')
    assert diff_ids(store, "fat:1") == reference["diff_ids"]
    verified(store)
    assert not list((store / "images" / "tmp").glob("*")), "debris left in the store's tmp"


@ROOT
def test_a_full_disk_during_extraction_is_an_error_and_the_store_recovers(
    pytestconfig: pytest.Config,
    rng: random.Random,
    fat_rootfs: Path,
    reference: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A small tmpfs as the data dir (in a private mount namespace: the mount dies with it)."""
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    fractions = [rng.uniform(0.3, 0.95) for _ in range(3)]
    data = tmp_path / "tiny"
    data.mkdir()
    steps = []
    for frac in fractions:
        size = int(reference["bytes"] * frac) // 4096 * 4096
        steps.append(
            f"mount -o remount,size={size} {data}; "
            f"{BERTH} --json image import {fat_rootfs} -t fat:1 -c 'CMD [\"sh\"]' > {tmp_path}/full.json; "
            f"echo full-import=$?; {BERTH} --json image verify > /dev/null; echo full-verify=$?"
        )
    script = (
        f"set -u; mount -t tmpfs -o size=1m tmpfs {data}; export BERTH_DATA_DIR={data}; "
        + "; ".join(steps)
        + f"; mount -o remount,size={reference['bytes'] * 3} {data}; "
        f"{BERTH} --json image import {fat_rootfs} -t fat:1 -c 'CMD [\"sh\"]' > {tmp_path}/ok.json; "
        "echo import=$?; "
        f"{BERTH} --json image verify >/dev/null; echo verify=$?; ls -A {data}/images/tmp | wc -l"
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True, text=True
    )
    rec.faults(len(fractions), "full disk during import/extraction")
    lines = proc.stdout.split()
    assert "full-import=0" not in lines[:1], f"an import into {fractions[0]:.0%} of the room it needs passed"
    assert all(v == "full-verify=0" for v in lines if v.startswith("full-verify")), (lines, proc.stderr)
    full = json.loads((tmp_path / "full.json").read_text() or "{}")
    if not full.get("ok"):
        assert "space" in full["error"]["message"], full["error"]
    assert "import=0" in lines and "verify=0" in lines, (lines, proc.stderr)
    assert json.loads((tmp_path / "ok.json").read_text())["ok"]
    assert lines[-1] == "0", "debris left in the store's tmp"


@ROOT
def test_racing_imports_of_one_image_keep_the_store_consistent(
    pytestconfig: pytest.Config, fat_rootfs: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    store = tmp_path / "data"
    env = {**os.environ, "BERTH_DATA_DIR": str(store)}
    argv = [BERTH, "--json", "image", "import", str(fat_rootfs), "-t", "fat:1", "-c", 'CMD ["sh"]']
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [json.loads(p.communicate()[0]) for p in procs]
    rec.faults(len(procs), "concurrent berth processes on one image")
    assert all(o["ok"] or o["error"]["kind"] == "conflict" for o in outs), outs
    assert any(o["ok"] for o in outs)
    verified(store)
    images = berth(store, "image", "ls")["data"]["images"]
    tagged = [i for i in images if any(t.endswith("/fat:1") for t in i.get("tags", []))]
    assert len(tagged) == 1, images
    assert diff_ids(store, "fat:1") == reference["diff_ids"]


@pytest.fixture(scope="module")
def registry_image(fat_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from registry import start_registry

    reg = start_registry()
    try:
        store = tmp_path_factory.mktemp("push") / "data"
        out = berth(store, "image", "import", str(fat_rootfs), "-t", "fat:1", "-c", 'CMD ["sh"]')
        ref = f"{reg.host}/faults/fat:1"
        berth(store, "image", "push", "fat:1", ref, "--insecure")
        yield ref, out["data"]["digest"]
    finally:
        reg.stop()


@ROOT
@pytest.mark.registry
@both_speeds
def test_kill_during_pull_converges(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    rng: random.Random,
    registry_image: tuple[str, str],
    tmp_path: Path,
    speed: str,
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    ref, digest = registry_image
    probe = tmp_path / "probe"
    start = time.monotonic()
    berth(probe, "image", "pull", ref, "--insecure")
    took = time.monotonic() - start
    store = tmp_path / "data"
    env = {**os.environ, "BERTH_DATA_DIR": str(store)}
    for _ in range(iterations(request, 3, 15)):
        kill_after([BERTH, "image", "pull", ref, "--insecure"], rng.uniform(0.0, took * 1.1), env)
        rec.faults(1, "kill -9 during image pull")
        verified(store)
    assert berth(store, "image", "pull", ref, "--insecure")["data"]["digest"] == digest
    verified(store)
    assert not list((store / "images" / "tmp").glob("*"))


# == on a lab host: containers, builds, systemd ===================================================
# `sleep` as PID 1 ignores SIGTERM: a short stop timeout keeps every `rm -f` quick.
QUICK = f"--stop-timeout 1 --rootfs {ROOTFS}"


class Host:
    def __init__(self, lab: Lab, name: str) -> None:
        self.lab, self.name = lab, name

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self.name, ["sh", "-c", script], check=check, timeout=timeout)

    def berth(self, *args: str, check: bool = True) -> dict[str, Any]:
        return self.lab.berth(self.name, *args, check=check)

    def assert_gone(self, name: str) -> None:
        """No unit, record, run dir or mount of container `name` is left."""
        out = self.sh(
            f"systemctl list-units --all --plain --no-legend 'berth-{name}.service' | wc -l; "
            f"ls -d /var/lib/berth/containers/{name} /run/berth/containers/{name} 2>/dev/null | wc -l; "
            f"grep -c '/containers/{name}/' /proc/self/mountinfo || true; "
            f"ls /var/lib/berth/images/uses | grep -c 'container-{name}.json' || true"
        ).stdout.split()
        assert out == ["0", "0", "0", "0"], f"{name}: units, dirs, mounts, uses left: {out}"


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[Host]:
    name = lab.hosts[1] if len(lab.hosts) > 1 else lab.hosts[0]
    build_rootfs(lab, name)
    h = Host(lab, name)
    h.sh(
        f"mkdir -p /var/lib/berth/faults && tar -C {ROOTFS} -cf /var/lib/berth/faults/base.tar . && "
        "berth image import -t flt-base /var/lib/berth/faults/base.tar -c 'CMD [\"sh\"]' >/dev/null"
    )
    try:
        yield h
    finally:
        h.sh(
            "for n in $(ls /var/lib/berth/containers | grep -E '^(flt-|build-)'); do "
            "berth rm -f $n >/dev/null; done; "
            "rm -rf /var/lib/berth/faults; berth image prune --all >/dev/null; true",
            check=False,
        )


@pytest.mark.lab
@both_speeds
def test_kill_during_run_detached_then_ps_rm_and_rerun_work(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config, rng: random.Random, host: Host, speed: str
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    for i in range(iterations(request, 2, 12)):
        name = f"flt-run-{speed}-{i}"
        delay = rng.uniform(0.0, 1.5)
        host.sh(
            f"berth run -d --name {name} {QUICK} sleep 600 >/dev/null 2>&1 & p=$!; "
            f"sleep {delay:.3f}; kill -9 $p 2>/dev/null; wait $p; true"
        )
        rec.faults(1, "kill -9 during berth run -d")
        listed = host.berth("ps", "-a")  # must not crash, whatever state the kill left
        if any(c["name"] == name for c in listed["data"]):
            host.berth("rm", "-f", name)
        host.assert_gone(name)
        host.berth("run", "-d", "--name", name, "--stop-timeout", "1", "--rootfs", ROOTFS, "sleep", "600")
        assert host.berth("inspect", name)["data"][0]["status"] == "running"
        host.berth("rm", "-f", name)
        host.assert_gone(name)


@pytest.mark.lab
@both_speeds
def test_kill_during_run_of_an_image_keeps_the_store_verified(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config, rng: random.Random, host: Host, speed: str
) -> None:
    """A start from an image registers a use of it in the store: a kill must not corrupt that."""
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    for i in range(iterations(request, 1, 10)):
        name = f"flt-img-{speed}-{i}"
        host.sh(
            f"berth run -d --name {name} --stop-timeout 1 flt-base sleep 600 >/dev/null 2>&1 & p=$!; "
            f"sleep {rng.uniform(0.0, 1.5):.3f}; kill -9 $p 2>/dev/null; wait $p; true"
        )
        rec.faults(1, "kill -9 during berth run -d (image)")
        host.berth("image", "verify")
        if any(c["name"] == name for c in host.berth("ps", "-a")["data"]):
            host.berth("rm", "-f", name)
        host.assert_gone(name)
        host.berth("run", "-d", "--name", name, "--stop-timeout", "1", "flt-base", "sleep", "600")
        host.berth("rm", "-f", name)
        host.assert_gone(name)
        host.berth("image", "verify")


@pytest.mark.lab
def test_a_dbus_disconnect_while_waiting_for_the_start_job_is_reconciled(
    pytestconfig: pytest.Config, host: Host
) -> None:
    """berth dies while StartTransientUnit's job runs (JobRemoved not yet seen): the unit exists.

    The image's /etc/passwd is a FIFO, so the shim blocks before exec and the start job stays
    running: berth is killed while it waits for the job, deterministically.
    """
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    host.sh(
        f"set -e; R=/var/lib/berth/faults/fifo; rm -rf $R; cp -a {ROOTFS} $R; rm $R/etc/passwd; "
        "mkfifo $R/etc/passwd; tar -C $R -cf $R.tar .; rm -rf $R; "
        "berth image import --format rootfs -t flt-fifo $R.tar -c 'CMD [\"sh\"]' >/dev/null"
    )
    name = "flt-dbus"
    out = host.sh(
        f"berth run -d --name {name} --stop-timeout 1 flt-fifo sleep 600 >/dev/null 2>&1 & p=$!; "
        # up to 30 s: on a loaded machine the CLI may take seconds to reach StartTransientUnit
        f'for i in $(seq 600); do [ "$(systemctl is-active berth-{name}.service)" = activating ] && break; '
        "sleep 0.05; done; "
        f"systemctl is-active berth-{name}.service; kill -9 $p; wait $p; true"
    ).stdout.split()
    rec.faults(1, "D-Bus disconnect during StartTransientUnit")
    assert out[0] == "activating", out  # the kill landed while the job was running
    listed = {c["name"]: c for c in host.berth("ps", "-a")["data"]}
    assert name in listed, listed
    host.berth("rm", "-f", name)
    host.assert_gone(name)
    host.berth("run", "-d", "--name", name, "--stop-timeout", "1", "--rootfs", ROOTFS, "sleep", "600")
    host.berth("rm", "-f", name)
    host.assert_gone(name)
    host.berth("image", "rm", "flt-fifo")
    host.berth("image", "verify")


@pytest.mark.lab
def test_daemon_reloads_during_starts_and_removals(pytestconfig: pytest.Config, host: Host) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    script = (
        "touch /run/flt-reload; "
        "( i=0; while [ -e /run/flt-reload ]; do systemctl daemon-reload; i=$((i+1)); sleep 0.2; done; "
        "echo $i > /run/flt-reloads ) & "
        "sleep 0.2; fails=0; "
        "for n in 0 1 2; do "
        f"berth run -d --name flt-reload-$n {QUICK} sleep 600 >/dev/null || fails=$((fails+1)); "
        '[ "$(berth --json inspect flt-reload-$n | grep -c running)" -ge 1 ] || fails=$((fails+1)); '
        "berth rm -f flt-reload-$n > /dev/null || fails=$((fails+1)); done; "
        "rm /run/flt-reload; wait; echo fails=$fails reloads=$(cat /run/flt-reloads)"
    )
    out = host.sh(script, timeout=300).stdout.split()
    reloads = int(out[-1].split("=")[1])
    rec.faults(reloads, "systemctl daemon-reload during starts")
    assert out[-2] == "fails=0", out
    assert reloads > 0
    for n in range(3):
        host.assert_gone(f"flt-reload-{n}")


@pytest.mark.lab
def test_two_processes_racing_for_one_name_exactly_one_wins(pytestconfig: pytest.Config, host: Host) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    for attempt in range(2):
        name = f"flt-race-{attempt}"
        out = host.sh(
            f"for i in 1 2 3; do berth --json run -d --name {name} {QUICK} sleep 600 "
            "> /run/race-$i.json & done; wait; "
            "cat /run/race-1.json /run/race-2.json /run/race-3.json; rm -f /run/race-*.json"
        ).stdout
        rec.faults(3, "concurrent berth processes on one container name")
        results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert len(results) == 3, out
        winners = [r for r in results if r["ok"]]
        assert len(winners) == 1, results
        assert all(r["error"]["kind"] == "conflict" for r in results if not r["ok"]), results
        units = host.sh(f"systemctl list-units --plain --no-legend 'berth-{name}.service' | wc -l").stdout
        assert units.strip() == "1"
        host.berth("rm", "-f", name)
        host.assert_gone(name)


BUILD = """\
FROM flt-base
RUN echo one > /one && sleep 0.4
RUN echo two > /two && sleep 0.4
CMD ["cat", "/one", "/two"]
"""


@pytest.mark.lab
@both_speeds
def test_kill_during_build_with_run_steps_converges(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config, rng: random.Random, host: Host, speed: str
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    ctx = f"/var/lib/berth/faults/ctx-{speed}"
    host.lab.run(host.name, ["sh", "-c", f"mkdir -p {ctx} && cat > {ctx}/Containerfile"], input=BUILD)
    for i in range(iterations(request, 2, 10)):
        delay = rng.uniform(0.2, 3.0)
        host.sh(
            f"berth image build --no-cache -t flt-built:{i} {ctx} >/dev/null 2>&1 & p=$!; "
            f"sleep {delay:.3f}; kill -9 $p 2>/dev/null; wait $p; true"
        )
        rec.faults(1, "kill -9 during image build (RUN steps)")
        host.berth("image", "verify")
    built = host.berth("image", "build", "-t", "flt-built:final", ctx)
    assert built["ok"]
    run = host.sh("berth run --rm --name flt-built-check flt-built:final").stdout.split()
    assert run == ["one", "two"]
    host.berth("image", "verify")


@pytest.mark.lab
def test_a_build_killed_during_a_run_step_leaves_no_step_container(
    pytestconfig: pytest.Config, host: Host
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    ctx = "/var/lib/berth/faults/ctx-step"
    host.lab.run(
        host.name,
        ["sh", "-c", f"mkdir -p {ctx} && cat > {ctx}/Containerfile"],
        input="FROM flt-base\nRUN sleep 2\n",
    )
    out = host.sh(
        f"berth image build --no-cache -t flt-step:1 {ctx} >/dev/null 2>&1 & p=$!; "
        "for i in $(seq 200); do "
        "[ -n \"$(systemctl list-units --state=active --plain --no-legend 'berth-build-*')\" ] && break; "
        "sleep 0.05; done; kill -9 $p; wait $p; "
        "systemctl list-units --state=active --plain --no-legend 'berth-build-*' | wc -l"
    ).stdout.split()
    rec.faults(1, "kill -9 during a RUN step")
    assert out[-1] == "1", "the kill did not land during the step"
    host.berth("image", "build", "-t", "flt-step:1", ctx)  # a normal run afterwards
    host.berth("image", "verify")
    time.sleep(2.5)  # the orphaned step has finished by now
    leftovers = host.sh(
        "ls /var/lib/berth/containers | grep '^build-' || true; "
        "systemctl list-units --all --plain --no-legend 'berth-build-*' | awk '{print $1}'; "
        "ls /var/lib/berth/images/uses | grep '^container-build-' || true"
    ).stdout.split()
    assert leftovers == [], f"left behind by the killed build: {leftovers}"


def _kill_build_during_step(host: Host, ctx: str, tag: str) -> None:
    """Start a build, SIGKILL it while its RUN step's unit is active."""
    out = host.sh(
        f"berth image build --no-cache -t {tag} {ctx} >/dev/null 2>&1 & p=$!; "
        "for i in $(seq 200); do "
        "[ -n \"$(systemctl list-units --state=active --plain --no-legend 'berth-build-*')\" ] && break; "
        "sleep 0.05; done; kill -9 $p; wait $p; "
        "systemctl list-units --state=active --plain --no-legend 'berth-build-*' | wc -l"
    ).stdout.split()
    assert out[-1] == "1", "the kill did not land during the step"


@pytest.mark.lab
def test_prune_reaps_a_killed_builds_step_and_leaves_a_live_builds_alone(
    pytestconfig: pytest.Config, host: Host
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("corrupt-store")
    ctx = "/var/lib/berth/faults/ctx-reap"
    host.lab.run(
        host.name,
        ["sh", "-c", f"mkdir -p {ctx} && cat > {ctx}/Containerfile"],
        input="FROM flt-base\nRUN sleep 3 && echo reaped > /r\n",
    )
    _kill_build_during_step(host, ctx, "flt-reap:1")
    rec.faults(1, "kill -9 during a RUN step")
    # check mode names the orphan and leaves it be; a real prune removes it (without any build)
    planned = host.berth("image", "prune", "--check")["actions"]
    orphans = [a["target"] for a in planned if a["action"] == "remove-container"]
    assert len(orphans) == 1 and orphans[0].startswith("build-"), planned
    assert host.sh(f"ls -d /var/lib/berth/containers/{orphans[0]}", check=False).returncode == 0
    pruned = host.berth("image", "prune")["actions"]
    assert [a["target"] for a in pruned if a["action"] == "remove-container"] == orphans
    host.assert_gone(orphans[0])
    # a prune during a live build's step leaves the step alone: the build completes
    out = host.sh(
        f"berth image build --no-cache -t flt-reap:2 {ctx} >/dev/null 2>&1 & p=$!; "
        "for i in $(seq 200); do "
        "[ -n \"$(systemctl list-units --state=active --plain --no-legend 'berth-build-*')\" ] && break; "
        "sleep 0.05; done; berth --json image prune > /var/lib/berth/faults/prune.json; "
        "wait $p; echo build=$?; cat /var/lib/berth/faults/prune.json"
    ).stdout
    assert "build=0" in out, out
    assert "remove-container" not in out, out
    run = host.sh("berth run --rm --name flt-reap-check flt-reap:2 cat /r").stdout.split()
    assert run == ["reaped"]
