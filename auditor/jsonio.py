"""JSON encoding shared by snapshots and reports (orjson: 100k-resource estates are large)."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_DATACLASS


def to_json(value: Any, *, indent: bool = False) -> bytes:
    """UTF-8 JSON bytes; values JSON has no type for (dates, sets) are written as text."""
    options = _OPTIONS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(value, default=_fallback, option=options)


def _fallback(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
