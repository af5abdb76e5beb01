"""Suite-wide ordering: the longest test files first.

`make test` runs the files on two pytest-xdist workers (`--dist loadfile`: a file never splits,
so its module fixtures and its lab host stay on one worker). Handing out the longest files first
is what keeps both workers busy until the end; in a plain serial run the order changes nothing.
"""

from __future__ import annotations

import pytest

# Seconds per file in a serial run on the 2-core CI machine (`--durations=0`), longest first.
# A file missing here runs after these, in collection order.
LONGEST_FIRST = [
    "tests/integration/test_molecule.py",
    "tests/integration/test_demo.py",
    "tests/integration/test_module_container.py",
    "tests/integration/test_containers.py",
    "tests/integration/test_network.py",
    "tests/integration/test_module_unit.py",
    "tests/integration/test_deploy_fleet.py",
    "tests/integration/test_lab.py",
    "tests/integration/test_deploy_durability.py",
    "tests/integration/test_faults.py",
    "tests/integration/test_escapes.py",
    "tests/integration/test_restore.py",
    "tests/integration/test_images_registry.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable sort
