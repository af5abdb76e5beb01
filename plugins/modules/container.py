#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.container: options in, `berth container apply` on the host, its verdict out."""

from __future__ import annotations

DOCUMENTATION = r"""
module: container
short_description: Ensure a Berth container on a host
version_added: 0.1.0
description:
  - Ensures that a container is started, created, stopped, restarted or absent on the host. A
    Berth container is a transient systemd service in its own namespaces and cgroup, over an
    overlay of read-only image layers and a private writable layer.
  - The module is a thin client of the host's Berth runtime. It sends the desired container as a
    spec to C(berth container apply), which canonicalises it (sizes in bytes, capability names
    normalised, maps sorted, defaults filled in) and compares its hash with the hash the runtime
    recorded for the container. The container is re-created exactly when the two differ, so the
    module never re-creates a container whose options did not change and never misses one that did.
  - Options left out take the runtime's defaults (or the image's, for O(command), O(entrypoint),
    O(workdir), O(user) and O(env)); they do not mean "keep what the container has".
  - A container is immutable like its image, so any change of its spec replaces it (stop, remove,
    create, start). Its named volumes (O(mounts[].type=volume)) are kept.
author:
  - Berth maintainers (@berth-project)
extends_documentation_fragment:
  - berth.fleet.attributes
  - berth.fleet.attributes.actionable
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - berth.fleet.runtime
attributes:
  check_mode:
    details:
      - In check mode the runtime plans the change without making it (C(berth container apply --check));
        no unit, record, directory or image is created, changed or removed. RV(actions) lists the plan.
  diff_mode:
    details: The diff shows the container's status and canonical spec before and after.
  idempotent:
    support: partial
    details: O(state=restarted) restarts the container on every run, as asked.
options:
  name:
    description:
      - Name of the container, 1 to 63 letters, digits, C(_), C(.) or C(-), starting with a letter
        or digit. Its unit is C(berth-NAME.service).
    type: str
    required: true
  state:
    description:
      - V(started) runs the container; it is created (or re-created when its spec differs) first.
      - V(created) creates the container (or re-creates it when its spec differs) without starting it;
        a running container with the same spec is left running.
      - V(stopped) stops the container, keeping it (it is created, not started, when it does not exist).
      - V(restarted) stops and starts the container, on every run.
      - V(absent) stops the container and removes its unit, writable layer and record (not its named volumes).
    type: str
    choices: [started, created, stopped, restarted, absent]
    default: started
  image:
    description:
      - The image the container runs, by name (V(web:1), V(registry.example.com/app:2.1)), digest or ID.
      - It must be in the host's image store; M(berth.fleet.image) puts it there.
      - Exactly one of O(image), O(rootfs) and O(layers) is required unless O(state=absent).
    type: str
  rootfs:
    description:
      - An absolute path on the host to a directory used as the container's only read-only layer.
    type: path
  layers:
    description:
      - Absolute paths on the host of directories used as the container's read-only layers,
        lowest first.
    type: list
    elements: path
  command:
    description:
      - The command and its arguments (the image's C(CMD) when not set), as a list; no shell is involved.
      - A container from O(rootfs) or O(layers) needs O(command) or O(entrypoint).
    type: list
    elements: str
  entrypoint:
    description:
      - The entrypoint, as a list (the image's C(ENTRYPOINT) when not set); O(command) is appended to it.
    type: list
    elements: str
  env:
    description:
      - Environment variables, as a mapping of names to string values (added to the image's).
      - Numbers are converted to strings; booleans and nulls are refused, because YAML turns
        C(yes), C(on) or C(~) into values whose string form is ambiguous. Quote such values.
      - Values are part of the container's spec, so they show in diffs and in the runtime's records.
        Pass secret values as files with O(secrets) instead.
    type: dict
  workdir:
    description:
      - The working directory, an absolute path in the container (the image's C(WorkingDir), else C(/)).
    type: str
  user:
    description:
      - The user (and group) the process runs as, C(USER[:GROUP]) by name or ID (the image's
        C(User), else root).
    type: str
  hostname:
    description:
      - The container's host name (its O(name) when not set).
    type: str
  mounts:
    description:
      - Mounts in the container, in addition to its layers.
    type: list
    elements: dict
    suboptions:
      type:
        description:
          - V(bind) mounts a host path, V(volume) a named volume the runtime keeps under its data
            directory (created when missing, kept when the container is removed), V(tmpfs) a fresh tmpfs.
        type: str
        choices: [bind, volume, tmpfs]
        required: true
      source:
        description:
          - For V(bind), the absolute host path (it must exist); for V(volume), the volume's name.
            A V(tmpfs) takes none.
        type: str
      target:
        description:
          - Where the mount appears in the container, an absolute path.
        type: str
        required: true
      read_only:
        description:
          - Mount read-only.
        type: bool
        default: false
      size:
        description:
          - For V(tmpfs), its size limit (bytes, or a number with a V(K), V(M), V(G) suffix).
        type: str
      mode:
        description:
          - For V(tmpfs), the permissions of its root as an octal string such as V('1777').
          - Quote it. An unquoted YAML number such as C(0755) is refused, since YAML reads it as a
            decimal or octal integer.
        type: raw
      idmap:
        description:
          - For V(bind) with O(userns) other than V(host), show the source through the container's
            user namespace (podman's C(:idmap)) - the host's ids 0.. are the container's 0.. on this
            mount, so its root owns what the host's root owns and writes as the host's root there.
            Without it the container sees ids outside its range as C(nobody).
          - The source's filesystem must take idmapped mounts (ext4, xfs, btrfs, tmpfs on Linux
            6.3+, ...); one that cannot (overlayfs, NFS) is refused when the container is created.
        type: bool
        default: false
      nocopy:
        description:
          - For V(volume), do not fill a new volume with the image's files at O(mounts[].target)
            (podman's C(nocopy)). By default the first container that mounts a new, empty volume
            copies them up, once.
        type: bool
        default: false
  secrets:
    description:
      - Files on the host handed to the container as systemd credentials, read-only at
        C(/run/secrets/NAME) inside it.
      - Only the files' paths pass through Ansible and the runtime's records; their content goes from
        the host's file to the container by systemd and is never read by the module, shown in a diff,
        or written in a record.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The secret's name, the file name under C(/run/secrets) in the container.
        type: str
        required: true
      source:
        description:
          - Absolute path of the file on the host that holds the secret.
        type: path
        required: true
  read_only:
    description:
      - Mount the container's root file system read-only (the writable layer is not used).
    type: bool
  restart:
    description:
      - The restart policy, applied by systemd and at boot by C(berth-restore.service), one of
        V(no), V(always), V(on-failure) or V(on-failure:N) (at most N restarts).
    type: str
  stop_signal:
    description:
      - The signal that stops the container, by name (V(SIGTERM), V(TERM), V(SIGRTMIN+3)) or number.
    type: str
  stop_timeout:
    description:
      - Seconds between the stop signal and C(SIGKILL), 0 to 86400.
    type: int
  cap_add:
    description:
      - Capabilities added to the default set, such as V(NET_ADMIN) or V(CAP_SYS_TIME).
    type: list
    elements: str
  cap_drop:
    description:
      - Capabilities removed from the default set; V(ALL) drops every capability.
    type: list
    elements: str
  privileged:
    description:
      - Every capability, every device, no seccomp filter, no masked paths.
    type: bool
  no_new_privileges:
    description:
      - Set the process's C(no_new_privs) flag, so setuid programs cannot gain privileges.
    type: bool
  seccomp:
    description:
      - V(default) loads the runtime's default seccomp filter; V(unconfined) loads none.
    type: str
    choices: [default, unconfined]
  userns:
    description:
      - The user namespace. V(host) (the runtime's default) runs the container's root as the
        host's root. V(auto) maps the container's ids 0-65535 to a range of host ids of its
        own, the first free one of the pool (the C(containers) user's entries in C(/etc/subuid)
        and C(/etc/subgid), else 1879048192-2147352575), kept until the container is removed.
      - A mapping of C(uid), C(gid) and C(size) gives an explicit range
        (container ids 0 to size-1 are host ids uid to uid+size-1); it may not overlap another
        container's.
    type: raw
  sdnotify:
    description:
      - Who tells systemd that the container has started. With V(runtime) (the runtime's
        default) the start is done once the container's process runs. With V(container) the
        application itself sends C(READY=1) over the C(NOTIFY_SOCKET) it finds in its environment
        (as with podman's C(--sdnotify=container)); the task returns only once it did, and fails
        with the reason when the container exits first or O(start_timeout) passes.
    type: str
    choices: [runtime, container]
  start_timeout:
    description:
      - Seconds the start may take (with O(sdnotify=container), until C(READY=1) arrives).
        V(0) or unset leaves systemd's default.
    type: int
  labels:
    description:
      - Labels of the container, as a mapping of names to string values.
    type: dict
  slice:
    description:
      - The slice the container runs in. A group name such as V(web) or V(web-api) is the slice
        C(berth-web.slice) (nested in C(berth.slice)); a full slice unit name is used as it is.
        M(berth.fleet.slice) sets the group's resources. C(berth.slice) when not set.
    type: str
  network:
    description:
      - The container's network mode or network. V(none) (the default unless O(networks) is set) is a
        network namespace with only loopback; V(host) is the host's network namespace; V(bridge)
        joins the default network V(berth) (created on first use).
      - Any other value is the name of a network to join (its first interface, C(eth0), and its
        default route), such as one created with M(berth.fleet.network); it must exist when the
        container is created.
      - On a network, the container gets an address of its subnet, reaches the other containers
        of the network by name, and can publish O(ports).
    type: str
  networks:
    description:
      - Networks to join, in order, after the one O(network) names. Without O(network), the first
        of O(networks) is the container's first interface and default route.
        V(bridge) is the default network V(berth).
      - Joining networks needs O(network) to be unset, V(bridge) or a network's name.
      - The order is part of the spec, so changing it replaces the container.
    type: list
    elements: str
  ports:
    description:
      - Ports of the container published on the host, each as C([HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO])
        with PROTO V(tcp) (the default) or V(udp), such as V('8080:80'), V('127.0.0.1:8053:53/udp').
        Without HOSTIP, the port answers on every address of the host.
      - Connections to the host's port go to the container's address on its first network, so
        publishing ports needs a network (O(network) or O(networks)).
      - The runtime refuses a port that another container publishes or that a process of the host
        listens on, before it changes anything.
      - Quote each entry. YAML reads an unquoted C(2222:22) (a container port below 60) as the
        base-60 number 133342; the module refuses numbers for that reason.
      - The order does not matter; equal ports written differently (V('0.0.0.0:80:80/tcp') and
        V('80:80')) are the same spec.
    type: list
    elements: raw
  resources:
    description:
      - cgroup limits of the container. Limits that the host's cgroup hierarchy cannot enforce are
        reported as warnings.
      - Sizes are a number of bytes, a number with a V(K), V(M), V(G) or V(T) suffix (powers of
        1024) such as V(64M), or V(infinity). Equal sizes written differently (V(64M) and
        V(67108864)) are the same spec, so changing one into the other changes nothing.
      - Any change of resources re-creates the container, like any change of its spec.
    type: dict
    suboptions:
      memory_max:
        description:
          - Hard memory limit (C(MemoryMax=)), a size.
        type: str
      memory_high:
        description:
          - Memory throttling threshold (C(MemoryHigh=)), a size.
        type: str
      memory_swap_max:
        description:
          - Swap limit (C(MemorySwapMax=)), a size.
        type: str
      cpu_quota:
        description:
          - CPU time limit as a percentage of one CPU, such as V(20%) or V(150%).
        type: str
      cpu_weight:
        description:
          - Relative CPU share, from 1 to 10000.
        type: int
      io_weight:
        description:
          - Relative block I/O share, from 1 to 10000.
        type: int
      io_read_bandwidth_max:
        description:
          - 'Read bandwidth limits (C(IOReadBandwidthMax=)), a map of device to size per second
            such as C({"/dev/vda": "10M"}). The device is its node, or any file on the disk to
            limit (a partition''s disk is limited); a path that names no disk (missing, a character
            device, on tmpfs or overlayfs) is refused before anything changes, where systemd would
            only log it. V(infinity) lifts a device''s limit.'
        type: dict
      io_write_bandwidth_max:
        description:
          - Write bandwidth limits (C(IOWriteBandwidthMax=)), as O(resources.io_read_bandwidth_max).
            On cgroup v1, buffered writes are not throttled (the kernel's blkio limits only
            direct IO there).
        type: dict
      io_read_iops_max:
        description:
          - Read IO operations per second (C(IOReadIOPSMax=)), a map of device to a count. Enforced
            on cgroup v2 only; on v1 the result warns that it is not.
        type: dict
      io_write_iops_max:
        description:
          - Write IO operations per second (C(IOWriteIOPSMax=)), as O(resources.io_read_iops_max).
        type: dict
      tasks_max:
        description:
          - Maximum number of tasks, a number or V(infinity); V(2048) when not set.
        type: str
      cpus:
        description:
          - The CPUs the container may run on, such as V(0-1) or V(0,2).
        type: str
      nice:
        description:
          - The nice value of the container's process, from -20 to 19.
        type: int
seealso:
  - module: berth.fleet.container_info
  - module: berth.fleet.image
  - module: berth.fleet.slice
"""

EXAMPLES = r"""
- name: Run a web server from an image, in the slice web, with limits
  berth.fleet.container:
    name: web1
    image: web:1
    env:
      PORT: 8080
    slice: web
    restart: always
    resources:
      memory_max: 128M
      cpu_quota: 50%
  register: web1

- name: Say where it runs
  ansible.builtin.debug:
    msg: "{{ web1.container.unit }} runs as PID {{ web1.container.pid }}"

- name: A web server on the network shop, published on port 8080 of the host
  berth.fleet.container:
    name: web2
    image: web:1
    network: shop
    ports:
      - "8080:80"
      - "127.0.0.1:9090:9090/tcp"

- name: A hardened worker from a root file system, with a secret and a scratch tmpfs
  berth.fleet.container:
    name: worker
    rootfs: /srv/rootfs/worker
    command: [/bin/worker, --queue, jobs]
    user: "1000:1000"
    read_only: true
    cap_drop: [ALL]
    no_new_privileges: true
    secrets:
      - name: db_password
        source: /etc/worker/db_password
    mounts:
      - type: tmpfs
        target: /tmp
        size: 64M
        mode: "1777"
      - type: volume
        source: worker-data
        target: /data

- name: Create without starting
  berth.fleet.container:
    name: batch
    image: batch:3
    state: created

- name: Remove it
  berth.fleet.container:
    name: batch
    state: absent
"""

RETURN = r"""
container:
  description:
    - The container as the runtime describes it after the run; in check mode, as it is now.
    - Its RV(container.status) is V(absent) and the rest null when there is no container.
  returned: success
  type: dict
  contains:
    name:
      description: The container's name.
      type: str
      sample: web1
    status:
      description: V(absent), V(created), V(running), V(exited) or another lifecycle status.
      type: str
      sample: running
    unit:
      description: The systemd unit that runs the container.
      type: str
      sample: berth-web1.service
    spec_hash:
      description: The runtime's hash of the container's canonical spec; equal hashes mean equal containers.
      type: str
    spec:
      description: The container's recorded spec, canonical (defaults filled in, sizes in bytes).
      type: dict
    image:
      description: The image the container was created from (its digest and name), or null.
      type: dict
    layers:
      description: The read-only layers of the container, lowest first.
      type: list
      elements: str
    argv:
      description: The process the container runs (entrypoint and command).
      type: list
      elements: str
    pid:
      description: The main process ID on the host, or null when the container does not run.
      type: int
    control_group:
      description: The container's cgroup path.
      type: str
      sample: /berth.slice/berth-web1.service
    networks:
      description:
        - The container's network interfaces while it is attached (empty otherwise), first network first.
        - Each has C(network), C(ifname), C(address) and C(address6) (with prefix length), C(gateway),
          C(gateway6) and C(mac); the MAC follows from the address, so it stays the same across restarts.
      type: list
      elements: dict
    created_at:
      description: When the container was created (UTC).
      type: str
    started_at:
      description: When the container was last started (UTC).
      type: str
    finished_at:
      description: When the container last stopped (UTC).
      type: str
    exit:
      description: Why the container's process last ended (reason, exit code, signal), or null.
      type: dict
spec_hash:
  description:
    - The container's spec hash after the run (in check mode, its current one), the same as
      RV(container.spec_hash); null when there is no container.
  returned: success
  type: str
actions:
  description:
    - The changes made, in order (such as V(stop), V(remove), V(create), V(start)); in check mode,
      the changes that would be made.
    - On failure, the changes made before the failure.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: The kind of change.
      type: str
      sample: create
    target:
      description: What it changed.
      type: str
      sample: web1
    detail:
      description: Further facts about the change.
      type: dict
      returned: when the runtime gives any
error:
  description: Why the module failed, typed for C(failed_when).
  returned: failure
  type: dict
  contains:
    kind:
      description:
        - The runtime's error kind (such as V(invalid-input), V(not-found), V(conflict) or
          V(start-failed)), or this collection's (V(runtime-missing), V(protocol-mismatch),
          V(bad-response), V(invalid-option)).
      type: str
      sample: invalid-input
    details:
      description: Facts about the failure, by kind.
      type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import (
    apply,
    change_result,
    run_module,
)
from ansible_collections.berth.fleet.plugins.module_utils._options import (
    resources_option,
    set_options,
    string_map,
)
from ansible_collections.berth.fleet.plugins.module_utils._runtime import InvalidOption

STATES = ["started", "created", "stopped", "restarted", "absent"]
SOURCES = ["image", "rootfs", "layers"]

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "started", "choices": STATES},
    "image": {"type": "str"},
    "rootfs": {"type": "path"},
    "layers": {"type": "list", "elements": "path"},
    "command": {"type": "list", "elements": "str"},
    "entrypoint": {"type": "list", "elements": "str"},
    "env": {"type": "dict"},
    "workdir": {"type": "str"},
    "user": {"type": "str"},
    "hostname": {"type": "str"},
    "mounts": {
        "type": "list",
        "elements": "dict",
        "options": {
            "type": {"type": "str", "required": True, "choices": ["bind", "volume", "tmpfs"]},
            "source": {"type": "str"},
            "target": {"type": "str", "required": True},
            "read_only": {"type": "bool", "default": False},
            "size": {"type": "str"},
            "mode": {"type": "raw"},
            "idmap": {"type": "bool", "default": False},
            "nocopy": {"type": "bool", "default": False},
        },
    },
    # Paths of files on the host, not secret values: their content never passes through Ansible.
    "secrets": {
        "type": "list",
        "elements": "dict",
        "no_log": False,
        "options": {
            "name": {"type": "str", "required": True},
            "source": {"type": "path", "required": True},
        },
    },
    "read_only": {"type": "bool"},
    "restart": {"type": "str"},
    "stop_signal": {"type": "str"},
    "stop_timeout": {"type": "int"},
    "cap_add": {"type": "list", "elements": "str"},
    "cap_drop": {"type": "list", "elements": "str"},
    "privileged": {"type": "bool"},
    "no_new_privileges": {"type": "bool"},
    "seccomp": {"type": "str", "choices": ["default", "unconfined"]},
    "userns": {"type": "raw"},
    "sdnotify": {"type": "str", "choices": ["runtime", "container"]},
    "start_timeout": {"type": "int"},
    "labels": {"type": "dict"},
    "slice": {"type": "str"},
    "network": {"type": "str"},
    "networks": {"type": "list", "elements": "str"},
    "ports": {"type": "list", "elements": "raw"},
    "resources": resources_option(cpus={"type": "str"}, nice={"type": "int"}),
}
# Every option but these is a field of the runtime's container spec, under the same name.
NOT_SPEC = {"state", "runtime_path"}


def mount_entries(mounts):
    entries = []
    for index, mount in enumerate(mounts):
        mode = mount.get("mode")
        if mode is not None and not isinstance(mode, str):
            raise InvalidOption(
                f"mounts[{index}].mode must be a quoted octal string such as '1777', not the "
                f"{type(mode).__name__} {mode!r} (YAML reads an unquoted 0755 as a number)",
                details={"option": "mounts", "index": index},
            )
        for flag in ("read_only", "idmap", "nocopy"):
            if not mount.get(flag):
                mount.pop(flag, None)  # false is the runtime's default: one spelling, one hash
        entries.append(mount)
    return entries


def port_entries(ports):
    """The published ports as the runtime reads them; numbers are refused (YAML's base-60 trap)."""
    for index, port in enumerate(ports):
        if isinstance(port, str):
            continue
        if isinstance(port, int) and not isinstance(port, bool) and port >= 60:
            hint = (
                f": YAML reads an unquoted {port // 60}:{port % 60} as the base-60 number {port}; "
                f"quote it ('{port // 60}:{port % 60}')"
            )
        else:
            hint = ""
        raise InvalidOption(
            f"ports[{index}] must be a quoted string such as '8080:80', not the "
            f"{type(port).__name__} {port!r}{hint}",
            details={"option": "ports", "index": index},
        )
    return list(ports)


def container_spec(params):
    """The runtime's container spec from the module's options; unset options are left to it."""
    spec = set_options(params, ARGUMENT_SPEC, [key for key in ARGUMENT_SPEC if key not in NOT_SPEC])
    for option in ("env", "labels"):
        if option in spec:
            spec[option] = string_map(option, spec[option])
    if "mounts" in spec:
        spec["mounts"] = mount_entries(spec["mounts"])
    if "ports" in spec:
        spec["ports"] = port_entries(spec["ports"])
    if isinstance(spec.get("userns"), dict):  # templated numbers arrive as strings
        ids = spec["userns"]
        spec["userns"] = {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in ids.items()}
    return spec


def request(params):
    """The document `berth container apply` reads on stdin."""
    if params["state"] == "absent":
        return {"state": "absent", "name": params["name"]}
    return {"state": params["state"], "spec": container_spec(params)}


def apply_container(module):
    response = apply(module, ["container", "apply", "-f", "-"], spec=request(module.params))
    data = dict(response.data or {})
    data.pop("check_mode", None)
    return change_result(module, response, container=data, spec_hash=data.get("spec_hash"))


def main():
    required_if = [("state", state, SOURCES, True) for state in STATES if state != "absent"]
    run_module(ARGUMENT_SPEC, apply_container, mutually_exclusive=[SOURCES], required_if=required_if)


if __name__ == "__main__":
    main()
