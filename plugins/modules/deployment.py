#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.deployment: a spec in, `berth deploy|rollback|undeploy` on the host, its verdict out."""

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment
short_description: Deploy an app as an immutable, health-gated revision; roll it back
version_added: 0.1.0
description:
  - Ensures that a named app (a deployment of one or more containers) runs a revision made from
    the given spec on the host, through the host's Berth runtime (C(berth deploy)).
  - A revision is frozen when it is made (image tags resolved to digests, bind-mounted files
    hashed). Deploying the same content again changes nothing. A new revision is started beside
    the serving one, must pass its health gate, and then takes the service ports over in one
    nftables transaction; the old revision is stopped and kept for rollback.
  - When the new revision fails its gate (it cannot start, exits, is OOM-killed, or never becomes
    healthy) the runtime goes back to the revision that served, without dropping its traffic, and
    the module fails with the reason in the C(details) of the error.
  - O(state=rolled_back) goes back to a kept revision (O(revision), or the one before the current),
    or undoes what a fleet-wide rollout did on this host (O(undo_rollout)). It needs no registry.
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
    details: The runtime plans the deploy or rollback (images are resolved) without changing anything.
  diff_mode:
    details: The serving revision and its content hash, before and after.
  idempotent:
    description: Deploying the same spec again, or rolling back to the serving revision, changes nothing.
options:
  name:
    description: Name of the deployment (1-30 lowercase letters, digits or C(-)).
    type: str
    required: true
  state:
    description:
      - V(deployed) makes the spec's content serve (a new revision, or a kept one with equal content).
      - V(rolled_back) goes back to O(revision), to the revision before O(undo_rollout), or to the
        revision before the current one.
      - V(absent) removes the deployment with all its revisions and containers.
    type: str
    choices: [deployed, rolled_back, absent]
    default: deployed
  containers:
    description:
      - The roles of the app, each a container spec without a name plus C(role), service C(ports)
        (moved between revisions by the traffic switch) and C(health) (one of C(exec), C(tcp),
        C(http), C(image) or C(notify), with C(start_period), C(interval), C(timeout), C(retries),
        C(min_healthy) and C(deadline)). See the collection's docs/deployments.md.
      - C(health.notify=true) (or the container field C(sdnotify=container)) waits for the app's own
        sd_notify C(READY=1) on C($NOTIFY_SOCKET); without it within C(deadline) the gate fails.
      - C(liveness) keeps a probe running after the deploy (C(exec), C(tcp), C(http) or C(image);
        the role's health probe when none is given), with C(interval), C(timeout), C(start_period),
        C(failures) (in a row) and C(action) (C(restart) or C(none)), in the unit
        C(berth-monitor@NAME.service); its results are in C(monitor) of RV(status).
      - Required when O(state=deployed).
    type: list
    elements: dict
  strategy:
    description:
      - V(start-first) runs the new revision beside the old one; V(stop-first) stops the old one first.
    type: str
    choices: [start-first, stop-first]
  keep:
    description: How many revisions to keep (the serving one included); their images are protected from prune.
    type: int
  drain:
    description: Seconds the old revision keeps running after the switch, for its open connections.
    type: float
  slice:
    description: The slice of every container that names none.
    type: str
  revision:
    description: With O(state=rolled_back), the kept revision to go back to.
    type: int
  undo_rollout:
    description:
      - With O(state=rolled_back), undo what the rollout of this id did on the host.
      - Nothing happens on a host the rollout did not move.
    type: str
  rollout:
    description: The id of the fleet-wide rollout this change belongs to, recorded on the host.
    type: str
"""

EXAMPLES = r"""
- name: Deploy version 2 of the shop
  berth.fleet.deployment:
    name: shop
    rollout: "{{ rollout_id }}"
    containers:
      - role: web
        image: registry.example/shop:2
        ports: ["8080:80"]
        health:
          http: {port: 80, path: /healthz}
          interval: 200ms
          retries: 3
          min_healthy: 1s
        liveness:
          interval: 5s
          failures: 3
          action: restart

- name: Deploy an app that says itself when it is ready (sd_notify READY=1)
  berth.fleet.deployment:
    name: queue
    containers:
      - role: worker
        image: registry.example/queue:7
        health:
          notify: true
          deadline: 30s

- name: Back to revision 4
  berth.fleet.deployment:
    name: shop
    state: rolled_back
    revision: 4

- name: Undo a whole rollout on this host
  berth.fleet.deployment:
    name: shop
    state: rolled_back
    undo_rollout: "{{ rollout_id }}"
"""

RETURN = r"""
revision:
  description: The revision that serves after the run (null when none does).
  returned: success
  type: int
previous:
  description: The revision that served before the run.
  returned: success
  type: int
digests:
  description: Image digest of each role of the serving revision.
  returned: success
  type: dict
serving:
  description: Every container of the serving revision runs and holds its service ports.
  returned: success
  type: bool
health:
  description: The health gate's result for the serving revision.
  returned: success
  type: dict
timings:
  description: Seconds per step of the operation (C(gate), C(switch-traffic), ...) and C(total).
  returned: success
  type: dict
status:
  description:
    - The runtime's full status of the deployment (C(berth status NAME --json)).
    - C(monitor) is the liveness monitor (null without liveness checks) with C(unit), C(running),
      C(revision), per role C(roles) (C(failures) in a row, C(failed_total), C(restarts), C(last))
      and C(events) (what it did).
  returned: success
  type: dict
actions:
  description:
    - The changes made, in order (in check mode, the planned ones).
    - On failure, those made, the automatic rollback included.
  returned: always
  type: list
  elements: dict
error:
  description: Why the module failed. For V(deploy-failed), C(details) has C(revision) (the one that failed),
    C(serving) (the one that serves now) and C(health) (reason, probe output, exit, last log lines).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import (
    apply,
    change_result,
    run_module,
)

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "deployed", "choices": ["deployed", "rolled_back", "absent"]},
    "containers": {"type": "list", "elements": "dict"},
    "strategy": {"type": "str", "choices": ["start-first", "stop-first"]},
    "keep": {"type": "int"},
    "drain": {"type": "float"},
    "slice": {"type": "str"},
    "revision": {"type": "int"},
    "undo_rollout": {"type": "str"},
    "rollout": {"type": "str"},
}
SPEC_FIELDS = ("containers", "strategy", "keep", "drain", "slice")


def deployment_spec(params):
    spec = {key: params[key] for key in SPEC_FIELDS if params.get(key) is not None}
    spec["name"] = params["name"]
    return spec


def _payload(response):
    data = response.data or {}
    digests = data.get("digests") or {}
    return {
        "revision": data.get("current"),
        "previous": data.get("previous"),
        "digests": digests,
        "serving": data.get("serving"),
        "health": data.get("health"),
        "timings": data.get("timings") or {},
        "status": data,
    }


def converge(module):
    p = module.params
    rollout = ["--rollout", p["rollout"]] if p.get("rollout") else []
    if p["state"] == "deployed":
        args = ["deploy", p["name"], "-f", "-", *rollout]
        response = apply(module, args, spec=deployment_spec(p))
    elif p["state"] == "rolled_back":
        args = ["rollback", p["name"], *rollout]
        if p.get("revision") is not None:
            args += ["--to", str(p["revision"])]
        if p.get("undo_rollout"):
            args += ["--undo", p["undo_rollout"]]
        response = apply(module, args)
    else:
        response = apply(module, ["undeploy", p["name"]])
        return change_result(module, response, revision=None, previous=None)
    return change_result(module, response, **_payload(response))


def main():
    run_module(
        ARGUMENT_SPEC,
        converge,
        required_if=[("state", "deployed", ["containers"])],
        mutually_exclusive=[("revision", "undo_rollout")],
    )


if __name__ == "__main__":
    main()
