"""The document `berth network apply` reads: a network's desired state, checked. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidInput
from berth.network.model import validate_network_name

STATES = ("present", "absent")
_STRINGS = ("subnet", "gateway", "subnet6", "gateway6", "bridge")
FIELDS = frozenset({"name", "state", "masquerade", *_STRINGS})


@dataclass(frozen=True)
class NetworkRequest:
    """`subnet` (IPv4) and `subnet6` (IPv6) left out keep the existing network's; a new network
    given neither gets a free IPv4 /24, one given only `subnet6` is IPv6-only. `bridge` left out
    keeps the existing one (a new network gets a free name); a gateway left out is its subnet's
    first host address; `masquerade` left out is on. With `state` absent, the settings are
    checked and otherwise ignored."""

    name: str
    state: str = "present"
    subnet: str | None = None
    gateway: str | None = None
    bridge: str | None = None
    masquerade: bool = True
    subnet6: str | None = None
    gateway6: str | None = None


def parse_request(doc: Any) -> NetworkRequest:
    if not isinstance(doc, dict):
        raise InvalidInput('network apply takes a JSON object {"name", "state", "subnet", ...}')
    unknown = set(doc) - FIELDS
    if unknown:
        raise InvalidInput(
            f"network spec: unknown field(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(FIELDS))})"
        )
    name = validate_network_name(doc.get("name", ""))
    state = doc.get("state", "present")
    if state not in STATES:
        raise InvalidInput(f"network state {state!r} is not present or absent")
    for key in _STRINGS:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise InvalidInput(f"network spec field {key} must be a string, not {doc[key]!r}")
    for key, version in (("subnet", 4), ("gateway", 4), ("subnet6", 6), ("gateway6", 6)):
        text = doc.get(key)
        if text is not None and (":" in text) != (version == 6):  # family checked here, value later
            raise InvalidInput(f"network spec field {key} takes an IPv{version} value, not {text!r}")
    masquerade = doc.get("masquerade", True)
    if not isinstance(masquerade, bool):
        raise InvalidInput(f"network spec field masquerade must be true or false, not {masquerade!r}")
    return NetworkRequest(
        name=name,
        state=state,
        subnet=doc.get("subnet"),
        gateway=doc.get("gateway"),
        bridge=doc.get("bridge"),
        masquerade=masquerade,
        subnet6=doc.get("subnet6"),
        gateway6=doc.get("gateway6"),
    )
