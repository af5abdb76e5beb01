"""`berth unit`: transient systemd services declared by a JSON spec, planned, then applied."""
