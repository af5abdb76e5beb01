#!/usr/bin/python
# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.fleet.image: options in, `berth image apply` on the host, its verdict out."""

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Ensure an image in a host's Berth image store
version_added: 0.1.0
description:
  - Ensures that an image is present in the host's content-addressed image store under O(name) -
    pulled from a registry, built from a Containerfile, or imported from an archive on the host or
    on the controller - or that O(name) is absent. Optionally gives it more names (O(tags)) and
    pushes it.
  - The module is a thin client of the host's Berth runtime (C(berth image apply)), which decides
    by content digests, never by timestamps or fuzzy output.
  - V(pull) and V(build) do nothing when O(name) is already in the store, unless O(force). A forced
    pull fetches only what the registry has and the store lacks, and reports a change only then; a
    forced build reports a change only when O(name) ends up naming another image (a fully cached
    rebuild gives the very same digest).
  - V(import) commits only what the archive holds and the store lacks. A root file system tarball is
    imported with a fixed creation date (O(archive.source_date_epoch)), so the same tarball always
    gives the same image.
  - With O(archive.location=controller) the archive is on the controller, for fleets without
    registry access. The action plugin reads which image it holds from its index (an OCI layout's
    manifest digest, a C(docker save) archive's image ID) without unpacking it, and copies it to a
    host only when that host's store lacks that image; the copy is removed after the import.
  - O(tags) and O(push) change only what differs; a push is skipped when the registry already
    serves this very manifest under the destination name.
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
      - In check mode nothing is fetched, built, written, tagged, pushed or removed. A pull resolves
        the manifest on the registry (a read) to say what it would fetch; an import reads the archive.
      - With O(archive.location=controller), check mode copies nothing; an import the host needs is
        reported as one V(import) action.
      - A build cannot be predicted without running its C(RUN) steps, so in check mode a build
        that would run (O(name) missing, or O(force)) is reported as a change, with a warning when
        O(force) is set.
  diff_mode:
    details: The diff shows whether O(name) is present, and the image's digest and names, before and after.
options:
  name:
    description:
      - The image's reference, such as V(web:1), V(busybox) or V(registry.example.com/team/app:2.1).
      - A name without a registry is local (C(localhost/NAME)) to the store, and means Docker Hub
        when pulled, as with podman.
      - With O(state=absent), a digest or ID also works.
    type: str
    required: true
  state:
    description:
      - V(present) makes O(name) name an image in the store.
      - V(absent) removes the name; the image itself is removed when no other name refers to it,
        and then the layers and blobs nothing else uses.
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - Where a missing image comes from. V(pull) (the default, unless O(build) or O(archive) is set)
        pulls O(name) from its registry; V(build) builds O(build.context); V(import) imports
        O(archive.path); V(local) only checks that O(name) is in the store and fails when it is not.
    type: str
    choices: [pull, build, import, local]
  force:
    description:
      - With V(pull), ask the registry for the current image even when O(name) is in the store.
      - With V(build), build even when O(name) is in the store (cached steps are reused).
      - With O(state=absent), remove the image even when containers use it.
    type: bool
    default: false
  platform:
    description:
      - The platform to pull from a multi-platform image, C(OS/ARCH[/VARIANT]) such as V(linux/arm64);
        the host's when not set.
    type: str
  tags:
    description:
      - More names for the image, set on the host after it is present.
    type: list
    elements: str
  push:
    description:
      - Push the image to a registry after it is present, to O(push_destination) or O(name).
    type: bool
    default: false
  push_destination:
    description:
      - Where to push, C(REGISTRY/NAME[:TAG]); O(name) when not set.
    type: str
  registry:
    description:
      - How to reach and log in to the registry of a pull, a push, or a build's base image.
    type: dict
    suboptions:
      username:
        description:
          - The user name to log in with.
        type: str
      password:
        description:
          - The password or token. It goes to the runtime on its standard input, never on a
            command line, and is never shown in the module's output.
        type: str
      auth_file:
        description:
          - 'A C(containers-auth.json) file on the host (C({"auths": {...}})) to read credentials from
            when O(registry.username) is not set.'
        type: path
      insecure:
        description:
          - Talk plain HTTP (meant for registries on the loopback or a lab network).
        type: bool
        default: false
      ca_cert:
        description:
          - A CA bundle on the host to trust for the registry's TLS certificate.
        type: path
      retries:
        description:
          - How many times to retry a transient failure (connection cut, stall, 429, 5xx).
        type: int
        default: 4
      timeout:
        description:
          - Seconds to wait for the registry (to connect, to answer, for the next bytes) before an
            attempt counts as failed; also the longest a manifest or token may take to arrive whole.
        type: float
        default: 30
      min_rate:
        description:
          - The slowest a blob download may be, in bytes per second averaged over each
            O(registry.timeout) seconds, before the attempt counts as failed (a registry that sends a
            byte now and then would otherwise hold a pull open for days). V(0) sets no floor.
        type: int
        default: 1024
  build:
    description:
      - Build the image from a Containerfile on the host (its C(RUN) steps run in Berth containers).
    type: dict
    suboptions:
      context:
        description:
          - The build context directory on the host.
        type: path
        required: true
      file:
        description:
          - The Containerfile; C(Containerfile) or C(Dockerfile) in O(build.context) when not set.
        type: path
      target:
        description:
          - The stage of a multi-stage Containerfile to build and stop at, by its C(AS) name or its
            index (V(0) is the first C(FROM)); the last stage when not set.
          - Only the stages the target needs are built. As with the other build options, a change of
            target rebuilds only with O(force) (when O(name) is already in the store).
        type: str
      args:
        description:
          - Build arguments (C(ARG)), as a mapping of names to string values.
        type: dict
      no_cache:
        description:
          - Run every step again instead of reusing cached results.
        type: bool
        default: false
      reproducible:
        description:
          - Fixed timestamps, so the same input gives the same digest.
        type: bool
        default: false
      source_date_epoch:
        description:
          - The timestamp (seconds since the epoch) of a reproducible build.
        type: int
  archive:
    description:
      - Import the image from an archive - an OCI layout (directory or tar), a C(docker save)
        archive, or a root file system tarball - on the host or on the controller
        (O(archive.location)).
    type: dict
    suboptions:
      path:
        description:
          - The archive on the host, or with O(archive.location=controller) on the controller (a
            relative path is searched for as M(ansible.builtin.copy) searches its C(src), in a
            role's C(files) first).
          - Required unless O(archive.digest) is set.
        type: path
      location:
        description:
          - Where O(archive.path) is. V(controller) takes a tar of an OCI layout holding one
            single-platform image, or a C(docker save) archive of one image (their image is known
            before the import; a root file system tarball's is not).
          - The result's RV(transferred) says whether the archive was copied.
        type: str
        choices: [host, controller]
        default: host
      digest:
        description:
          - The image the archive holds, by its manifest digest or its ID (C(sha256:...)). When the
            store has that image, O(name) is pointed at it and the archive is not read (it need not
            exist); when it is imported, the archive must hold that image, or nothing is imported.
          - Set by the action plugin with O(archive.location=controller); leave it unset there.
        type: str
      format:
        description:
          - The archive's format; V(auto) tells it from its content.
        type: str
        choices: [auto, oci, docker-archive, rootfs]
        default: auto
      changes:
        description:
          - For a root file system tarball, Containerfile instructions for its config, such as
            V(CMD ["/bin/sh"]) or V(ENV A=1).
        type: list
        elements: str
      source_date_epoch:
        description:
          - For a root file system tarball, the image's creation date (seconds since the epoch).
        type: int
        default: 0
notes:
  - The action plugin that copies an archive from the controller runs the module up to twice - once
    in check mode to ask whether the host has the archive's image (a no-op run ends there), then,
    when something changes, for real, after the copy if one is needed.
seealso:
  - module: berth.fleet.image_info
  - module: berth.fleet.container
"""

EXAMPLES = r"""
- name: Pull an image from a private registry
  berth.fleet.image:
    name: registry.example.com/shop/api:4.2
    registry:
      username: deploy
      password: "{{ vault_registry_password }}"

- name: Build an image from a Containerfile on the host, and give it a second name
  berth.fleet.image:
    name: web:1
    build:
      context: /srv/build/web
      args:
        VERSION: "1.0"
    tags:
      - web:latest

- name: Import a root file system tarball that was copied to the host
  berth.fleet.image:
    name: base:12
    archive:
      path: /var/tmp/base.tar
      changes:
        - CMD ["/bin/sh"]

- name: Import a docker save archive kept on the controller, copied only to hosts without its image
  berth.fleet.image:
    name: app:2
    archive:
      path: images/app-2.tar
      location: controller

- name: Build the test stage of a multi-stage Containerfile
  berth.fleet.image:
    name: web:1-test
    build:
      context: /srv/build/web
      target: test

- name: Push it to a registry
  berth.fleet.image:
    name: web:1
    source: local
    push: true
    push_destination: registry.example.com/shop/web:1

- name: Remove a name (and the image, once no name refers to it)
  berth.fleet.image:
    name: web:0
    state: absent
"""

RETURN = r"""
image:
  description:
    - The image O(name) names after the run (in check mode, before it); null when there is none.
  returned: success
  type: dict
  contains:
    digest:
      description: The image's manifest digest.
      type: str
      sample: sha256:1091d3c5862bbb53274444d3ae8e551e150963386600dcefbe2ad6fbc903921d
    id:
      description: The image's ID (its config's digest).
      type: str
    tags:
      description: Every name of the image in the store.
      type: list
      elements: str
      sample: [localhost/web:1, localhost/web:latest]
digest:
  description:
    - The digest O(name) names (in check mode, would name); null with O(state=absent), and in check
      mode for a build that would run.
  returned: success
  type: str
actions:
  description:
    - The changes made (such as V(fetch-blob), V(unpack-layer), V(record-image), V(build), V(tag),
      V(upload-blob), V(put-manifest), V(untag), V(remove-image)); in check mode, the changes that
      would be made.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: The kind of change.
      type: str
      sample: tag
    target:
      description: What it changed.
      type: str
      sample: localhost/web:latest
    detail:
      description: Further facts about the change.
      type: dict
      returned: when the runtime gives any
transferred:
  description:
    - Whether the archive was copied from the controller (V(false) when the host had its image, and
      in check mode).
  returned: with O(archive.location=controller)
  type: bool
archive_image:
  description:
    - The image the controller's archive holds, as read from its index (manifest digest of an OCI
      layout, image ID of a C(docker save) archive).
  returned: with O(archive.location=controller)
  type: str
error:
  description: Why the module failed, typed for C(failed_when); see M(berth.fleet.container).
  returned: failure
  type: dict
"""

from ansible_collections.berth.fleet.plugins.module_utils._module import (
    apply,
    change_result,
    run_module,
)
from ansible_collections.berth.fleet.plugins.module_utils._options import set_options, string_map
from ansible_collections.berth.fleet.plugins.module_utils._runtime import InvalidOption

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "source": {"type": "str", "choices": ["pull", "build", "import", "local"]},
    "force": {"type": "bool", "default": False},
    "platform": {"type": "str"},
    "tags": {"type": "list", "elements": "str"},
    "push": {"type": "bool", "default": False},
    "push_destination": {"type": "str"},
    "registry": {
        "type": "dict",
        "options": {
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "auth_file": {"type": "path"},
            "insecure": {"type": "bool", "default": False},
            "ca_cert": {"type": "path"},
            "retries": {"type": "int", "default": 4},
            "timeout": {"type": "float", "default": 30},
            "min_rate": {"type": "int", "default": 1024},
        },
        "required_by": {"password": "username"},
    },
    "build": {
        "type": "dict",
        "options": {
            "context": {"type": "path", "required": True},
            "file": {"type": "path"},
            "target": {"type": "str"},
            "args": {"type": "dict"},
            "no_cache": {"type": "bool", "default": False},
            "reproducible": {"type": "bool", "default": False},
            "source_date_epoch": {"type": "int"},
        },
    },
    "archive": {
        "type": "dict",
        "options": {
            "path": {"type": "path"},
            "location": {"type": "str", "default": "host", "choices": ["host", "controller"]},
            "digest": {"type": "str"},
            "format": {
                "type": "str",
                "default": "auto",
                "choices": ["auto", "oci", "docker-archive", "rootfs"],
            },
            "changes": {"type": "list", "elements": "str"},
            "source_date_epoch": {"type": "int", "default": 0},
        },
        "required_one_of": [("path", "digest")],
    },
}
# Options that obtain or publish an image: meaningless, so refused, with state=absent.
PRESENT_ONLY = ("source", "build", "archive", "tags", "push_destination", "platform")
SOURCE_OPTION = {"build": "build", "import": "archive"}


def check_conflicts(params):
    """What the argument spec cannot say: options that contradict each other."""
    if params["state"] == "absent":
        given = [key for key in PRESENT_ONLY if params.get(key)]
        if params["push"]:
            given.append("push")
        if given:
            raise InvalidOption(
                f"state=absent conflicts with {', '.join(given)}: an image to remove is not obtained, "
                "tagged or pushed",
                details={"conflicts": given},
            )
    source = params.get("source")
    for wanted, option in SOURCE_OPTION.items():
        if params.get(option) is not None and source not in (None, wanted):
            raise InvalidOption(
                f"source={source} conflicts with {option} (which means source={wanted})",
                details={"conflicts": ["source", option]},
            )
    if params.get("push_destination") and not params["push"]:
        raise InvalidOption("push_destination needs push=true", details={"conflicts": ["push_destination"]})


def image_request(params):
    """The document `berth image apply` reads on stdin (the password included: stdin only)."""
    check_conflicts(params)
    doc = set_options(params, ARGUMENT_SPEC, ["name", "state", "source", "force", "platform", "tags"])
    registry = set_options(params, ARGUMENT_SPEC, ["registry"]).get("registry")
    if registry:
        if "auth_file" in registry:
            registry["authfile"] = registry.pop("auth_file")
        doc["registry"] = registry
    build = set_options(params, ARGUMENT_SPEC, ["build"]).get("build")
    if build is not None:
        if "args" in build:
            build["args"] = string_map("build.args", build["args"])
        doc["build"] = build
    archive = set_options(params, ARGUMENT_SPEC, ["archive"]).get("archive")
    if archive is not None:
        if archive.pop("location", "host") == "controller":
            # The action plugin copies the archive and sends its host path; a module run without
            # it (such as a bare `ansible -m`) cannot reach the controller's file system.
            raise InvalidOption(
                "archive.location=controller needs the berth.fleet.image action plugin, which copies "
                "the archive to the host; it did not run",
                details={"option": "archive.location"},
            )
        doc["import"] = archive
    if params["push"]:
        doc["push"] = {"destination": params["push_destination"]} if params.get("push_destination") else {}
    return doc


def apply_image(module):
    response = apply(module, ["image", "apply", "-f", "-"], spec=image_request(module.params))
    data = response.data or {}
    image = data.get("image")
    if module.check_mode:
        image = ((response.diff or {}).get("before") or {}).get("image")
    return change_result(module, response, image=image, digest=data.get("digest"))


def main():
    run_module(
        ARGUMENT_SPEC,
        apply_image,
        mutually_exclusive=[("build", "archive")],
        required_if=[("source", "build", ["build"]), ("source", "import", ["archive"])],
    )


if __name__ == "__main__":
    main()
