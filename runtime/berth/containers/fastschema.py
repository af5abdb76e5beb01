"""A conservative fast path for JSON Schema validation: no `jsonschema` import for valid input.

Importing `jsonschema` costs 70-90 ms on these machines, a fifth of `berth run --rm ... true`.
`surely_valid` walks the small subset of JSON Schema our specs use and answers True only when
the document certainly satisfies the schema; on anything else (an invalid document, or a keyword
or value it does not know) it answers False and the caller validates with `jsonschema`, so every
error message still comes from `jsonschema` and nothing invalid gets through.
"""

from __future__ import annotations

import re
from typing import Any

# Keywords that do not constrain an instance.
_ANNOTATIONS = frozenset({"$schema", "title", "description", "$comment"})
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # bool is an int in Python, never in JSON Schema; floats such as 1.0 fall back (unsure).
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def surely_valid(schema: Any, doc: Any) -> bool:
    """True only if `doc` is valid under `schema`; False means invalid *or* not sure."""
    if not isinstance(schema, dict):
        return False
    for key, rule in schema.items():
        if key in _ANNOTATIONS or (key == "additionalProperties" and "properties" in schema):
            continue  # additionalProperties next to properties: checked with them
        if not _check(key, rule, schema, doc):
            return False
    return True


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(key: str, rule: Any, schema: dict[str, Any], doc: Any) -> bool:
    if key == "type":
        names = rule if isinstance(rule, list) else [rule]
        return any(name in _TYPES and _TYPES[name](doc) for name in names)
    if key == "enum":
        # Only str members compared with a str: JSON equality and Python's agree there.
        return isinstance(doc, str) and all(isinstance(e, str) for e in rule) and doc in rule
    if key == "required":
        return not isinstance(doc, dict) or all(k in doc for k in rule)
    if key == "properties":
        if not isinstance(doc, dict):
            return True
        if not all(isinstance(k, str) for k in doc):
            return False
        extra = schema.get("additionalProperties", True)
        for k, v in doc.items():
            if k in rule:
                if not surely_valid(rule[k], v):
                    return False
            elif extra is False or (extra is not True and not surely_valid(extra, v)):
                return False
        return True
    if key == "additionalProperties":  # without properties: every member is additional
        if not isinstance(doc, dict):
            return True
        if rule is False:
            return not doc
        return rule is True or all(isinstance(k, str) and surely_valid(rule, v) for k, v in doc.items())
    if key == "items":
        return not isinstance(doc, list) or all(surely_valid(rule, item) for item in doc)
    if key in ("minLength", "pattern"):
        if not isinstance(doc, str):
            return True
        if key == "minLength":
            return bool(len(doc) >= rule)
        return re.search(rule, doc) is not None
    if key == "minItems":
        return not isinstance(doc, list) or len(doc) >= rule
    if key in ("minimum", "maximum"):
        if not _number(doc):
            return True
        return bool(doc >= rule if key == "minimum" else doc <= rule)
    return False  # a keyword this fast path does not know: let jsonschema decide
