"""Containers on real systemd hosts: isolation, cgroup limits, lifecycle, confinement, cleanup."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from labkit import Lab
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab


class Box:
    """Runs berth container commands on one lab host and removes what a test created."""

    def __init__(self, lab: Lab, host: str) -> None:
        self.lab, self.host, self.names = lab, host, set[str]()

    def sh(self, *argv: str, check: bool = True) -> str:
        return self.lab.run(self.host, list(argv), check=check).stdout

    def run(self, name: str, *cmd: str, opts: tuple[str, ...] = (), check: bool = True):  # type: ignore[no-untyped-def]
        self.names.add(name)
        return self.lab.run(
            self.host, ["berth", "run", "--name", name, "--rootfs", ROOTFS, *opts, *cmd], check=check
        )

    def detach(self, name: str, *cmd: str, opts: tuple[str, ...] = ()) -> dict:  # type: ignore[type-arg]
        self.names.add(name)
        return self.lab.berth(self.host, "run", "-d", "--name", name, "--rootfs", ROOTFS, *opts, *cmd)

    def inspect(self, name: str) -> dict:  # type: ignore[type-arg]
        return self.lab.berth(self.host, "inspect", name)["data"][0]  # type: ignore[no-any-return]

    def cgroup_file(self, name: str, controller: str, knob: str) -> str:
        cgroup = self.inspect(name)["control_group"]
        return self.sh("cat", f"/sys/fs/cgroup/{controller}{cgroup}/{knob}")

    def cleanup(self) -> None:
        for name in self.names:
            self.lab.run(self.host, ["berth", "rm", "-f", name], check=False)


@pytest.fixture(scope="module")
def rootfs(lab: Lab) -> str:
    for host in lab.hosts[:2]:
        build_rootfs(lab, host)
    return ROOTFS


@pytest.fixture
def box(lab: Lab, rootfs: str) -> Iterator[Box]:
    b = Box(lab, lab.hosts[0])
    try:
        yield b
    finally:
        b.cleanup()


def wait_for(probe, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_foreground_run_writes_to_the_callers_stdio(box: Box) -> None:
    out = box.lab.run(
        box.host,
        [
            "berth",
            "run",
            "--rm",
            "--name",
            "fg",
            "--rootfs",
            ROOTFS,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        check=False,
    )
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")


def test_the_command_is_pid_1_with_the_containers_hostname(box: Box) -> None:
    out = box.run("pid1", "sh", "-c", "echo $$; hostname; cat /etc/hostname", opts=("--rm",)).stdout.split()
    assert out == ["1", "pid1", "pid1"]
    assert box.sh("hostname").strip() == box.host  # the host's own name is untouched


def test_writes_land_in_the_upper_dir_never_in_the_layer(box: Box) -> None:
    box.detach("writer", "sh", "-c", "echo data > /written; sleep 600")
    upper = "/var/lib/berth/containers/writer/upper"
    wait_for(
        lambda: (
            box.sh("test", "-e", f"{upper}/written", check=False) == ""
            and box.lab.run(box.host, ["test", "-e", f"{upper}/written"], check=False).returncode == 0
        )
    )
    assert box.sh("cat", f"{upper}/written").strip() == "data"
    assert box.lab.run(box.host, ["test", "-e", f"{ROOTFS}/written"], check=False).returncode == 1


def test_two_containers_on_one_layer_do_not_see_each_others_writes(box: Box) -> None:
    box.detach("iso-a", "sh", "-c", "echo a > /mine; sleep 600")
    out = box.run("iso-b", "sh", "-c", "sleep 0.3; ls /mine 2>&1; ps | wc -l", opts=("--rm",), check=False)
    assert "No such file" in out.stdout
    # b sees only its own processes: the header, sh, ps and wc
    assert int(out.stdout.split()[-1]) <= 4


def test_exit_codes_and_signals_propagate(box: Box) -> None:
    assert box.run("exit7", "sh", "-c", "exit 7", opts=("--rm",), check=False).returncode == 7
    box.detach("killed", "sleep", "600")
    box.lab.berth(box.host, "kill", "-s", "KILL", "killed")
    exit_info = wait_for(lambda: box.inspect("killed")["exit"])
    assert exit_info["reason"] == "signal" and exit_info["signal"] == "KILL"
    box.detach("termed", "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done")
    box.lab.berth(box.host, "stop", "termed")
    assert box.inspect("termed")["exit"]["exit_code"] == 42  # the stop signal reached PID 1


def test_a_process_over_memory_max_is_oom_killed_and_inspect_says_so(box: Box) -> None:
    proc = box.run(
        "hog", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1", opts=("-m", "32M"), check=False
    )
    assert proc.returncode == 137
    assert box.inspect("hog")["exit"]["reason"] == "oom-killed"


def test_tasks_max_stops_a_fork_bomb(box: Box) -> None:
    # The bomb runs in a child shell, which dies when fork fails; PID 1 stays to be measured.
    box.detach(
        "forks",
        "sh",
        "-c",
        "sh -c 'for i in $(seq 100); do sleep 600 & done' 2>/dev/null; sleep 600",
        opts=("--pids-limit", "20"),
    )
    assert box.cgroup_file("forks", "pids", "pids.max").strip() == "20"
    # pids.events "max N": N forks were refused at the limit
    wait_for(lambda: int(box.cgroup_file("forks", "pids", "pids.events").split()[-1]) > 0)
    assert int(box.cgroup_file("forks", "pids", "pids.current")) <= 20
    assert box.inspect("forks")["status"] == "running"


def test_cpu_quota_shows_throttling(box: Box) -> None:
    box.detach("busy", "sh", "-c", "while :; do :; done", opts=("--cpu-quota", "20%"))
    assert box.cgroup_file("busy", "cpu", "cpu.cfs_quota_us").strip() == "20000"
    throttled = wait_for(
        lambda: int(
            dict(line.split() for line in box.cgroup_file("busy", "cpu", "cpu.stat").splitlines())[
                "nr_throttled"
            ]
        )
    )
    assert throttled > 0


def test_pinning_shows_in_the_affinity_and_says_how(box: Box) -> None:
    out = box.detach("pinned", "sleep", "600", opts=("--cpuset-cpus", "0"))
    assert any("CPUAffinity" in w for w in out["warnings"])  # this lab has cgroup v1
    pid = box.inspect("pinned")["pid"]
    status = box.sh("cat", f"/proc/{pid}/status")
    assert "Cpus_allowed_list:\t0\n" in status


def test_weights_appear_on_the_cgroup(box: Box) -> None:
    box.detach("weighted", "sleep", "600", opts=("--cpu-weight", "200"))
    # systemd maps CPUWeight to v1 cpu.shares as weight * 1024 / 100
    assert box.cgroup_file("weighted", "cpu", "cpu.shares").strip() == "2048"


def test_logs_arrive_in_the_journal_under_the_containers_name(box: Box) -> None:
    box.detach("talker", "sh", "-c", "echo to-stdout; echo to-stderr >&2")
    wait_for(lambda: box.inspect("talker")["status"] == "exited")
    logs = wait_for(
        lambda: (
            len(box.lab.berth(box.host, "logs", "talker")["data"]) == 2
            and box.lab.berth(box.host, "logs", "talker")["data"]
        )
    )
    assert [entry["message"] for entry in logs] == ["to-stdout", "to-stderr"]
    ids = box.sh("journalctl", "-o", "json", "SYSLOG_IDENTIFIER=talker")
    assert all(json.loads(line)["SYSLOG_IDENTIFIER"] == "talker" for line in ids.splitlines())


def test_confinement_masked_paths_dropped_capabilities_read_only_kernel_files(box: Box) -> None:
    script = (
        "grep CapBnd /proc/self/status; "
        "mount -t tmpfs x /mnt 2>/dev/null; echo mount=$?; "
        "hostname evil 2>/dev/null; echo hostname=$?; "
        "echo 1 2>/dev/null > /proc/sys/vm/overcommit_memory; echo procsys=$?; "
        "insmod /nonexistent.ko 2>/dev/null; echo insmod=$?; "
        "ls /proc/1/fd; "
        "grep -E ' /proc/(sys|sysrq-trigger|irq|bus) ' /proc/self/mountinfo | grep -c ' ro,'; "
        "find /proc/acpi /proc/scsi -mindepth 1 2>/dev/null | wc -l; "
        "ls /dev"
    )
    out = box.run("jail", "sh", "-c", script, opts=("--rm",)).stdout.splitlines()
    assert out[0].split()[1] == "00000000800405fb"  # podman's default bounding set
    assert out[1:5] == ["mount=255", "hostname=1", "procsys=1", "insmod=1"] or all(
        not line.endswith("=0") for line in out[1:5]
    )
    assert out[5:8] == ["0", "1", "2"]  # PID 1 holds stdin, stdout, stderr and nothing else
    assert int(out[8]) >= 3  # /proc/sys, /proc/sysrq-trigger, /proc/bus (and /proc/irq) read-only
    assert out[9] == "0"  # masked directories are empty
    assert sorted(out[10:]) == sorted(
        [
            "full",
            "mqueue",
            "null",
            "ptmx",
            "pts",
            "random",
            "shm",
            "tty",
            "urandom",
            "zero",
            "fd",
            "stdin",
            "stdout",
            "stderr",
        ]
    )
    assert box.sh("hostname").strip() == box.host


def test_privileged_and_cap_add(box: Box) -> None:
    caps = box.run(
        "capadd",
        "grep",
        "CapBnd",
        "/proc/self/status",
        opts=("--rm", "--cap-add", "NET_ADMIN", "--cap-drop", "KILL"),
    )
    assert caps.stdout.split()[1] == f"{0x800405FB - (1 << 5) + (1 << 12):016x}"
    out = box.run(
        "priv", "sh", "-c", "mkdir -p /m; mount -t tmpfs x /m && echo mounted", opts=("--rm", "--privileged")
    )
    assert out.stdout.strip() == "mounted"


def test_user_from_the_images_passwd(box: Box) -> None:
    assert box.run("as-app", "id", opts=("--rm", "-u", "app")).stdout.strip() == (
        "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"
    )
    assert box.run("as-num", "id", "-u", opts=("--rm", "-u", "65534:65534")).stdout.strip() == "65534"
    caps = box.run("as-app-caps", "grep", "CapEff", "/proc/self/status", opts=("--rm", "-u", "app"))
    assert caps.stdout.split()[1] == "0000000000000000"


def test_read_only_root_and_mounts(box: Box) -> None:
    box.sh("sh", "-c", "mkdir -p /var/lib/berth/test-bind && echo host-file > /var/lib/berth/test-bind/f")
    script = (
        "touch /x 2>/dev/null; echo root=$?; cat /ro/f; touch /ro/g 2>/dev/null; echo ro=$?; "
        "touch /rw/g; echo rw=$?; touch /scratch/t; echo tmpfs=$?; echo v > /vol/v"
    )
    out = box.run(
        "mounts",
        "sh",
        "-c",
        script,
        opts=(
            "--rm",
            "--read-only",
            "-v",
            "/var/lib/berth/test-bind:/ro:ro",
            "-v",
            "/var/lib/berth/test-bind:/rw",
            "--tmpfs",
            "/scratch:size=1M",
            "-v",
            "testvol:/vol",
        ),
    )
    assert out.stdout.split() == ["root=1", "host-file", "ro=1", "rw=0", "tmpfs=0"]
    assert box.sh("test", "-e", "/var/lib/berth/test-bind/g", check=False) == ""
    # A named volume outlives its container.
    again = box.run("mounts2", "cat", "/vol/v", opts=("--rm", "-v", "testvol:/vol"))
    assert again.stdout.strip() == "v"
    box.sh("rm", "-rf", "/var/lib/berth/test-bind", "/var/lib/berth/volumes/testvol")


def test_secrets_are_files_under_run_secrets_and_nowhere_else(box: Box) -> None:
    secret = "s3cr3t-value-0451"
    box.sh("sh", "-c", f"umask 077; echo {secret} > /root/db-password")
    box.detach(
        "withsecret", "sh", "-c", "cat /run/secrets/db; sleep 600", opts=("--secret", "db=/root/db-password")
    )
    pid = box.inspect("withsecret")["pid"]
    assert box.sh("cat", f"/proc/{pid}/root/run/secrets/db").strip() == secret
    assert secret not in box.sh("cat", f"/proc/{pid}/environ")
    assert secret not in box.sh("systemctl", "show", "berth-withsecret.service")
    assert box.sh("grep", "-rl", secret, "/var/lib/berth/containers/withsecret", check=False) == ""
    # The container may print it; berth itself never writes it into the journal.
    journal = box.sh("journalctl", "-o", "json", "_SYSTEMD_UNIT=berth-withsecret.service")
    assert sum(secret in line for line in journal.splitlines()) <= 1
    box.sh("rm", "/root/db-password")


def test_restart_policy_restarts_a_crashing_container(box: Box) -> None:
    box.detach("crasher", "sh", "-c", "echo run >> /count; exit 3", opts=("--restart", "on-failure:2"))
    wait_for(lambda: box.inspect("crasher")["status"] == "exited", timeout=20)
    upper = "/var/lib/berth/containers/crasher/upper"
    assert box.sh("cat", f"{upper}/count").split() == ["run", "run", "run"]
    assert box.inspect("crasher")["exit"]["exit_code"] == 3


def test_a_container_that_exits_at_once_keeps_its_exit_status(box: Box) -> None:
    """Twelve containers that exit at their first instruction, started side by side: each one's
    status is its own (7), never the shim's 0, even when a container ends before systemd has
    read which process it is."""
    names = [f"blink{i}" for i in range(12)]
    box.names.update(names)
    starts = " ".join(
        f"berth run -d --name {name} --rootfs {ROOTFS} sh -c 'exit 7' >/dev/null &" for name in names
    )
    box.sh("sh", "-c", f"{starts} wait")
    for name in names:
        wait_for(lambda name=name: box.inspect(name)["status"] == "exited", timeout=20)  # type: ignore[misc]
        assert box.inspect(name)["exit"]["exit_code"] == 7, name


def test_stop_start_and_rm_leave_no_trace(box: Box) -> None:
    box.detach("tidy", "sleep", "600", opts=("--stop-timeout", "1"))
    cgroup = box.inspect("tidy")["control_group"]
    box.lab.berth(box.host, "stop", "tidy")
    assert box.inspect("tidy")["status"] == "exited"
    box.lab.berth(box.host, "start", "tidy")
    assert box.inspect("tidy")["status"] == "running"
    box.lab.berth(box.host, "rm", "-f", "tidy")
    assert box.lab.run(box.host, ["systemctl", "status", "berth-tidy.service"], check=False).returncode == 4
    for ctrl in ("memory", "pids", "cpu", "systemd"):
        assert (
            box.lab.run(box.host, ["test", "-e", f"/sys/fs/cgroup/{ctrl}{cgroup}"], check=False).returncode
            == 1
        )
    assert (
        box.lab.run(box.host, ["test", "-e", "/var/lib/berth/containers/tidy"], check=False).returncode == 1
    )
    assert box.lab.run(box.host, ["test", "-e", "/run/berth/containers/tidy"], check=False).returncode == 1
    assert "containers/tidy" not in box.sh("cat", "/proc/self/mountinfo")


def test_rm_refuses_a_running_container_without_force(box: Box) -> None:
    box.detach("busy-rm", "sleep", "600")
    out = box.lab.berth(box.host, "rm", "busy-rm", check=False)
    assert out["error"]["kind"] == "conflict" and "running" in out["error"]["message"]


@pytest.mark.parametrize("grace", [(), ("-t", "1")], ids=["default", "t1"])
def test_rm_f_kills_a_container_that_ignores_its_stop_signal(box: Box, grace: tuple[str, ...]) -> None:
    """`rm -f` is podman's `rm -f -t 0`: SIGKILL at once, not the stop signal and a long wait.

    The container ignores SIGTERM and has a stop timeout longer than berth's own wait for a stop
    job (120 s): a graceful stop could not finish in time, so being gone is the proof.
    """
    name = f"stubborn-{'t' if grace else 'now'}"
    box.detach(name, "sh", "-c", 'trap "" TERM; sleep 1000', opts=("--stop-timeout", "300"))
    info = box.inspect(name)
    pid, cgroup, unit = info["pid"], info["control_group"], info["unit"]
    out = box.lab.berth(box.host, "rm", "-f", *grace, name)
    stop = {"action": "stop", "target": name, "detail": {"timeout": int(grace[1]) if grace else 0}}
    assert out["actions"] == [stop, {"action": "remove", "target": name}], out["actions"]
    assert box.lab.berth(box.host, "inspect", name, check=False)["error"]["kind"] == "not-found"
    assert box.lab.run(box.host, ["systemctl", "status", unit], check=False).returncode == 4
    assert box.lab.run(box.host, ["test", "-e", f"/proc/{pid}"], check=False).returncode == 1
    for ctrl in ("memory", "pids", "systemd"):
        assert (
            box.lab.run(box.host, ["test", "-e", f"/sys/fs/cgroup/{ctrl}{cgroup}"], check=False).returncode
            == 1
        )
    for path in (f"/var/lib/berth/containers/{name}", f"/run/berth/containers/{name}"):
        assert box.lab.run(box.host, ["test", "-e", path], check=False).returncode == 1
    assert f"containers/{name}" not in box.sh("cat", "/proc/self/mountinfo")
    # Killed by the SIGKILL berth sent, not by systemd giving up on the stop timeout.
    journal = wait_for(
        lambda: (
            (j := box.sh("journalctl", "--no-pager", "-o", "cat", "-u", unit)) and "status=9/KILL" in j and j
        )
    )
    assert "timed out" not in journal, journal
    box.names.discard(name)


BAD_NAMES = ["../x", "a/b", "x;y", "new\nline", "ünï", "x" * 64, "-lead", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_and_nothing_is_left(box: Box, name: str) -> None:
    out = box.lab.berth(box.host, "run", "-d", f"--name={name}", "--rootfs", ROOTFS, "true", check=False)
    assert out["error"]["kind"] == "invalid-input" and "name" in out["error"]["message"]
    assert_nothing_left(box)


@pytest.mark.parametrize(
    "opts, kind, words",
    [
        (("--rootfs", "/nonexistent"), "not-found", "layer /nonexistent"),
        (("--rootfs", ROOTFS, "-m", "12 potatoes"), "invalid-input", "memory_max"),
        (("--rootfs", ROOTFS, "--cpu-quota=-5%"), "invalid-input", "cpu_quota"),
        (("--rootfs", ROOTFS, "--pids-limit", "many"), "invalid-input", "tasks_max"),
        (("--rootfs", ROOTFS, "-v", "/nope:/x"), "not-found", "/nope"),
        (("--rootfs", ROOTFS, "--restart", "sometimes"), "invalid-input", "restart"),
        (("--rootfs", ROOTFS, "--cap-add", "SUPERPOWER"), "invalid-input", "SUPERPOWER"),
        (("--rootfs", ROOTFS, "--secret", "x=/nope"), "not-found", "secret x"),
    ],
)
def test_bad_input_gets_a_clear_error_and_leaves_nothing(
    box: Box, opts: tuple[str, ...], kind: str, words: str
) -> None:
    out = box.lab.berth(box.host, "run", "-d", "--name", "bad", *opts, "true", check=False)
    assert out["error"]["kind"] == kind and words in out["error"]["message"], out["error"]
    assert_nothing_left(box)


def test_a_command_missing_from_the_image_is_reported_and_leaves_nothing(box: Box) -> None:
    out = box.lab.berth(
        box.host, "run", "-d", "--name", "nocmd", "--rootfs", ROOTFS, "/no/such/cmd", check=False
    )
    assert out["error"]["kind"] == "start-failed"
    assert "/no/such/cmd" in out["error"]["message"] and "No such file" in out["error"]["message"]
    assert out["changed"] is False if "changed" in out else True
    assert_nothing_left(box)


def test_a_foreground_start_that_fails_says_why_once(box: Box) -> None:
    """The unit's stderr is the caller's terminal here: the reason is printed by the CLI alone."""
    out = box.lab.run(
        box.host, ["berth", "run", "--rm", "--rootfs", ROOTFS, "/no/such/cmd"], check=False, input=""
    )
    assert out.returncode == 12, out
    assert out.stderr.count("/no/such/cmd") == 1 and "No such file" in out.stderr, out.stderr
    assert_nothing_left(box)


def test_a_script_whose_interpreter_is_missing_says_so(box: Box) -> None:
    """The file exists and is executable, but its #! names nothing: reported by the start."""
    box.sh("mkdir", "-p", "/var/lib/berth/test-script")
    box.sh("sh", "-c", "printf '#!/no/such/interpreter\\n' > /var/lib/berth/test-script/run")
    box.sh("chmod", "755", "/var/lib/berth/test-script/run")
    try:
        out = box.lab.berth(
            box.host, "run", "-d", "--name", "noint", "--rootfs", ROOTFS,
            "-v", "/var/lib/berth/test-script:/s:ro", "/s/run", check=False,
        )  # fmt: skip
        box.names.add("noint")
        assert out["error"]["kind"] == "start-failed", out
        message = out["error"]["message"]
        assert "/s/run" in message and "/no/such/interpreter" in message, message
    finally:
        box.sh("rm", "-rf", "/var/lib/berth/test-script")


def test_an_existing_name_is_a_conflict(box: Box) -> None:
    box.detach("twice", "sleep", "600")
    out = box.lab.berth(box.host, "run", "-d", "--name", "twice", "--rootfs", ROOTFS, "true", check=False)
    assert out["error"]["kind"] == "conflict" and "already exists" in out["error"]["message"]
    assert box.inspect("twice")["status"] == "running"


def assert_nothing_left(box: Box) -> None:
    units = box.sh("systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-*.service")
    assert [
        u
        for u in units.splitlines()
        if u.split()[0].removesuffix(".service").removeprefix("berth-") not in box.names
    ] == []
    names = box.sh("ls", "/var/lib/berth/containers").split()
    assert [n for n in names if n not in box.names] == []
    run_names = box.sh("sh", "-c", "ls /run/berth/containers 2>/dev/null || true").split()
    assert [n for n in run_names if n not in box.names] == []


def test_exec_joins_the_containers_namespaces_cgroup_and_confinement(box: Box) -> None:
    box.detach("target", "sleep", "600")
    out = box.sh(
        "berth",
        "exec",
        "target",
        "sh",
        "-c",
        "ps -o comm | grep -cx sleep; hostname; grep CapBnd /proc/self/status; echo $$",
    )
    count, hostname, capbnd, pid = out.split("\n")[:4]
    assert count.strip() == "1" and hostname == "target"  # sees the container's PID namespace
    assert capbnd.split()[1] == "00000000800405fb" and int(pid) > 1
    cgroup = box.inspect("target")["control_group"]
    procs = box.sh("cat", f"/sys/fs/cgroup/pids{cgroup}/cgroup.procs").split()
    assert len(procs) == 1  # the exec'd process was in the unit's cgroup while it ran, and is gone
    assert box.sh("berth", "exec", "-u", "app", "target", "id", "-u").strip() == "1000"
    assert (
        box.lab.run(box.host, ["berth", "exec", "target", "sh", "-c", "exit 9"], check=False).returncode == 9
    )
    piped = box.lab.run(box.host, ["berth", "exec", "-i", "target", "cat"], input="through stdin\n")
    assert piped.stdout == "through stdin\n"
    # -t: a terminal of the container's own devpts, driven through script(1)'s pty here.
    tty = box.lab.run(box.host, ["script", "-qc", "berth exec -it target tty", "/dev/null"], input="")
    assert tty.stdout.strip().startswith("/dev/pts/")
    missing = box.lab.run(box.host, ["berth", "exec", "target", "/no/such"], check=False)
    assert missing.returncode == 127 and "No such file" in missing.stderr


def test_update_changes_limits_of_a_running_container_live(box: Box) -> None:
    box.detach("elastic", "sleep", "600", opts=("-m", "64M", "--cpu-quota", "20%"))
    pid = box.inspect("elastic")["pid"]
    out = box.lab.berth(
        box.host,
        "update",
        "elastic",
        "--memory",
        "128M",
        "--cpu-quota",
        "50%",
        "--pids-limit",
        "99",
        "--cpuset-cpus",
        "1",
    )
    assert out["changed"]
    assert int(box.cgroup_file("elastic", "memory", "memory.limit_in_bytes")) == 128 * 2**20
    assert box.cgroup_file("elastic", "cpu", "cpu.cfs_quota_us").strip() == "50000"
    assert box.cgroup_file("elastic", "pids", "pids.max").strip() == "99"
    assert "Cpus_allowed_list:\t1\n" in box.sh("cat", f"/proc/{pid}/status")
    assert box.inspect("elastic")["pid"] == pid  # no restart
    assert box.inspect("elastic")["spec"]["resources"]["memory_max"] == 128 * 2**20  # kept for restarts
    stats = box.lab.berth(box.host, "stats", "elastic")["data"][0]
    assert stats["memory_max"] == 128 * 2**20 and stats["tasks"] == 1 and stats["memory_bytes"] > 0


def test_io_limits_reach_the_blkio_throttles_and_change_live(box: Box) -> None:
    """IO*BandwidthMax land in v1's blkio throttles for the disk behind the path; IOPS limits,
    which systemd drives only through v2's io.max, are reported as not enforced."""
    disk, other = "/var/lib/berth", "/var/lib/berth/containers"  # two paths on one disk
    dev = int(box.sh("stat", "-c", "%d", disk))
    majmin = f"{dev >> 8 & 0xFFF}:{(dev & 0xFF) | (dev >> 12 & 0xFFF00)}"
    out = box.detach(
        "throttled",
        "sleep",
        "600",
        opts=("--device-read-bps", f"{disk}:1M", "--device-write-iops", f"{disk}:100"),
    )
    assert any(w.startswith("IOWriteIOPSMax is not enforced") for w in out["warnings"]), out["warnings"]
    read_bps = box.cgroup_file("throttled", "blkio", "blkio.throttle.read_bps_device")
    assert read_bps.split() == [majmin, str(1 << 20)]
    pid = box.inspect("throttled")["pid"]
    # A live change replaces the map: the entry for `disk` goes, the one for `other` comes.
    box.lab.berth(box.host, "update", "throttled", "--device-read-bps", f"{other}:2M")
    shown = box.sh("systemctl", "show", "berth-throttled.service", "-p", "IOReadBandwidthMax")
    assert shown.strip() == f"IOReadBandwidthMax={other} {2 << 20}"
    read_bps = box.cgroup_file("throttled", "blkio", "blkio.throttle.read_bps_device")
    assert read_bps.split() == [majmin, str(2 << 20)] and box.inspect("throttled")["pid"] == pid
    assert box.inspect("throttled")["spec"]["resources"]["io_read_bandwidth_max"] == {other: 2 << 20}


@pytest.mark.parametrize(
    "flag, words",
    [
        ("/dev/null:1M", "is a character device"),
        ("/no/such/disk:1M", "does not exist on this host"),
        ("/run:1M", "no disk backs"),
        ("/var/lib/berth:0", "would stop all IO"),
        ("/var/lib/berth:12 potatoes", "cannot read '12 potatoes'"),
    ],
)
def test_io_limits_systemd_would_ignore_are_refused_and_leave_nothing(
    box: Box, flag: str, words: str
) -> None:
    out = box.lab.berth(
        box.host, "run", "-d", "--name", "nodisk", "--rootfs", ROOTFS, "--device-read-bps", flag, "true",
        check=False,
    )  # fmt: skip
    assert out["error"]["kind"] in ("invalid-input", "not-found") and words in out["error"]["message"]
    assert_nothing_left(box)


def test_named_volumes_outlive_containers_and_go_only_when_unused(box: Box) -> None:
    """As podman's: made by a create, kept by rm, shared, listed with their users, removed only
    when nothing uses them."""
    box.detach("vol-a", "sh", "-c", "echo kept > /data/f; sleep 600", opts=("-v", "itvol:/data"))
    listed = {v["name"]: v for v in box.lab.berth(box.host, "volume", "ls")["data"]}
    assert listed["itvol"]["users"] == ["container vol-a"] and listed["itvol"]["created_at"]
    refused = box.lab.berth(box.host, "volume", "rm", "itvol", check=False)
    assert refused["error"]["kind"] == "conflict" and "container vol-a" in refused["error"]["message"]
    pruned = box.lab.berth(box.host, "volume", "prune")
    assert "itvol" in pruned["data"]["kept"] and "itvol" not in pruned["data"]["removed"]
    box.lab.berth(box.host, "rm", "-f", "vol-a")
    out = box.run("vol-b", "cat", "/data/f", opts=("--rm", "-v", "itvol:/data"))
    assert out.stdout == "kept\n"  # the data outlived the container that wrote it
    planned = box.lab.berth(box.host, "volume", "prune", "--check")
    assert "itvol" in planned["data"]["removed"] and planned["changed"]  # would change
    assert box.lab.berth(box.host, "volume", "inspect", "itvol")["data"][0]["in_use"] is False
    gone = box.lab.berth(box.host, "volume", "rm", "itvol")
    assert gone["changed"] and [a["action"] for a in gone["actions"]] == ["remove-volume"]
    assert "itvol" not in box.sh("ls", "-a", "/var/lib/berth/volumes").split()
    missing = box.lab.berth(box.host, "volume", "inspect", "itvol", check=False)
    assert missing["error"]["kind"] == "not-found"


def test_a_fresh_named_volume_starts_with_the_images_files(box: Box) -> None:
    """Copy-up, as podman's and docker's: the first mount of a new volume gets what the image has
    there (owners, modes, links, the directory's own owner and mode); later mounts copy nothing."""
    tree = "/var/lib/berth/copyup-rootfs"
    conf = f"{tree}/srv/conf"
    setup = (
        f"rm -rf {tree} && cp -a {ROOTFS} {tree} && mkdir -p {conf}/sub && echo a > {conf}/a.conf && "
        f"ln -s a.conf {conf}/link && echo b > {conf}/sub/b && chown -R 1000:2000 {conf} && chmod 750 {conf}"
    )
    box.sh("sh", "-c", setup)

    def run(volume: str, script: str) -> list[str]:
        argv = ["berth", "run", "--rm", "--rootfs", tree, "-v", volume, "sh", "-c", script]
        return box.lab.run(box.host, argv).stdout.split("\n")[:-1]

    try:
        stats = "stat -c '%n %u:%g %a' /srv/conf /srv/conf/a.conf /srv/conf/sub/b"
        first = run("itcopy:/srv/conf", f"{stats}; readlink /srv/conf/link; echo mine > /srv/conf/new")
        assert first == [
            "/srv/conf 1000:2000 750",
            "/srv/conf/a.conf 1000:2000 644",
            "/srv/conf/sub/b 1000:2000 644",
            "a.conf",
        ]
        box.sh("sh", "-c", f"echo changed > {conf}/a.conf")  # the image changes: the volume does not
        assert run("itcopy:/srv/conf", "ls /srv/conf; cat /srv/conf/a.conf") == [
            "a.conf", "link", "new", "sub", "a"
        ]  # fmt: skip
        assert run("itempty:/nothing", "ls -A /nothing") == []
        # nocopy (podman's): nothing copied, and the volume stays fresh for a later mount
        assert run("itnocopy:/srv/conf:nocopy", "ls -A /srv/conf") == []
        assert run("itnocopy:/srv/conf", "ls /srv/conf") == ["a.conf", "link", "sub"]
    finally:
        box.sh("sh", "-c", f"berth volume rm itcopy itempty itnocopy >/dev/null 2>&1; rm -rf {tree}")


def test_the_default_seccomp_filter_refuses_what_podmans_does(box: Box) -> None:
    # Creating a user namespace needs no capability: only the filter refuses it.
    script = "grep -c '^Seccomp:.2' /proc/self/status; unshare -U true 2>/dev/null; echo $?"
    assert box.run("filtered", "sh", "-c", script, opts=("--rm",)).stdout.split() == ["1", "1"]
    free = box.run("unfiltered", "sh", "-c", script, opts=("--rm", "--security-opt", "seccomp=unconfined"))
    assert free.stdout.split() == ["0", "0"]
    # A capability re-enables the calls podman ties to it: mount with SYS_ADMIN.
    out = box.run(
        "admin",
        "sh",
        "-c",
        "mkdir -p /m && mount -t tmpfs x /m && echo mounted",
        opts=("--rm", "--cap-add", "SYS_ADMIN"),
    )
    assert out.stdout.strip() == "mounted"


def test_many_layers_beyond_the_mount_option_page(box: Box) -> None:
    """200 layers with long paths: the lowerdir option would not fit a page; lowerdir+ does."""
    base = "/var/lib/berth/many-layers"
    script = (
        f"rm -rf {base}; mkdir -p {base}; "
        f"for i in $(seq -w 1 200); do d={base}/layer-$i-{'x' * 40}; "
        "mkdir -p $d/data; echo $i > $d/data/$i; done"
    )
    box.sh("sh", "-c", script)
    layers = [f"{base}/layer-{i:03d}-{'x' * 40}" for i in range(1, 201)]
    assert len(":".join(layers)) > 4096
    spec = {
        "name": "layered",
        "layers": [ROOTFS, *layers],
        "command": ["sh", "-c", "ls /data | wc -l; cat /data/200"],
    }
    box.names.add("layered")
    box.lab.run(box.host, ["sh", "-c", "cat > /var/lib/berth/layered.json"], input=json.dumps(spec))
    out = box.lab.run(box.host, ["berth", "run", "--rm", "-f", "/var/lib/berth/layered.json"]).stdout.split()
    assert out == ["200", "200"]
    box.sh("rm", "-rf", base, "/var/lib/berth/layered.json")


def test_a_replacement_that_cannot_run_here_changes_nothing(box: Box) -> None:
    """The host is checked before the first action: the old container is not stopped for a new
    spec whose bind source is missing, and no unit or record of a new one is made."""
    box.detach("keep", "sleep", "600", opts=("--stop-timeout", "1"))
    before = box.inspect("keep")
    spec = {
        "name": "keep",
        "rootfs": ROOTFS,
        "command": ["sleep", "601"],
        "mounts": [{"type": "bind", "source": "/nope/src", "target": "/x"}],
    }
    request = json.dumps({"state": "started", "spec": spec})
    # check mode plans the replacement and warns that it would fail
    planned = box.lab.berth(box.host, "container", "apply", "--check", "-f", "-", input=request)
    assert [a["action"] for a in planned["actions"]] == ["stop", "remove", "create", "start"]
    assert any("/nope/src" in w for w in planned["warnings"]), planned["warnings"]
    out = box.lab.berth(box.host, "container", "apply", "-f", "-", input=request, check=False)
    assert out["exit_code"] != 0 and out["error"]["kind"] == "not-found", out
    assert "/nope/src" in out["error"]["message"] and not out.get("changed") and not out.get("actions")
    # `create` of the taken name names the missing source too
    created = box.lab.berth(
        box.host, "create", "--name", "keep", "--rootfs", ROOTFS, "-v", "/nope/src:/x", "true", check=False
    )
    assert created["exit_code"] != 0 and "/nope/src" in created["error"]["message"], created
    after = box.inspect("keep")
    assert after["status"] == "running" and after["pid"] == before["pid"], after
    assert after["spec_hash"] == before["spec_hash"] and after["started_at"] == before["started_at"]
    units = box.sh("systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-keep*")
    assert [u.split()[0] for u in units.splitlines()] == ["berth-keep.service"]
    assert_nothing_left(box)
