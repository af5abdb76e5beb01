"""Stand-in for pip's get-pip.py, which ansible-test downloads from a host this network cannot reach.

ansible-test runs it as `python get_pip.py [pip options] pip==X ...` to put pip into each empty
sanity virtual environment. This does the same with the interpreter's bundled ensurepip, then
installs the pinned packages from the package index as usual.
"""

from __future__ import annotations

import subprocess
import sys

IMPLICIT_PACKAGE_FLAGS = ("--no-setuptools", "--no-wheel")


def main() -> None:
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, capture_output=True)
    args = [arg for arg in sys.argv[1:] if arg not in IMPLICIT_PACKAGE_FLAGS]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], check=True)


if __name__ == "__main__":
    main()
