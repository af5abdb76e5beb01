"""Image configs and manifests that Berth writes: metadata instructions applied to a config.

Used by build (ENV, CMD, ... steps) and by `import --change` (the same instructions on a rootfs
tarball). Configs and manifests are serialised canonically so the same input gives the same digest.
"""

from __future__ import annotations

import copy
import datetime
import posixpath
import re
from typing import Any

from berth.errors import InvalidInput
from berth.images import mediatypes as mt
from berth.images.containerfile import Instruction, expand, key_values, words
from berth.images.manifest import canonical_json, host_platform

METADATA = frozenset(
    {
        "ENV",
        "WORKDIR",
        "USER",
        "CMD",
        "ENTRYPOINT",
        "EXPOSE",
        "LABEL",
        "VOLUME",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "SHELL",
        "ONBUILD",
        "MAINTAINER",
    }
)
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|ns))+")
_UNITS = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}


def empty_config(created: str | None = None) -> dict[str, Any]:
    plat = host_platform()
    out: dict[str, Any] = {
        "architecture": plat["architecture"],
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    if "variant" in plat:
        out["variant"] = plat["variant"]
    if created:
        out["created"] = created
    return out


def timestamp(epoch: int | None = None) -> str:
    when = (
        datetime.datetime.fromtimestamp(epoch, datetime.UTC)
        if epoch is not None
        else datetime.datetime.now(datetime.UTC)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def env_map(config: dict[str, Any]) -> dict[str, str]:
    out = {}
    for item in config.get("config", {}).get("Env") or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def shell_of(config: dict[str, Any]) -> list[str]:
    return list(config.get("config", {}).get("Shell") or ["/bin/sh", "-c"])


def _command(instr: Instruction, config: dict[str, Any], text: str) -> list[str]:
    if instr.json_args is not None:
        return list(instr.json_args)
    return [*shell_of(config), text] if text else []


def apply_metadata(config: dict[str, Any], instr: Instruction, variables: dict[str, str]) -> dict[str, Any]:
    """A new config with one metadata instruction applied (the input is not modified)."""
    config = copy.deepcopy(config)
    c = config.setdefault("config", {})
    kw = instr.keyword
    text = (
        expand(instr.args, variables)
        if kw not in ("CMD", "ENTRYPOINT", "HEALTHCHECK", "ONBUILD")
        else instr.args
    )
    if kw == "ENV":
        env = env_map(config)
        for key, value in key_values(instr, instr.args):
            env[key] = expand(value, {**variables, **env})
        c["Env"] = [f"{k}={v}" for k, v in env.items()]
    elif kw == "WORKDIR":
        c["WorkingDir"] = posixpath.normpath(posixpath.join(c.get("WorkingDir") or "/", text))
    elif kw == "USER":
        if not text.strip():
            raise instr.error("needs a user")
        c["User"] = text.strip()
    elif kw == "CMD":
        c["Cmd"] = _command(instr, config, instr.args)
    elif kw == "ENTRYPOINT":
        c["Entrypoint"] = _command(instr, config, instr.args)
        c.pop("Cmd", None)  # as Docker: an ENTRYPOINT resets the inherited CMD
    elif kw == "EXPOSE":
        ports = c.setdefault("ExposedPorts", {})
        for port in words(instr, text):
            number, _, proto = port.partition("/")
            if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                raise instr.error(f"invalid port {port!r}")
            ports[f"{int(number)}/{proto or 'tcp'}"] = {}
    elif kw == "LABEL":
        labels = c.setdefault("Labels", {})
        for key, value in key_values(instr, text):
            labels[key] = value
    elif kw == "MAINTAINER":
        config["author"] = text
    elif kw == "VOLUME":
        paths = instr.json_args if instr.json_args is not None else words(instr, text)
        volumes = c.setdefault("Volumes", {})
        for path in paths:
            if not path.startswith("/"):
                raise instr.error(f"volume path {path!r} is not absolute")
            volumes[expand(path, variables)] = {}
    elif kw == "STOPSIGNAL":
        if not re.fullmatch(r"(SIG)?[A-Z0-9+]+|\d+", text.strip()):
            raise instr.error(f"invalid signal {text!r}")
        c["StopSignal"] = text.strip()
    elif kw == "SHELL":
        if instr.json_args is None or not instr.json_args:
            raise instr.error('needs a JSON array, e.g. SHELL ["/bin/sh", "-c"]')
        c["Shell"] = list(instr.json_args)
    elif kw == "ONBUILD":
        c.setdefault("OnBuild", []).append(instr.args)
    elif kw == "HEALTHCHECK":
        c["Healthcheck"] = healthcheck(instr, config)
    else:
        raise instr.error("is not a metadata instruction")
    return config


def healthcheck(instr: Instruction, config: dict[str, Any]) -> dict[str, Any]:
    """Docker's Healthcheck object, which the deployment health gate reads from the config."""
    body = instr.args
    head, _, rest = body.partition(" ")
    if head.upper() == "NONE":
        if rest.strip() or instr.flags:
            raise instr.error("NONE takes no arguments or flags")
        return {"Test": ["NONE"]}
    if head.upper() != "CMD":
        raise instr.error("expects CMD or NONE")
    rest = rest.strip()
    if not rest:
        raise instr.error("CMD needs a command")
    from berth.images.containerfile import parse_line

    sub = parse_line(f"CMD {rest}", instr.line, instr.source)
    test = ["CMD", *sub.json_args] if sub.json_args is not None else ["CMD-SHELL", rest]
    out: dict[str, Any] = {"Test": test}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        if flag in instr.flags:
            out[key] = duration_ns(instr, instr.flags[flag])
    if "retries" in instr.flags:
        if not instr.flags["retries"].isdigit():
            raise instr.error(f"invalid --retries {instr.flags['retries']!r}")
        out["Retries"] = int(instr.flags["retries"])
    return out


def duration_ns(instr: Instruction, text: str) -> int:
    if not _DURATION.fullmatch(text):
        raise instr.error(f"invalid duration {text!r} (e.g. 30s, 1m30s)")
    return int(sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)", text)))


def add_layer(config: dict[str, Any], diff_id: str, created: str, created_by: str) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config["rootfs"]["diff_ids"].append(diff_id)
    config.setdefault("history", []).append({"created": created, "created_by": created_by})
    return config


def add_history(config: dict[str, Any], created: str, created_by: str) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config.setdefault("history", []).append(
        {"created": created, "created_by": created_by, "empty_layer": True}
    )
    return config


def oci_manifest(config_bytes: bytes, config_digest: str, layers: list[dict[str, Any]]) -> bytes:
    """An OCI manifest for a config and layer descriptors ({digest, size, media_type})."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [
            {"mediaType": layer["media_type"], "digest": layer["digest"], "size": layer["size"]}
            for layer in layers
        ],
    }
    return canonical_json(doc)


def parse_changes(changes: list[str]) -> list[Instruction]:
    """`--change 'CMD ["sh"]'` lines for a rootfs import: metadata instructions only."""
    from berth.images.containerfile import parse_line

    out = []
    for i, change in enumerate(changes, 1):
        instr = parse_line(change.strip(), i, "--change")
        if instr.keyword not in METADATA:
            raise InvalidInput(
                f"--change {change!r}: only metadata instructions ({', '.join(sorted(METADATA))})"
            )
        out.append(instr)
    return out
