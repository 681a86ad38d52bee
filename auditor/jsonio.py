"""JSON encoding shared by snapshots and reports (orjson: 100k-resource estates are large)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from .text import without_lone_surrogates

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_DATACLASS


def to_json(value: Any, *, indent: bool = False) -> bytes:
    """UTF-8 JSON bytes; values JSON has no type for (dates, sets) are written as text.

    Estate values orjson refuses (integers past 64 bits, nesting past 255 levels: both can
    sit in a snapshot) are written as text, and the characters that some terminals and log
    viewers take for line breaks or direction overrides (C1 controls such as NEL, U+2028/9,
    bidi overrides) as `\\u` escapes, which JSON readers decode back."""
    options = _OPTIONS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        payload = orjson.dumps(value, default=_fallback, option=options)
    except orjson.JSONEncodeError:
        payload = orjson.dumps(encodable(value), default=_fallback, option=options)
    return escape_unsafe(payload)


def to_json_pieces(value: Any, *, indent: bool = False, strict: bool) -> bytes:
    """`to_json`'s two ways taken apart, for a document written in pieces that must come out
    as `to_json` writes it whole: `strict` is orjson alone (raising orjson.JSONEncodeError
    where `to_json` would switch), else everything through `encodable`, as `to_json` does
    once any part of the document needs it."""
    options = _OPTIONS | (orjson.OPT_INDENT_2 if indent else 0)
    payload = orjson.dumps(value if strict else encodable(value), default=_fallback, option=options)
    return escape_unsafe(payload)


# C1 controls (U+0080-U+009F), U+2028/U+2029 and U+200E/F, U+202A-U+202E, U+2066-U+2069 in UTF-8
_UNSAFE_UTF8 = re.compile(rb"\xc2[\x80-\x9f]|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


def escape_unsafe(payload: bytes) -> bytes:
    """UTF-8 JSON with the characters of _UNSAFE_UTF8 as `\\u` escapes. Every one of them
    starts with byte C2 or E2, which a byte search finds far faster than the pattern: most
    documents have neither, and are returned as they are."""
    if b"\xc2" not in payload and b"\xe2" not in payload:
        return payload
    return _UNSAFE_UTF8.sub(_escape, payload)


def _escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode("utf-8"))


_MAX_DEPTH = 200


def encodable(value: Any, depth: int = 0) -> Any:
    """`value` with what orjson cannot write turned into text: big integers, and anything
    nested deeper than _MAX_DEPTH."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return without_lone_surrogates(value)
    if isinstance(value, int):
        return value if -(2 ** 63) <= value < 2 ** 64 else str(value)
    if isinstance(value, dict):
        if depth >= _MAX_DEPTH:
            return "…"
        return {key: encodable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if depth >= _MAX_DEPTH:
            return "…"
        return [encodable(item, depth + 1) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict
        return encodable(asdict(value), depth)
    return value


def _fallback(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
