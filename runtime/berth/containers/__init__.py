"""Containers: a validated spec becomes a shim config and a transient systemd service."""
