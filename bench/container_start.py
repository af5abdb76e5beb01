"""Container start: `berth run` against podman and against the unshare+chroot floor (issue 3).

Both runtimes run inside ONE lab host (`berth lab up --name bench --hosts 1`): Berth needs a
systemd PID 1 and a system bus, and podman 4.3 with runc works in a lab host too, so both sides
see the same kernel, the same systemd, the same disk and the same image content. The timing loop
itself runs inside the host (one `nsenter` for the whole loop, `python bench/container_start.py
inner ...`), so no side pays for `nsenter`; its cost is measured and reported separately.

Image content: Debian's busybox-static tree built by tests/integration/rootfs.py's BUILD script.
Berth uses it as `--rootfs` (one read-only overlay layer); podman gets the same tree through
`podman import` (one layer in its overlay store, under the host's /var/lib/berth, a real file
system). podman runs with runc and `--network none`; the headline peer uses podman's default on
a systemd host (`--cgroup-manager systemd`: a scope per container, like Berth's unit), and the
cgroupfs variant is reported too.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import BERTH, REPO, VENV, berth_json, proc_kib, pyplot, summary

LAB = "bench"
ROOTFS = "/var/lib/berth/bench-rootfs"
IMAGE = "localhost/bench-busybox:latest"
STORE = [
    "--root",
    "/var/lib/berth/bench-podman",
    "--runroot",
    "/run/bench-podman",
    "--storage-driver",
    "overlay",
]
READY_DIR = "/run/bench-ready"
DRIVER_DIR = "/run/bench-driver"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
CONF_MARK = "# Written by berth bench (bench/container_start.py)"
# What podman needs on these machines (docs: shared notes on the test hosts): crun refuses the
# hybrid cgroup layout, and podman's default rlimits exceed the machine's hard limits.
CONF_TEXT = f"""{CONF_MARK}: podman as the benchmark peer on this machine.
# runc (crun refuses hybrid cgroups here), cgroupfs, rlimits within the machine's hard limits.
# Removed or rewritten only by the benchmark; delete this file to make it yours.
[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""
READY_SCRIPT = "echo up > /ready/fifo; exec sleep 100000"


# -- on the machine -----------------------------------------------------------------------------
def ensure_peers() -> dict[str, str]:
    """podman and runc from Debian's packages; a containers.conf that works here (if ours to write)."""
    missing = [p for p in ("podman", "runc") if shutil.which(p) is None]
    if missing:
        print(f"bench: installing Debian packages {' '.join(missing)}", file=sys.stderr)
        policy = Path("/usr/sbin/policy-rc.d")
        created = False
        if not policy.exists():  # packages must not start their services on this machine
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            created = True
        try:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        finally:
            if created:
                policy.unlink()
    if not CONTAINERS_CONF.exists() or CONTAINERS_CONF.read_text().startswith(CONF_MARK):
        CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text(CONF_TEXT)
    else:
        print(f"bench: {CONTAINERS_CONF} is not ours; using it as it is", file=sys.stderr)

    def version(cmd: list[str]) -> str:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        return out.splitlines()[0] if out else "?"

    return {"podman": version(["podman", "--version"]), "runc": version(["runc", "--version"])}


def rootfs_build_script() -> str:
    """tests/integration/rootfs.py's BUILD script, read without importing the test plumbing."""
    tree = ast.parse((REPO / "tests" / "integration" / "rootfs.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "BUILD" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise RuntimeError("BUILD not found in tests/integration/rootfs.py")


def nsenter(pid: int, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    cmd = ["nsenter", "-t", str(pid), "-a", "env", "-i", f"PATH={HOST_PATH}", *argv]
    return subprocess.run(cmd, text=True, **kwargs)


def run(rounds: int = 15, warmup: int = 2, containers: int = 20) -> dict[str, Any]:
    versions = ensure_peers()
    # An installed package has its bytecode compiled; the editable tree is bound read-only into
    # lab hosts, where Python could not cache it and would compile every module at every start.
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "compileall", "-q", str(REPO / "runtime" / "berth")],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    berth_json("lab", "down", "--name", LAB)
    up = berth_json("lab", "up", "--name", LAB, "--hosts", "1")
    try:
        pid = int(up["data"]["hosts"][0]["pid"])
        nsenter(pid, ["sh", "-s", ROOTFS], input=rootfs_build_script(), check=True, capture_output=True)
        ns_samples = []
        for _ in range(warmup + rounds):
            start = time.perf_counter()
            nsenter(pid, ["true"], check=True)
            ns_samples.append(time.perf_counter() - start)
        # The driver is copied into the host's /run: a lab host sees the machine's files through
        # an overlay, which may keep showing an older version of a file replaced since boot.
        here = Path(__file__).resolve().parent
        for name in ("common.py", "container_start.py"):
            nsenter(
                pid,
                ["sh", "-c", f"mkdir -p {DRIVER_DIR} && cat > {DRIVER_DIR}/{name}"],
                input=(here / name).read_text(),
                check=True,
            )
        cfg = {"rounds": rounds, "warmup": warmup, "containers": containers}
        proc = nsenter(
            pid,
            [
                f"VENV={VENV}",
                str(VENV / "bin" / "python"),
                f"{DRIVER_DIR}/container_start.py",
                "inner",
                json.dumps(cfg),
            ],
            capture_output=True,
            check=False,
            timeout=900,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"container_start inner run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        results: dict[str, Any] = json.loads(proc.stdout)
        results["nsenter_seconds"] = summary(ns_samples[warmup:])
        results["versions"] = {**results.get("versions", {}), **versions}
        return results
    finally:
        berth_json("lab", "down", "--name", LAB)


# -- inside the lab host ------------------------------------------------------------------------
def _podman(cgroups: str) -> list[str]:
    return ["podman", "--cgroup-manager", cgroups, *STORE]


def _quiet(cmd: list[str], check: bool = True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return elapsed


def _alternate(sides: dict[str, Any], rounds: int, warmup: int, measure: Any) -> dict[str, list[Any]]:
    """Every round runs every side once, in an order rotated by one each round; warm-up dropped."""
    names = list(sides)
    samples: dict[str, list[Any]] = {n: [] for n in names}
    for i in range(warmup + rounds):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            value = measure(name, sides[name], i)
            if i >= warmup:
                samples[name].append(value)
    return samples


def _end_to_end(rounds: int, warmup: int) -> dict[str, Any]:
    py = sys.executable
    sides = {
        "berth": [BERTH, "run", "--rm", "--rootfs", ROOTFS, "true"],
        "podman": [*_podman("systemd"), "run", "--rm", "--network", "none", IMAGE, "true"],
        "podman_cgroupfs": [*_podman("cgroupfs"), "run", "--rm", "--network", "none", IMAGE, "true"],
        "unshare_chroot": [
            "unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", "chroot", ROOTFS, "true",
        ],
        "unshare_chroot_mount_proc": [
            "unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", "--mount-proc",
            "chroot", ROOTFS, "true",
        ],
        "systemd_run_wait": ["systemd-run", "--wait", "--quiet", "--collect", "/bin/true"],
        "python_S": [py, "-S", "-c", "pass"],
        "python": [py, "-c", "pass"],
        "berth_version": [BERTH, "version"],
    }  # fmt: skip
    # Before/after of the speed-up found by profiling (issue 9): the same `berth run` with the
    # schema fast path switched off, so that every spec is validated by importing jsonschema.
    if importlib.util.find_spec("berth.containers.fastschema") is not None:
        sides["berth_jsonschema"] = [
            py,
            "-c",
            "import sys; import berth.containers.fastschema as f; f.surely_valid = lambda s, d: False; "
            "from berth.cli import main; "
            f"sys.argv = ['berth', 'run', '--rm', '--rootfs', {ROOTFS!r}, 'true']; sys.exit(main())",
        ]
    # Before/after of the native D-Bus client (issues 3 and 9): the same `berth run` talking to
    # systemd through asyncio and dbus-fast, and polling for the exit, as before (`env` adds ~1 ms).
    sides["berth_dbus_fast"] = ["env", "BERTH_DBUS_BACKEND=dbus-fast", *sides["berth"]]
    samples = _alternate(sides, rounds, warmup, lambda name, cmd, i: _quiet(cmd))
    return {name: summary(s) for name, s in samples.items()}


def _detached(rounds: int, warmup: int) -> dict[str, Any]:
    """From the command's start until the container's process has run its first command.

    "Running" is the same signal for both: the container's command is busybox `sh -c 'echo up >
    /ready/fifo; exec sleep 100000'`, with the FIFO bind-mounted from the host; the driver holds the
    FIFO open and blocks in select() until the line arrives. The time the command itself takes to
    return is recorded too. Containers are removed after each round, untimed.
    """
    os.makedirs(READY_DIR, exist_ok=True)
    fifo = os.path.join(READY_DIR, "fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo, 0o666)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    bind = f"{READY_DIR}:/ready"
    sides = {
        "berth": lambda n: [
            BERTH, "run", "-d", "--name", n, "--rootfs", ROOTFS, "-v", bind, "sh", "-c", READY_SCRIPT,
        ],
        "podman": lambda n: [
            *_podman("systemd"), "run", "-d", "--name", n, "--network", "none", "-v", bind, IMAGE,
            "sh", "-c", READY_SCRIPT,
        ],
        "podman_cgroupfs": lambda n: [
            *_podman("cgroupfs"), "run", "-d", "--name", n, "--network", "none", "-v", bind, IMAGE,
            "sh", "-c", READY_SCRIPT,
        ],
    }  # fmt: skip
    removers = {
        "berth": lambda n: [BERTH, "rm", "-f", n],  # after `berth kill`: see _kill_first
        "podman": lambda n: [*_podman("systemd"), "rm", "-f", "-t", "0", n],
        "podman_cgroupfs": lambda n: [*_podman("cgroupfs"), "rm", "-f", "-t", "0", n],
    }

    def measure(side: str, make: Any, i: int) -> tuple[float, float]:
        name = f"bench-{side.replace('_', '-')}-{i}"
        _drain(fd)
        start = time.perf_counter()
        proc = subprocess.Popen(
            make(name), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        readable, _, _ = select.select([fd], [], [], 60)
        ready = time.perf_counter() - start
        _, err = proc.communicate(timeout=60)
        returned = time.perf_counter() - start
        if not readable or proc.returncode != 0:
            raise RuntimeError(f"{side} detached start failed ({proc.returncode}): {err.decode()[-2000:]}")
        _drain(fd)
        _kill_first(side, [name])
        _quiet(removers[side](name))
        return ready, returned

    try:
        samples = _alternate(sides, rounds, warmup, measure)
    finally:
        os.close(fd)
    return {
        name: {"ready": summary([s[0] for s in v]), "returned": summary([s[1] for s in v])}
        for name, v in samples.items()
    }


def _kill_first(side: str, names: list[str]) -> None:
    """Berth's `rm -f` stops gracefully (stop signal, then SIGKILL after the stop timeout, 10 s),
    and `sleep` as PID 1 of its namespace ignores SIGTERM: KILL first, as podman's `rm -f -t 0`."""
    if side == "berth":
        _quiet([BERTH, "kill", *names])


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _memcg(path: str = "/sys/fs/cgroup/memory") -> dict[str, int]:
    """The lab host's own memory cgroup (the root of its cgroup namespace): usage and RSS, bytes."""
    base = Path(path)
    if (base / "memory.usage_in_bytes").exists():
        stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
        return {
            "usage": int((base / "memory.usage_in_bytes").read_text()),
            "rss": int(stat["total_rss"]),
            "cache": int(stat["total_cache"]),
        }
    v2 = Path("/sys/fs/cgroup")
    stat = dict(line.split() for line in (v2 / "memory.stat").read_text().splitlines())
    return {
        "usage": int((v2 / "memory.current").read_text()),
        "rss": int(stat["anon"]),
        "cache": int(stat["file"]),
    }


def _procs() -> list[tuple[int, str, list[str]]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
            with open(f"/proc/{entry}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        out.append((int(entry), comm, argv))
    return out


def _anon(pid: int) -> int:
    """A process's private memory: its anonymous RSS (file pages such as busybox's are shared)."""
    return proc_kib(pid, "status", "RssAnon")[0]


def _rss_pss(pid: int) -> tuple[int, int]:
    """RSS and PSS of a process in bytes (smaps_rollup)."""
    rss, pss = proc_kib(pid, "smaps_rollup", "Rss", "Pss")
    return rss, pss


def _memory(containers: int, reps: int = 2) -> dict[str, Any]:
    """What `containers` running containers cost the host, and how much of it is not theirs.

    For each side: the lab host's memory cgroup (all of it: systemd, journald, podman's conmon,
    page cache of state and logs) before and after starting the containers (`sleep`, detached),
    divided by the number of containers; minus the containers' own processes (their anonymous
    RSS: the file pages of busybox are shared and charged once). The helper processes that stay
    resident per container (podman's conmon; none for Berth) are counted by RSS, PSS and
    anonymous RSS.
    """
    sides = {
        "berth": (
            lambda n, tag: [BERTH, "run", "-d", "--name", n, "--rootfs", ROOTFS, "sleep", tag],
            lambda names: [BERTH, "rm", "-f", *names],
        ),
        "podman": (
            lambda n, tag: [
                *_podman("systemd"),
                "run",
                "-d",
                "--name",
                n,
                "--network",
                "none",
                IMAGE,
                "sleep",
                tag,
            ],
            lambda names: [*_podman("systemd"), "rm", "-f", "-t", "0", *names],
        ),
    }
    per_side: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    for rep in range(reps):
        for side, (start_cmd, rm_cmd) in sides.items():
            tag = f"{777000 + rep * 10 + list(sides).index(side)}"
            names = [f"mem-{side}-{rep}-{i}" for i in range(containers)]
            time.sleep(1.0)
            before = _memcg()
            for n in names:
                _quiet(start_cmd(n, tag))
            time.sleep(2.0)
            after = _memcg()
            procs = _procs()
            own = [p for p, comm, argv in procs if argv[-1:] == [tag] and comm == "sleep"]
            helpers = [
                p for p, comm, argv in procs if comm == "conmon" and any(n in " ".join(argv) for n in names)
            ]
            own_rss = sum(_anon(p) for p in own)
            helper = [_rss_pss(p) for p in helpers]
            helper_anon = sum(_anon(p) for p in helpers)
            _kill_first(side, names)
            _quiet(rm_cmd(names))
            if len(own) != containers:
                raise RuntimeError(f"{side}: found {len(own)} container processes, expected {containers}")
            per_side[side].append(
                {
                    "host_usage_per_container": (after["usage"] - before["usage"]) / containers,
                    "host_rss_per_container": (after["rss"] - before["rss"]) / containers,
                    "container_rss_per_container": own_rss / containers,
                    "helper_processes_per_container": len(helpers) / containers,
                    "helper_rss_per_container": sum(r for r, _ in helper) / containers,
                    "helper_pss_per_container": sum(p for _, p in helper) / containers,
                    "helper_anon_per_container": helper_anon / containers,
                }
            )
    out: dict[str, Any] = {"containers": containers, "repetitions": reps}
    for side, reps_data in per_side.items():
        keys = reps_data[0].keys()
        mib = {k: statistics.median(r[k] for r in reps_data) / 2**20 for k in keys if "processes" not in k}
        mib["overhead_per_container"] = mib["host_usage_per_container"] - mib["container_rss_per_container"]
        out[side] = {k: round(v, 3) for k, v in mib.items()}
        out[side]["helper_processes_per_container"] = reps_data[0]["helper_processes_per_container"]
    return out


def inner(cfg: dict[str, Any]) -> dict[str, Any]:
    rounds, warmup = int(cfg["rounds"]), int(cfg["warmup"])
    tar = subprocess.Popen(["tar", "-C", ROOTFS, "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        [*_podman("systemd"), "import", "-q", "-", IMAGE],
        stdin=tar.stdout,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tar.wait()
    phases: dict[str, float] = {}

    def phase(name: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            phases[name] = round(time.perf_counter() - start, 1)

    try:
        results = {
            "end_to_end_seconds": phase("end_to_end", _end_to_end, rounds, warmup),
            "detached_seconds": phase("detached", _detached, rounds, warmup),
            "memory_mib": phase("memory", _memory, int(cfg["containers"])),
            "phase_seconds": phases,
        }
    finally:
        subprocess.run([*_podman("systemd"), "rm", "-a", "-f", "-t", "0"], capture_output=True, check=False)
    systemd = subprocess.run(["systemctl", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    results["versions"] = {
        "systemd": systemd,
        "cgroups": "v2" if not Path("/sys/fs/cgroup/memory").is_dir() else "v1 (hybrid)",
    }
    return results


# -- report -------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


DETACHED_LABELS = {
    "berth": "`berth run -d --rootfs R -v ...`",
    "podman": "`podman run -d --network none -v ... IMG` (systemd cgroups)",
    "podman_cgroupfs": "same, cgroupfs",
}


def markdown(r: dict[str, Any]) -> str:
    e2e, det, mem = r["end_to_end_seconds"], r["detached_seconds"], r["memory_mib"]
    peer = e2e["podman"]["median"]
    labels = {
        "berth": "`berth run --rm --rootfs R true`",
        "podman": "`podman run --rm --network none IMG true` (systemd cgroups, the default on systemd hosts)",
        "podman_cgroupfs": "same, `--cgroup-manager cgroupfs`",
        "unshare_chroot": "floor: `unshare --pid --fork --mount --uts --ipc --net chroot R true`",
        "unshare_chroot_mount_proc": "floor, with `--mount-proc`",
        "systemd_run_wait": "reference: `systemd-run --wait --quiet --collect /bin/true`",
        "python_S": "reference: `python -S -c pass` (the venv's Python)",
        "python": "reference: `python -c pass`",
        "berth_version": "reference: `berth version` (Python start, CLI imports, argparse)",
        "berth_jsonschema": "before: `berth run --rm` validating its spec with jsonschema "
        "(the schema fast path off)",
        "berth_dbus_fast": "before: `berth run --rm` over asyncio and dbus-fast, polling for the exit "
        "(`BERTH_DBUS_BACKEND=dbus-fast`)",
    }
    rows = [
        f"Measured inside one lab host ({r['versions'].get('systemd', 'systemd ?')}, cgroups "
        f"{r['versions'].get('cgroups', '?')}); {r['versions'].get('podman', '')} with "
        f"{r['versions'].get('runc', 'runc')}. Both sides alternate in every round; "
        f"{e2e['berth']['n']} rounds after a warm-up. Timed from inside the host, so no side pays for "
        f"`nsenter` (reaching the host costs {r['nsenter_seconds']['median'] * 1000:.1f} ms median, "
        "not included anywhere below).",
        "",
        "### `run --rm ... true`, end to end",
        "",
        "| command | median s | min s | max s | ratio to podman |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in labels.items():
        if key not in e2e:
            continue
        s = e2e[key]
        rows.append(
            f"| {label} | {s['median']:.4f} | {s['min']:.4f} | {s['max']:.4f} | {_ratio(s['median'], peer)} |"
        )
    rows += [
        "",
        f"Berth / podman: **{_ratio(e2e['berth']['median'], peer)}** (target: at most 0.50x); "
        f"Berth / cgroupfs podman: {_ratio(e2e['berth']['median'], e2e['podman_cgroupfs']['median'])}; "
        f"Berth / floor: {_ratio(e2e['berth']['median'], e2e['unshare_chroot']['median'])}."
        + (
            f" Before the schema fast path, in the same run: Berth / podman "
            f"{_ratio(e2e['berth_jsonschema']['median'], peer)}."
            if "berth_jsonschema" in e2e
            else ""
        )
        + (
            f" Over asyncio and dbus-fast instead of Berth's own D-Bus client, in the same run: "
            f"Berth / podman {_ratio(e2e['berth_dbus_fast']['median'], peer)}."
            if "berth_dbus_fast" in e2e
            else ""
        ),
        "",
        "### Detached start: from the command to the container's process running",
        "",
        "\"Running\" is the same for both: the container's command (busybox `sh -c 'echo up > "
        "/ready/fifo; exec sleep 100000'`) writes a line into a FIFO bind-mounted from the host, "
        "and the driver, blocked in `select()` on it, takes the time when the line arrives. "
        '"Returned" is when `run -d` exits.',
        "",
        "| runtime | running: median (min-max) s | command returned: median (min-max) s | ratio (running) |",
        "|---|---:|---:|---:|",
    ]
    for key in ("berth", "podman", "podman_cgroupfs"):
        a, b = det[key]["ready"], det[key]["returned"]
        rows.append(
            f"| {DETACHED_LABELS[key]} "
            f"| {a['median']:.4f} ({a['min']:.4f}-{a['max']:.4f}) "
            f"| {b['median']:.4f} ({b['min']:.4f}-{b['max']:.4f}) "
            f"| {_ratio(a['median'], det['podman']['ready']['median'])} |"
        )
    b, p = mem["berth"], mem["podman"]
    rows += [
        "",
        f"### Memory: what a running container costs the host ({mem['containers']} `sleep` containers, "
        f"median of {mem['repetitions']})",
        "",
        "Host = the lab host's whole memory cgroup (systemd, journald, helpers, kernel memory and page "
        "cache charged to it), before and after starting the containers, per container. "
        "Berth keeps no process per container: systemd is the container's parent.",
        "",
        "| MiB per container | berth | podman |",
        "|---|---:|---:|",
        f"| host memory (cgroup usage) delta | {b['host_usage_per_container']:.2f} "
        f"| {p['host_usage_per_container']:.2f} |",
        f"| host RSS delta | {b['host_rss_per_container']:.2f} | {p['host_rss_per_container']:.2f} |",
        f"| the container's own process (anonymous RSS) | {b['container_rss_per_container']:.2f} "
        f"| {p['container_rss_per_container']:.2f} |",
        "| **overhead** (host delta minus the container's own memory) "
        f"| **{b['overhead_per_container']:.2f}** | **{p['overhead_per_container']:.2f}** |",
        f"| resident helper processes | {b['helper_processes_per_container']:g} | "
        f"{p['helper_processes_per_container']:g} (conmon) |",
        f"| helper RSS / PSS / anonymous RSS | {b['helper_rss_per_container']:.2f} / "
        f"{b['helper_pss_per_container']:.2f} / {b['helper_anon_per_container']:.2f} "
        f"| {p['helper_rss_per_container']:.2f} / {p['helper_pss_per_container']:.2f} / "
        f"{p['helper_anon_per_container']:.2f} |",
    ]
    return "\n".join(rows)


def charts(r: dict[str, Any], out_dir: Path) -> list[Path]:
    """PNG charts of the comparisons (matplotlib, if installed in the venv)."""
    plt = pyplot()
    if plt is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    e2e, det, mem = r["end_to_end_seconds"], r["detached_seconds"], r["memory_mib"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    keys = [
        "berth",
        "podman",
        "podman_cgroupfs",
        "systemd_run_wait",
        "unshare_chroot_mount_proc",
        "unshare_chroot",
    ]
    names = [
        "berth",
        "podman",
        "podman\ncgroupfs",
        "systemd-run\n--wait",
        "floor\n+proc",
        "floor",
    ]
    med = [e2e[k]["median"] * 1000 for k in keys]
    err = [
        [m - e2e[k]["min"] * 1000 for k, m in zip(keys, med, strict=True)],
        [e2e[k]["max"] * 1000 - m for k, m in zip(keys, med, strict=True)],
    ]
    axes[0].bar(names, med, yerr=err, capsize=3, color=["C0", "C1", "C1", "C2", "C7", "C7"])
    axes[0].axhline(e2e["podman"]["median"] * 500, ls="--", color="C3", lw=1, label="target: 0.5x podman")
    axes[0].set_title("run --rm ... true, end to end")
    axes[0].set_ylabel("ms (median, min-max)")
    axes[0].legend(fontsize=8)
    axes[0].tick_params(axis="x", labelsize=7)
    dk = ["berth", "podman", "podman_cgroupfs"]
    x = range(len(dk))
    axes[1].bar(
        [i - 0.2 for i in x], [det[k]["ready"]["median"] * 1000 for k in dk], 0.4, label="process running"
    )
    axes[1].bar(
        [i + 0.2 for i in x], [det[k]["returned"]["median"] * 1000 for k in dk], 0.4, label="command returned"
    )
    axes[1].set_xticks(list(x), ["berth", "podman", "podman\ncgroupfs"])
    axes[1].set_title("run -d: until the container's process runs")
    axes[1].set_ylabel("ms (median)")
    axes[1].legend(fontsize=8)
    mk = [
        ("container_rss_per_container", "container's own (anon RSS)"),
        ("overhead_per_container", "overhead"),
    ]
    bottom = [0.0, 0.0]
    for key, label in mk:
        vals = [max(mem[s][key], 0.0) for s in ("berth", "podman")]
        axes[2].bar(["berth", "podman"], vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    axes[2].set_title(f"host memory per running container ({mem['containers']})")
    axes[2].set_ylabel("MiB")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "container_start.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "inner":
        print(json.dumps(inner(json.loads(sys.argv[2]))))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        print(json.dumps(run(), indent=2))
