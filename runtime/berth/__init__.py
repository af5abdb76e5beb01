"""Berth: a daemonless, systemd-native container runtime."""

from __future__ import annotations

from berth.version import PROTOCOL_VERSION, __version__

__all__ = ["PROTOCOL_VERSION", "__version__"]
