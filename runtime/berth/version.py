"""Versions of the runtime and of the JSON contract the Ansible modules speak."""

from __future__ import annotations

__version__ = "0.1.0"

# Bumped on any incompatible change of `berth ... --json` output or input. The collection's
# module_utils refuses to talk to a runtime whose protocol it does not know.
PROTOCOL_VERSION = 1
