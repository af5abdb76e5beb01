"""The container init shim: the ExecStart of every container unit.

systemd 252 cannot create a pid namespace or pivot into an overlay, so the unit runs this
shim first. It builds the container (namespaces, overlay root, /proc, /sys, /dev, files,
mounts, masks), starts the container's process as PID 1 of its own pid namespace, tells
systemd that process is the unit's main PID (sd_notify MAINPID + READY), and exits: no
Berth process stays resident beside a running container. systemd, the container's new
parent, then reaps it and records its exit status itself.

Only the standard library and berth.kernel are imported: the shim is on the start path of
every container and must start in milliseconds.
"""
