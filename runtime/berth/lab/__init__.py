"""`berth lab`: a fleet of real systemd hosts on one machine, for tests and demos.

Each host is systemd 252 as PID 1 in its own pid/mount/uts/ipc/cgroup/net namespaces, booted
over an overlay of the machine's root (never on the root itself: systemd's boot-time cleanup
would wipe the machine's /tmp). See docs/lab.md.
"""
