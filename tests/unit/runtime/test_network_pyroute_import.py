"""berth.network.pyroute: IPRoute without pyroute2's package `__init__`, and nothing lost by it.

Each check runs in a fresh interpreter: what is imported is per process. The integration suite
runs the same loader under pyroute2 0.7 (test_network_pyroute2_07.py) and 0.9 on real links.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("pyroute2")


def _run(code: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_iproute_comes_without_the_rest_of_pyroute2() -> None:
    seen = _run(
        "import json, sys\n"
        "from berth.network.pyroute import iproute_class\n"
        "first, second = iproute_class(), iproute_class()\n"
        "with first() as ip: lo = ip.link_lookup(ifname='lo')\n"
        "print(json.dumps({'same': first is second, 'lo': lo, 'name': first.__name__,\n"
        "  'heavy': sorted(m for m in ('pyroute2.ndb.main', 'pyroute2.ipdb', 'pyroute2.conntrack',\n"
        "                              'pyroute2.netlink.generic.wireguard') if m in sys.modules)}))\n"
    )
    assert seen == {"same": True, "lo": [1], "name": "IPRoute", "heavy": []}


def test_names_of_the_package_init_still_resolve_afterwards() -> None:
    """Code that later does `from pyroute2 import NetlinkError` gets the package as usual."""
    seen = _run(
        "import json\n"
        "from berth.network.pyroute import iproute_class\n"
        "lean = iproute_class()\n"
        "import pyroute2\n"
        "from pyroute2 import IPRoute, NetlinkError\n"
        "print(json.dumps({'same': lean is IPRoute is pyroute2.IPRoute,\n"
        "  'error': NetlinkError.__name__, 'again': iproute_class() is IPRoute}))\n"
    )
    assert seen == {"same": True, "error": "NetlinkError", "again": True}


def test_a_package_imported_before_is_used_as_it_is() -> None:
    seen = _run(
        "import json, pyroute2\n"
        "from berth.network.pyroute import iproute_class\n"
        "print(json.dumps({'same': iproute_class() is pyroute2.IPRoute}))\n"
    )
    assert seen == {"same": True}
