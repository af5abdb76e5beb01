"""Freezing a spec into revision content: images resolved to digests, mounted files hashed.

Tags move; digests do not. A revision records the manifest digest each role's image had when the
revision was made, and its containers are created from that digest, so a rollback starts exactly
what ran before (and needs no registry: the store keeps the image while a kept revision holds it).
The content hash covers the roles with their digests and the hashes of the config files they
bind-mount: deploying the same content again is a no-op, and a rebuilt tag or an edited config
file makes a new revision.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from berth.containers.spec import ContainerSpec
from berth.deployments.health import from_image
from berth.deployments.spec import DeploymentSpec, Role, container_name
from berth.errors import InvalidInput

MAX_HASHED_BYTES = 64 << 20  # a bind-mounted tree bigger than this is hashed by metadata only


@dataclass(frozen=True)
class Frozen:
    """Revision content: roles with digests, image facts per role, file hashes, and its hash."""

    roles: tuple[Role, ...]
    images: dict[str, dict[str, Any]]
    files: dict[str, str]

    def content(self) -> dict[str, Any]:
        return {"roles": [r.to_json() for r in self.roles], "files": self.files}

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _hash_path(path: Path) -> str:
    """sha256 over a file, or over a tree's names, modes and contents (symlinks by target)."""
    h = hashlib.sha256()
    budget = MAX_HASHED_BYTES
    if path.is_file():
        entries = [path]
        base = path.parent
    else:
        entries = sorted(p for p in path.rglob("*"))
        base = path
    for p in entries:
        st = p.lstat()
        h.update(f"{p.relative_to(base)}\0{st.st_mode:o}\0".encode())
        if p.is_symlink():
            h.update(os.readlink(p).encode())
        elif p.is_file():
            if st.st_size > budget:
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
                continue
            budget -= st.st_size
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return "sha256:" + h.hexdigest()


def freeze(spec: DeploymentSpec) -> Frozen:
    """Resolve every role's image to its digest and hash its bind mounts (no lock held long)."""
    from berth.images.store import ImageStore

    store = ImageStore()
    roles: list[Role] = []
    images: dict[str, dict[str, Any]] = {}
    files: dict[str, str] = {}
    for role in spec.roles:
        cspec, health, liveness = role.spec, role.health, role.liveness
        if cspec.image is not None:
            record = store.resolve(cspec.image)
            config = store.config(record).get("config") or {}
            images[role.role] = {
                "reference": cspec.image,
                "digest": record.digest,
                "id": record.id,
                "layers": record.chain_ids,
            }
            cspec = replace(cspec, image=record.digest)
            if health.from_image:
                health = from_image(health, config)
            if liveness is not None and liveness.probe.from_image:
                probe = from_image(liveness.probe, config)
                if probe.kind != "exec":
                    raise InvalidInput(f"role {role.role}: liveness.image: the image has no HEALTHCHECK")
                liveness = replace(liveness, probe=probe)
        elif health.from_image or (liveness is not None and liveness.probe.from_image):
            raise InvalidInput(f"role {role.role}: health.image needs the role to run an image")
        for m in cspec.mounts:
            if m.type == "bind" and m.source:
                source = Path(m.source)
                if not source.exists():
                    raise InvalidInput(f"role {role.role}: bind mount source {m.source} does not exist")
                files[m.source] = _hash_path(source)
        roles.append(replace(role, spec=cspec, health=health, liveness=liveness))
    return Frozen(tuple(roles), images, dict(sorted(files.items())))


def revision_specs(
    deployment: str, revision: int, content: dict[str, Any], images: dict[str, Any]
) -> dict[str, ContainerSpec]:
    """The container specs of revision `revision`: role -> spec, named and labelled.

    Labels carry the deployment, revision, role and image digest: `berth ps`/`inspect` show them,
    and the container runtime turns `berth.*` labels into journal fields (LogExtraFields), so
    `journalctl BERTH_DEPLOYMENT=shop BERTH_REVISION=3` finds every line of that revision.
    The same facts are in the process environment, for the app itself.
    """
    out: dict[str, ContainerSpec] = {}
    for role_doc in content["roles"]:
        role = role_doc["role"]
        name = container_name(deployment, revision, role)
        doc = {**role_doc["container"], "name": name}
        spec = ContainerSpec.from_json(doc)
        facts = {
            "berth.deployment": deployment,
            "berth.revision": str(revision),
            "berth.role": role,
        }
        env = {"BERTH_DEPLOYMENT": deployment, "BERTH_REVISION": str(revision), "BERTH_ROLE": role}
        digest = (images.get(role) or {}).get("digest")
        if digest:
            facts["berth.image-digest"] = digest
            env["BERTH_IMAGE_DIGEST"] = digest
        spec = replace(
            spec,
            labels=tuple(sorted({**dict(spec.labels), **facts}.items())),
            env=tuple(sorted({**dict(spec.env), **env}.items())),
        )
        out[role] = spec
    return out
