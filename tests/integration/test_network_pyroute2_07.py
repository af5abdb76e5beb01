"""Networking under Debian 12's pyroute2 (0.7.2), not only the 0.9 the venv has.

The issue asks for the IPRoute API that works with both. A sibling interpreter sees pyroute2
0.7.2 first and everything else from the project's venv (a `.pth` adds that venv's
site-packages after its own), and a `berth` script of its own comes first in PATH inside the lab
host. Units the runtime starts from there run their network hooks with that same interpreter
(`sys.executable`), so create, attach, park on a crash, unpark, detach and rm all go through 0.7.
"""

from __future__ import annotations

import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import HOST_PATH, VENV, Lab
from netkit import Net
from rootfs import build_rootfs
from test_network import answers, wait_for

pytestmark = pytest.mark.lab
VERSION = "0.7.2"  # Debian 12's python3-pyroute2
# Under the venv: lab hosts see it (their /tmp, and so a checkout there, is their own).
PREFIX = VENV / f"sibling-pyroute2-{VERSION}"


def interpreter() -> Path:
    """The sibling interpreter with pyroute2 VERSION, made once and kept under .build/."""
    python = PREFIX / "bin" / "python"
    site = PREFIX / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"
    if not (site / "zz_berth_venv.pth").exists():
        subprocess.run([str(VENV / "bin" / "python"), "-m", "venv", "--without-pip", str(PREFIX)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
             "--target", str(site), "--upgrade", f"pyroute2=={VERSION}"],
            check=True,
        )  # fmt: skip
        venv_site = VENV / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"
        (PREFIX / "bin" / "berth").write_text(
            f"#!{python}\nimport sys\nfrom berth.cli import main\nsys.exit(main())\n"
        )
        (PREFIX / "bin" / "berth").chmod(0o755)
        # Last, so that its own pyroute2 wins; addsitedir also runs the venv's .pth files
        # (the editable install of the runtime).
        (site / "zz_berth_venv.pth").write_text(f"import site; site.addsitedir({str(venv_site)!r})\n")
    return python


class Net07(Net):
    """`Net` whose berth commands run on the pyroute2 0.7 interpreter."""

    def berth(self, *args: str, check: bool = True) -> dict[str, Any]:
        env = {"PATH": f"{PREFIX / 'bin'}:{HOST_PATH}"}
        return self.lab.berth(self.host, *args, check=check, env=env)


@pytest.fixture(scope="module")
def net07(lab: Lab) -> Iterator[Net07]:
    python = interpreter()
    host = lab.hosts[0]
    build_rootfs(lab, host)
    n = Net07(lab, host)
    probe = "import pyroute2, berth.network.links; print(pyroute2.__version__)"
    assert n.lab.run(host, [str(python), "-c", probe]).stdout.strip() == VERSION
    try:
        yield n
    finally:
        n.cleanup()


def test_networking_end_to_end_on_pyroute2_0_7(net07: Net07, lab: Lab) -> None:
    net, other = net07, lab.hosts[1]
    before = net.snapshot()
    net.berth("network", "create", "pr07", "--subnet", "10.89.77.0/24")
    net.networks.append("pr07")
    net.web("pa", "pa", "--network", "pr07")
    net.web("pb", "pb", "--network", "pr07", "-p", "8397:80", "--restart", "always")
    unit = net.sh("systemctl show -P ExecStopPost berth-pb.service")
    assert str(PREFIX) in unit, unit  # the hooks run on 0.7 too
    # by name on the network, and the published port from another lab host
    assert net.sh("berth exec pa wget -qO- http://pb/").strip() == "pb"
    url = f"http://{lab.addresses[net.host]}:8397/"
    assert net.get(url, host=other) == "pb"
    # a crash: parked by the unit's hook, restarted by systemd, unparked: same address, same port
    address = net.berth("inspect", "pb")["data"][0]["networks"][0]["address"]
    pid = net.berth("inspect", "pb")["data"][0]["pid"]
    net.sh(f"kill -9 {pid}")
    assert wait_for(lambda: net.berth("inspect", "pb")["data"][0]["pid"] not in (None, pid))
    assert wait_for(lambda: answers(net, "http://127.0.0.1:8397/") == "pb")
    assert net.berth("inspect", "pb")["data"][0]["networks"][0]["address"] == address
    # the traffic switch, then rm of everything: nothing left behind
    net.berth("network", "switch", "8397", "pa")
    assert net.get(url, host=other) == "pa"
    net.berth("rm", "-f", "pa", "pb")
    net.berth("network", "rm", "pr07")
    net.containers.clear()
    net.networks.clear()
    assert net.snapshot() == before
