# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which image an archive on the controller holds, read from its index without unpacking it.

Private to this collection; runs on the controller, for the action plugin of berth.fleet.image.
The answer is what `berth image apply` accepts as `import.digest` (see
runtime/berth/images/apply.py, `archive_images`): an OCI layout's manifest digest, or a
`docker save` archive's image ID (the digest of its config; the archive has no manifest, the
host's store writes one). A root file system tarball has no image before it is imported, so the
host would have to import it to know, and it is refused.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile

# The same bounds as the runtime's (runtime/berth/images/mediatypes.py).
MAX_INDEX_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20
IMAGE_MANIFESTS = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
FORMATS = ("auto", "oci", "docker-archive")


class ArchiveError(Exception):
    """The archive cannot be imported from the controller; the message says why."""


def _name(member_name):
    return posixpath.normpath(member_name.lstrip("/")).removeprefix("./")


def _read(tf, members, name, limit, path):
    member = members.get(name)
    if member is None or not member.isreg():
        raise ArchiveError(f"{path}: no {name} in the archive")
    if member.size > limit:
        raise ArchiveError(f"{path}: {name} is larger than {limit} bytes")
    fh = tf.extractfile(member)
    return fh.read()


def _json(data, name, path):
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ArchiveError(f"{path}: {name} is not JSON: {exc}") from exc


def _oci_image(tf, members, path):
    index = _json(_read(tf, members, "index.json", MAX_INDEX_BYTES, path), "index.json", path)
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        count = len(entries) if isinstance(entries, list) else 0
        raise ArchiveError(f"{path}: index.json lists {count} manifests; an import takes exactly one image")
    entry = entries[0]
    digest = entry.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ArchiveError(f"{path}: index.json's manifest has no sha256 digest")
    media_type = entry.get("mediaType")
    if media_type is None:  # optional in an index: the manifest itself says
        blob = _read(tf, members, "blobs/sha256/" + digest[7:], MAX_INDEX_BYTES, path)
        media_type = (_json(blob, digest, path) or {}).get("mediaType")
    if media_type not in IMAGE_MANIFESTS:
        raise ArchiveError(
            f"{path}: its image is a {media_type or 'manifest of unknown type'}, not a single-platform "
            "image manifest; export the one platform the hosts run (berth image export) and import that"
        )
    return digest


def _docker_image(tf, members, path):
    entries = _json(_read(tf, members, "manifest.json", MAX_INDEX_BYTES, path), "manifest.json", path)
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        count = len(entries) if isinstance(entries, list) else 0
        raise ArchiveError(f"{path}: manifest.json lists {count} images; an import takes exactly one")
    config = entries[0].get("Config")
    if not isinstance(config, str):
        raise ArchiveError(f"{path}: manifest.json names no Config")
    data = _read(tf, members, _name(config), MAX_CONFIG_BYTES, path)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def archive_image(path, fmt="auto"):
    """Return (format, image) for a tar of an OCI layout or a docker-archive; raise ArchiveError."""
    if fmt not in FORMATS:
        raise ArchiveError(
            f"archive.format={fmt}: from the controller only an OCI layout or a docker-archive can be "
            "imported, whose image is known before the import (copy a root file system tarball with "
            "ansible.builtin.copy and import it on the host)"
        )
    try:
        tf = tarfile.open(path, "r:*")  # noqa: SIM115 - closed below
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"{path} is not a readable tar: {exc}") from exc
    try:
        # Only headers are read: the members' data is skipped (or streamed past, if compressed).
        members = {_name(m.name): m for m in tf}
        if fmt == "oci" or (fmt == "auto" and "index.json" in members and "oci-layout" in members):
            return "oci", _oci_image(tf, members, path)
        if fmt == "docker-archive" or (fmt == "auto" and "manifest.json" in members):
            return "docker-archive", _docker_image(tf, members, path)
        raise ArchiveError(
            f"{path} is neither an OCI layout nor a docker-archive (a root file system tarball?): its "
            "image is only known by importing it, so copy it with ansible.builtin.copy and import it "
            "on the host"
        )
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"{path}: cannot read the archive: {exc}") from exc
    finally:
        tf.close()
