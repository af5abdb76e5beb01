"""Talking to systemd over D-Bus: the bus adapter, the client, unit names and property typing."""
