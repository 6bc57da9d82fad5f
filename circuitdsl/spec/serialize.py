"""Spec objects -> plain JSON-ready data, for `circ show --json` and run records."""

from __future__ import annotations

from typing import Any

import attrs

#: Bumped whenever the shape of the JSON documents circ writes changes.
SCHEMA_VERSION = 1


def to_data(obj: Any) -> Any:
    """Attrs objects become dicts tagged with their class; spans and other non-equality fields are dropped."""
    if attrs.has(type(obj)):
        data = {"node": type(obj).__name__}
        for field in attrs.fields(type(obj)):
            if field.eq:
                data[field.name] = to_data(getattr(obj, field.name))
        return data
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_data(x) for x in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(to_data(x) for x in obj)
    return obj
