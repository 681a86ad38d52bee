"""Dotted paths into resources, compiled once into getters.

Syntax: `properties.securityRules[0].name`; a key holding dots is quoted in brackets:
`config.advancedOptions["UserVars.ESXiShellTimeOut"]`. A missing key, an index out of
range, or a JSON null all read as ABSENT; the operators decide what absent means.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()

_SEGMENT = re.compile(r"""
    (?P<key>[^.\[\]"]+)            # plain key
  | \[(?P<index>-?\d+)\]           # [3]
  | \["(?P<quoted>[^"]*)"\]        # ["key.with.dots"]
""", re.VERBOSE)


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split a path into keys and indexes; ValueError says what is wrong with it."""
    if not isinstance(path, str) or not path:
        raise ValueError("a path must be non-empty text")
    segments: list[str | int] = []
    position = 0
    expect_segment = True
    while position < len(path):
        if path[position] == "." and not expect_segment:
            position += 1
            expect_segment = True
            if position == len(path):
                raise ValueError(f"path '{path}' ends with '.'")
            continue
        match = _SEGMENT.match(path, position)
        if match is None or (match.group("key") and not expect_segment):
            raise ValueError(f"cannot read path '{path}' at position {position + 1}")
        if match.group("key") is not None:
            segments.append(match.group("key"))
        elif match.group("index") is not None:
            if not segments:
                raise ValueError(f"path '{path}' starts with an index")
            segments.append(int(match.group("index")))
        else:
            segments.append(match.group("quoted"))
        position = match.end()
        expect_segment = False
    return tuple(segments)


Getter = Callable[[Any], Any]

# str[str] and list[str] raise TypeError, so one try covers every wrong shape
_MISS = (KeyError, TypeError)


def _keys_getter(keys: tuple[str, ...]) -> Getter:
    """Straight-line getters for the common depths: a loop costs twice as much per read. The
    last key is read with dict.get where it can be: a setting a VM lacks is the common miss,
    and a raised KeyError costs more than the read."""
    if len(keys) == 2:
        a, b = keys

        def get2(obj: Any) -> Any:
            try:
                inner = obj[a]
                value = inner.get(b) if inner.__class__ is dict else inner[b]
            except _MISS:
                return ABSENT
            return ABSENT if value is None else value
        return get2
    if len(keys) == 3:
        a, b, c = keys

        def get3(obj: Any) -> Any:
            try:
                inner = obj[a][b]
                value = inner.get(c) if inner.__class__ is dict else inner[c]
            except _MISS:
                return ABSENT
            return ABSENT if value is None else value
        return get3
    if len(keys) == 4:
        a, b, c, d = keys

        def get4(obj: Any) -> Any:
            try:
                inner = obj[a][b][c]
                value = inner.get(d) if inner.__class__ is dict else inner[d]
            except _MISS:
                return ABSENT
            return ABSENT if value is None else value
        return get4

    def get_keys(obj: Any) -> Any:
        try:
            for key in keys:
                obj = obj[key]
        except _MISS:
            return ABSENT
        return ABSENT if obj is None else obj
    return get_keys


def compile_path(path: str) -> Getter:
    """A function reading `path` from a mapping, returning ABSENT where it is missing."""
    segments = parse_path(path)
    if all(isinstance(segment, str) for segment in segments):
        if len(segments) == 1:
            (key,) = segments

            def get_one(obj: Any) -> Any:
                try:
                    value = obj[key]
                except (KeyError, TypeError):
                    return ABSENT
                return ABSENT if value is None else value
            return get_one

        return _keys_getter(segments)  # type: ignore[arg-type]

    def get_mixed(obj: Any) -> Any:
        for segment in segments:
            if isinstance(segment, int):
                if not isinstance(obj, list):
                    return ABSENT
                try:
                    obj = obj[segment]
                except IndexError:
                    return ABSENT
            elif isinstance(obj, dict):
                obj = obj.get(segment, ABSENT)
                if obj is ABSENT:
                    return ABSENT
            else:
                return ABSENT
        return ABSENT if obj is None else obj
    return get_mixed
