"""pyroute2's IPRoute, imported without the package's `__init__`.

`import pyroute2` (0.7 and 0.9 alike) imports every netlink family the library knows up front:
NDB, IPDB, conntrack, devlink, ipset, IPVS, nl80211, WireGuard, plan9, ... Berth needs only
`pyroute2.iproute.linux.IPRoute`, and the rest was half of the import, which was itself most of
what a bridge network adds to a container start (bench/network.py). Python has no switch for a
lazy package, and importlib's LazyLoader runs `__init__` at the first attribute read (the import
system reads `__path__` to find any submodule), so this registers the package module without
running its `__init__` and runs it only if some code asks for a name that only `__init__` defines.
Any surprise (a packaging of pyroute2 without this layout) falls back to the plain import.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

PACKAGE = "pyroute2"


def iproute_class() -> Any:
    if PACKAGE not in sys.modules:
        try:
            _register_lazy_package()
            from pyroute2.iproute.linux import IPRoute as lean

            return lean
        except ImportError:
            sys.modules.pop(PACKAGE, None)
            for name in [m for m in sys.modules if m.startswith(f"{PACKAGE}.")]:
                del sys.modules[name]
    elif "__getattr__" in sys.modules[PACKAGE].__dict__:  # registered lazily by an earlier call
        return importlib.import_module(f"{PACKAGE}.iproute.linux").IPRoute
    from pyroute2 import IPRoute

    return IPRoute


def _register_lazy_package() -> None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not an importable package")
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def __getattr__(name: str) -> Any:  # PEP 562: only for names the module does not have yet
        if name.startswith("__"):
            raise AttributeError(name)
        try:  # `from pyroute2 import config` asks for a submodule: import just that
            return importlib.import_module(f"{PACKAGE}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{PACKAGE}.{name}":
                raise
        del package.__dict__["__getattr__"]  # a name from __init__ itself: run it now, once
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = __getattr__
    sys.modules[PACKAGE] = package
