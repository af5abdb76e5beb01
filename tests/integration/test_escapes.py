"""Container escapes (issue 8, part 3), on real systemd hosts: hostile images and specs against
the runtime's confinement. Every case ends with the host's files hashed again and compared.

Images are the busybox rootfs of `rootfs.py`, altered by a shell snippet (a symlink planted at
/proc, /etc/hosts, ...), packed with tar and brought in with `berth image import`, so the layer
goes through the store's extractor as a pulled image would. The confinement probe is a small
static C program compiled on this machine (gcc, static libc): it makes each forbidden call and
prints the errno it got. It only ever *asks* for write access to kernel files (access(W_OK)):
lab hosts share this machine's kernel, so nothing here writes /proc/sys or sysrq-trigger.

The tests record what they tried in the reliability summary (tests/reliability_plugin.py).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import Lab
from rootfs import ROOTFS, build_rootfs

from tests.reliability_plugin import recorder as _rec

pytestmark = pytest.mark.lab

WORK = "/var/lib/berth/escape-tests"
MARKER = "/var/lib/berth/escape-marker"  # exists on the host only; a container that sees it got out
# Host files an image-controlled symlink aims at; hashed before and after every case.
WATCHED = (
    "/etc/shadow",
    "/etc/passwd",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/host-marker-file",
    MARKER,
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/hostname",
)

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, long ret) {
  if (ret < 0) printf("%s=%s\n", what, strerrorname_np(errno)); else printf("%s=OK\n", what);
}

static long connect_unix(const char *path) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  long ret = connect(s, (struct sockaddr *)&a, sizeof a);
  int saved = errno;
  close(s);
  errno = saved;
  return ret;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc == 3 && strcmp(argv[1], "w") == 0) {  /* probe w PATH: may we write PATH? (asks only) */
    say(argv[2], access(argv[2], W_OK));
    return 0;
  }
  say("mount", mount("none", "/mnt", "tmpfs", 0, ""));
  say("umount", umount2("/etc/hostname", MNT_DETACH));
  /* Harmless arguments: a call that got past the permission check fails with EINVAL/EBADF/ENOENT. */
  say("init_module", syscall(SYS_init_module, "x", 1UL, ""));
  say("finit_module", syscall(SYS_finit_module, -1, "", 0));
  say("delete_module", syscall(SYS_delete_module, "berth_no_such_module", O_NONBLOCK));
  say("sethostname", sethostname("evil-host", 9));
  say("unshare_user", unshare(CLONE_NEWUSER));
  say("unshare_mnt", unshare(CLONE_NEWNS));
  say("setns", syscall(SYS_setns, -1, 0));
  say("mknod_block", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)));
  /* access(W_OK) asks, never writes: EROFS is the read-only mount answering. */
  say("proc_sys_w", access("/proc/sys/kernel/core_pattern", W_OK));
  say("sysrq_w", access("/proc/sysrq-trigger", W_OK));
  say("dbus", connect_unix("/run/dbus/system_bus_socket"));
  say("systemd_private", connect_unix("/run/systemd/private"));
  say("journal_socket", connect_unix("/run/systemd/journal/stdout"));
  char handle[8 + 64] = {0};
  ((unsigned *)handle)[0] = 8;
  ((int *)handle)[1] = 1;
  say("open_by_handle", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
  say("bpf", syscall(SYS_bpf, 0, NULL, 0));
  say("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
  pid_t child = fork();
  if (child == 0) { pause(); _exit(0); }
  say("ptrace_attach", ptrace(PTRACE_ATTACH, child, 0, 0));
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  pid_t jail = fork();
  if (jail == 0) {  /* the classic chroot escape: chroot deeper, then walk up past the old root */
    mkdir("/tmp/cx", 0700);
    if (chroot("/tmp/cx") == 0) {
      for (int i = 0; i < 64; i++) if (chdir("..") != 0) break;
      if (chroot(".") != 0) _exit(1);
    }
    say("chroot_escape", access("/var/lib/berth/escape-marker", F_OK));
    _exit(0);
  }
  waitpid(jail, NULL, 0);
  return 0;
}
"""

# What each probe must get in a default container (root, podman's capabilities, the filter).
PROBE_EXPECT = {
    "mount": {"EPERM"},
    "umount": {"EPERM"},
    "init_module": {"EPERM"},
    "finit_module": {"EPERM"},
    "delete_module": {"EPERM"},
    "sethostname": {"EPERM"},
    "unshare_user": {"EPERM"},
    "unshare_mnt": {"EPERM"},
    "setns": {"EPERM"},
    "mknod_block": {"EPERM"},
    "proc_sys_w": {"EROFS"},
    "sysrq_w": {"EROFS", "ENOENT"},
    "dbus": {"ENOENT"},
    "systemd_private": {"ENOENT"},
    "journal_socket": {"ENOENT"},
    "open_by_handle": {"EPERM"},
    "bpf": {"EPERM"},
    "keyctl": {"EPERM"},
    "ptrace_attach": {"EPERM"},
    "chroot_escape": {"ENOENT"},
}


class Host:
    """One lab host, with the helpers the escape cases share."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab, self.name = lab, name
        self.containers: set[str] = set()

    def sh(
        self, script: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self.name, ["sh", "-c", script], check=check, input=input)

    def hashes(self) -> dict[str, str]:
        lines = self.sh(
            "for f in " + " ".join(WATCHED) + "; do "
            'if [ -e "$f" ]; then echo "$f $(sha256sum < "$f" | cut -d" " -f1)"; else echo "$f -"; fi; done; '
            'echo "hostname $(hostname)"; echo "units $(systemctl list-units --all --plain --no-legend '
            "'berth-esc-*' | wc -l)\""
        ).stdout
        return dict(line.split(" ", 1) for line in lines.splitlines())

    def image(self, tag: str, setup: str, changes: tuple[str, ...] = ('CMD ["sh"]',)) -> str:
        """The busybox rootfs altered by `setup` (run with $R = a copy of it), imported as `tag`."""
        script = (
            f"set -e; R={WORK}/{tag}; rm -rf $R; cp -a {ROOTFS} $R; cp {WORK}/probe $R/probe; "
            f"{setup}\n tar -C $R -cf $R.tar . ; rm -rf $R"
        )
        self.sh(script)
        args = []
        for change in changes:
            args += ["-c", change]
        self.lab.berth(
            self.name, "image", "import", "--format", "rootfs", "-t", tag, f"{WORK}/{tag}.tar", *args
        )
        self.sh(f"rm -f {WORK}/{tag}.tar")
        return tag

    def run(self, name: str, *args: str) -> dict[str, Any]:
        """`berth run --rm` in the foreground: exit code, the container's output, berth's errors."""
        self.containers.add(name)
        proc = self.lab.run(self.name, ["berth", "run", "--rm", "--name", name, *args], check=False)
        return {"exit_code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}

    def cleanup(self) -> None:
        """Remove what is left of this test's containers (one call; --rm ones are gone already)."""
        if self.containers:
            names = " ".join(sorted(self.containers))
            self.sh(
                f"for n in {names}; do [ ! -e /var/lib/berth/containers/$n ] || berth rm -f $n; done; true"
            )
        self.containers.clear()


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[Host]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the confinement probe cannot be built")
    name = lab.hosts[-1]
    build_rootfs(lab, name)
    h = Host(lab, name)
    with tempfile.TemporaryDirectory(prefix="berth-probe-") as d:
        src = Path(d) / "probe.c"
        src.write_text(PROBE_C)
        built = subprocess.run(
            ["gcc", "-static", "-O2", "-o", str(Path(d) / "probe"), str(src)], capture_output=True, text=True
        )
        if built.returncode != 0:
            pytest.skip(f"cannot build the static probe: {built.stderr[-400:]}")
        encoded = base64.b64encode((Path(d) / "probe").read_bytes()).decode()
    h.sh(f"mkdir -p {WORK} && base64 -d > {WORK}/probe && chmod 755 {WORK}/probe", input=encoded)
    h.sh(f"echo host-secret > /host-marker-file; echo marker > {MARKER}")
    try:
        yield h
    finally:
        h.cleanup()
        h.sh(f"rm -rf {WORK} /host-marker-file {MARKER}; berth image prune --all >/dev/null", check=False)


@pytest.fixture
def guarded(host: Host, pytestconfig: pytest.Config) -> Iterator[Host]:
    """The host, with its watched files hashed before and compared after the test."""
    _rec(pytestconfig).guard("escape")
    before = host.hashes()
    try:
        yield host
    finally:
        host.cleanup()
    after = host.hashes()
    assert after == before, f"host files changed: {set(after.items()) ^ set(before.items())}"


def _tag() -> str:
    return f"esc-{uuid.uuid4().hex[:8]}"


# -- image-controlled symlinks at the runtime's mount points --------------------------------------
# (case, setup on $R, expectation, extra run options). "inside:PATH:TEXT": the container starts and
# the runtime's file (TEXT in it) is mounted at PATH inside its own root. "refuse:WORDS": the start
# fails, saying so, with WORDS in the message.
SYMLINK_CASES: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("etc-hosts-absolute-to-host", "ln -sf /host-marker-file $R/etc/hosts", "refuse:hosts", ()),
    (
        "etc-hosts-relative-up-to-shadow",
        "echo image-shadow > $R/etc/shadow; ln -sf ../../../../../etc/shadow $R/etc/hosts",
        "inside:/etc/shadow:localhost",
        (),
    ),
    ("etc-hosts-dotdot-missing", "ln -sf ../../../../etc/shadow $R/etc/hosts", "refuse:hosts", ()),
    (
        "etc-hostname-to-proc-sys",
        "ln -sf /proc/sys/kernel/hostname $R/etc/hostname",
        "inside:/etc/hostname:esc",
        (),
    ),
    ("etc-resolv-to-sysrq", "ln -sf /proc/sysrq-trigger $R/etc/resolv.conf", "refuse:resolv.conf", ()),
    ("etc-resolv-to-host-shadow", "ln -sf /etc/shadow $R/etc/resolv.conf", "refuse:resolv.conf", ()),
    (
        "etc-is-a-symlink-to-root",
        "mv $R/etc $R/etc.real; ln -s / $R/etc; cp $R/etc.real/* $R/",
        "inside:/hosts:localhost",
        (),
    ),
    (
        "proc-loop-to-host",
        "rmdir $R/proc 2>/dev/null || true; ln -s /../../../../proc $R/proc",
        "refuse:/proc",
        (),
    ),
    ("proc-to-etc", "ln -s /etc $R/proc", "refuse:", ()),
    ("sys-to-etc", "ln -s /etc $R/sys", "refuse:", ()),
    ("sys-loop-to-host", "ln -s /../../../sys $R/sys", "refuse:/sys", ()),
    ("dev-dangling", "ln -s /host-dev $R/dev", "refuse:dev", ()),
    (  # a symlink at a kernel mount point is refused, as in runc (not followed, even inside)
        "dev-symlinked-dir-with-null-to-host",
        "mkdir -p $R/realdev; ln -s /realdev $R/dev; ln -s /host-marker-file $R/realdev/null",
        "refuse:/dev is a symlink",
        (),
    ),
    (
        "dev-pts-and-null-to-host",
        "mkdir -p $R/dev; ln -s /../../dev/pts $R/dev/pts; ln -s /host-marker-file $R/dev/null",
        "inside:/dev/null:",
        (),
    ),
    (
        "run-secrets-to-host-root",
        "mkdir -p $R/run; ln -s /../../../root $R/run/secrets",
        "inside:/root/s1:secret-value",
        ("--secret", f"s1={WORK}/secret"),
    ),
]


# The slower half of the list runs under the `slow` marker (each case is an import and a start).
SLOW_CASES = {
    "etc-hosts-dotdot-missing",
    "etc-resolv-to-host-shadow",
    "etc-is-a-symlink-to-root",
    "proc-to-etc",
    "sys-to-etc",
    "dev-pts-and-null-to-host",
}


@pytest.mark.parametrize(
    "case, setup, expect, opts",
    [
        pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if c[0] in SLOW_CASES else [])
        for c in SYMLINK_CASES
    ],
)
def test_image_symlinks_at_runtime_mount_points_stay_inside(
    guarded: Host, pytestconfig: pytest.Config, case: str, setup: str, expect: str, opts: tuple[str, ...]
) -> None:
    _rec(pytestconfig).inputs(1, "escape-image")
    guarded.sh(f"echo secret-value > {WORK}/secret")
    tag = guarded.image(_tag(), setup)
    kind, _, rest = expect.partition(":")
    path, _, want = rest.partition(":")
    script = (
        f"cat {path or '/etc/hosts'} 2>&1; echo ---; ls {MARKER} 2>&1; "
        "/probe w /proc/sys/kernel/core_pattern | grep =OK && echo PROC_SYS_WRITABLE; true"
    )
    out = guarded.run(f"esc-{case}"[:60], *opts, tag, "sh", "-c", script)
    if kind == "refuse":
        assert out["exit_code"] != 0, f"{case}: the container started: {out['stdout']}"
        assert "failed to start" in out["stderr"] and rest in out["stderr"], out["stderr"]
    else:
        assert out["exit_code"] == 0, f"{case}: {out['stdout']} {out['stderr']}"
        shown, _, after = out["stdout"].partition("---")
        assert want in shown, f"{case}: the runtime's file is not at {path} inside: {shown!r}"
        assert "No such file" in after and "PROC_SYS_WRITABLE" not in after, after


def test_a_proc_symlink_through_dev_cannot_unmask_proc(guarded: Host, pytestconfig: pytest.Config) -> None:
    """The masks must apply to the procfs the runtime mounted, whatever the image's symlinks.

    At the first mount /dev is still the image's, so /dev/mqueue/../../fake means /x/fake (the
    procfs lands there); once /dev is a tmpfs, the same link means /fake, a decoy in the image.
    The runtime refuses a symlink at any kernel mount point (as runc does), naming it.
    """
    _rec(pytestconfig).inputs(1, "escape-image")
    setup = (
        "mkdir -p $R/dev $R/x/y/z $R/x/fake $R/fake/self $R/fake/sys; "
        'grep -E "^Cap" /proc/self/status > $R/fake/self/status; '
        "ln -s /x/y/z $R/dev/mqueue; rmdir $R/proc 2>/dev/null || true; ln -s /dev/mqueue/../../fake $R/proc"
    )
    tag = guarded.image(_tag(), setup)
    script = (
        "for m in $(awk '$9 == \"proc\" {print $5}' /x/fake/self/mountinfo 2>/dev/null); do "
        '/probe w "$m/sys/kernel/core_pattern" | grep -q =OK && echo "WRITABLE $m/sys"; '
        '[ -e "$m/kcore" ] && ! grep -q " $m/kcore " /x/fake/self/mountinfo && echo "UNMASKED $m/kcore"; '
        "done; true"
    )
    out = guarded.run("esc-proc-via-dev", tag, "sh", "-c", script)
    if out["exit_code"] == 0:  # started: every procfs it can see must be confined
        assert "WRITABLE" not in out["stdout"] and "UNMASKED" not in out["stdout"], out["stdout"]
    else:  # or refused, clearly
        assert "failed to start" in out["stderr"] and "/proc is a symlink" in out["stderr"], out["stderr"]


def test_an_etc_passwd_that_never_ends_is_refused_clearly(guarded: Host, pytestconfig: pytest.Config) -> None:
    _rec(pytestconfig).inputs(1, "escape-image")
    tag = guarded.image(_tag(), "ln -sf /dev/zero $R/etc/passwd")
    # -m 64M keeps this test from taking the lab host's memory should the read ever be unbounded.
    out = guarded.run("esc-passwd-zero", "-m", "64M", tag, "echo", "started")
    assert out["exit_code"] != 0 and "failed to start" in out["stderr"] and "passwd" in out["stderr"], out
    assert "not a regular file" in out["stderr"] and "oom" not in out["stderr"].lower(), out["stderr"]


# -- working dir and mount targets through /proc/self/fd --------------------------------------------
@pytest.mark.parametrize(
    "fd", [3, 4, pytest.param(5, marks=pytest.mark.slow), pytest.param(9, marks=pytest.mark.slow)]
)
def test_a_workdir_in_proc_self_fd_never_leaves_the_root(
    guarded: Host, pytestconfig: pytest.Config, fd: int
) -> None:
    """runc CVE-2024-21626: a leaked directory fd as the working dir puts the process outside."""
    _rec(pytestconfig).inputs(2, "escape-spec")
    tag = guarded.image(_tag(), "true", ('CMD ["sh"]', f"WORKDIR /proc/self/fd/{fd}"))
    escape = f"cat {'../' * 12}var/lib/berth/escape-marker 2>/dev/null && echo ESCAPED; true"
    from_spec = guarded.run(
        f"esc-wd-{fd}", "-w", f"/proc/self/fd/{fd}", "--rootfs", ROOTFS, "sh", "-c", escape
    )
    from_image = guarded.run(f"esc-wdimg-{fd}", tag, "sh", "-c", escape)
    for out in (from_spec, from_image):
        assert "ESCAPED" not in out["stdout"]
        if out["exit_code"] != 0:
            assert "working directory" in out["stderr"], out["stderr"]


@pytest.mark.parametrize(
    "opt",
    ["vol:/proc/self/fd/3", "vol:/proc/self/fd/1", "/var/lib/berth:/proc/self/fd/4", "vol:/proc/1/root"],
)
def test_a_mount_target_through_proc_magic_links_is_refused(
    guarded: Host, pytestconfig: pytest.Config, opt: str
) -> None:
    _rec(pytestconfig).inputs(1, "escape-spec")
    out = guarded.run("esc-voltarget", "-v", opt, "--rootfs", ROOTFS, "sh", "-c", "ls /; echo STARTED")
    assert out["exit_code"] != 0 and "STARTED" not in out["stdout"], out["stdout"]
    assert "failed to start" in out["stderr"] and "/proc/" in out["stderr"], out["stderr"]
    guarded.sh("rm -rf /var/lib/berth/volumes/vol")


# -- what a running container may hold and do -------------------------------------------------------
def _fd_targets(host: Host, pid: int) -> dict[str, str]:
    out = host.sh(f'for f in /proc/{pid}/fd/*; do echo "${{f##*/}} $(readlink $f)"; done').stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def test_pid_1_and_exec_processes_hold_no_descriptor_outside_stdio(
    guarded: Host, pytestconfig: pytest.Config
) -> None:
    _rec(pytestconfig).inputs(3, "fd-audit")
    name = "esc-fds"
    guarded.containers.add(name)
    guarded.lab.berth(
        guarded.name, "run", "-d", "--name", name, "--stop-timeout", "1", "--rootfs", ROOTFS, "sleep", "600"
    )
    pid = guarded.lab.berth(guarded.name, "inspect", name)["data"][0]["pid"]
    fds = _fd_targets(guarded, pid)
    assert set(fds) == {"0", "1", "2"}, fds
    assert fds["0"] == "/dev/null" and all(
        t.startswith(("socket:", "pipe:", "/dev/")) for t in fds.values()
    ), fds
    # A process started by `berth exec` inherits nothing of the exec machinery either (its stdio
    # is the caller's, as with docker exec): looked at from the host while it runs.
    script = (
        f"berth exec {name} sleep 31.5 & sleep 1; p=$(pgrep -f '^sleep 31.5$'); "
        'ls /proc/$p/fd | sort -n | tr "\\n" " "; kill $!; wait'
    )
    assert guarded.sh(script).stdout.split() == ["0", "1", "2"]
    # The foreground path (stdio handed over D-Bus) as well.
    fg = guarded.run("esc-fds-fg", "--rootfs", ROOTFS, "sh", "-c", "ls /proc/1/fd; true")["stdout"].split()
    assert fg == ["0", "1", "2"], fg


def test_a_default_container_cannot_mount_load_modules_ptrace_or_reach_the_host(
    guarded: Host, pytestconfig: pytest.Config
) -> None:
    rec = _rec(pytestconfig)
    rec.inputs(len(PROBE_EXPECT), "confinement-probe")
    tag = guarded.image(_tag(), "true")
    out = guarded.run("esc-probe", tag, "/probe")
    assert out["exit_code"] == 0, out["stderr"]
    got = dict(line.split("=", 1) for line in out["stdout"].splitlines() if "=" in line)
    wrong = {k: got.get(k) for k, allowed in PROBE_EXPECT.items() if got.get(k) not in allowed}
    assert not wrong, f"confinement probe got: {wrong}"


def test_a_container_sees_no_host_process_and_cannot_change_the_hosts_name(
    guarded: Host, pytestconfig: pytest.Config
) -> None:
    _rec(pytestconfig).inputs(3, "escape-spec")
    sleeper = guarded.lab.run(
        guarded.name, ["systemd-run", "--unit", f"esc-sleeper-{uuid.uuid4().hex[:6]}", "sleep", "600"]
    )
    assert sleeper.returncode == 0
    try:
        script = (
            "ps -o pid,comm | tail -n +2 | wc -l; ls -d /proc/[0-9]* | wc -l; "
            "grep -l 'sleep' /proc/[0-9]*/comm 2>/dev/null | wc -l; hostname evil-host 2>/dev/null; echo $?; "
            "cat /proc/1/comm; true"
        )
        out = guarded.run("esc-ps", "--rootfs", ROOTFS, "sh", "-c", script)["stdout"].split()
        ps_count, proc_count, sleepers, hostname_rc, pid1 = out[:5]
        assert int(ps_count) <= 4 and int(proc_count) <= 4, out  # sh, ps, tail, wc at most
        assert sleepers == "0" and hostname_rc != "0" and pid1 == "sh", out
        # With a capability it may rename itself: its own UTS namespace, never the host's.
        renamed = guarded.run(
            "esc-uts",
            "--cap-add",
            "SYS_ADMIN",
            "--rootfs",
            ROOTFS,
            "sh",
            "-c",
            "hostname evil-host && hostname",
        )
        assert renamed["stdout"].split()[-1] == "evil-host"
        assert guarded.sh("hostname").stdout.strip() == guarded.name
    finally:
        guarded.sh("systemctl stop 'esc-sleeper-*' 2>/dev/null; true", check=False)


def test_privileged_is_the_only_way_out_of_the_confinement(
    guarded: Host, pytestconfig: pytest.Config
) -> None:
    """Sanity check of the probe itself: with --privileged the same calls get past the checks."""
    _rec(pytestconfig).inputs(1, "confinement-probe")
    tag = guarded.image(_tag(), "true")
    out = guarded.run("esc-probe-priv", "--privileged", tag, "/probe")
    got = dict(line.split("=", 1) for line in out["stdout"].splitlines() if "=" in line)
    assert got.get("mount") == "OK" and got.get("delete_module") in ("ENOENT", "ENOSYS"), got
    assert got.get("chroot_escape") == "ENOENT", got  # pivot_root, not chroot: still no way up
