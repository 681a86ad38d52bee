"""The JSON Lines layout of a snapshot: one header line, then one resource per line.

    {"kind": "auditor.snapshot", "schema_version": 1, "layout": "lines",
     "collected_at": ..., "collector": {...}, "sources": [...]}
    {"source": "vc01.corp.example", "cloud": "vsphere", "type": "VirtualMachine", "id": ..., ...}
    ...

It holds exactly what the one-document layout holds (`save_snapshot` writes it for a
`.jsonl` or `.jsonl.gz` path, `load_snapshot` reads both), but it can be read a resource at a
time: a scan of a million resources routes each line to its vCenter's or tenant's shard by
its first four keys, without parsing the rest (see `auditor.shards`), so no process ever
holds the whole estate. A writer puts `source`, `cloud`, `type` and `id` first; a line that
does not (written by hand or another tool) is still read, only parsed whole to route it.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .atomic import write_stream_atomic
from .errors import SnapshotError
from .files import GZIP_MAGIC, open_regular
from .jsonio import to_json
from .text import without_lone_surrogates

LAYOUT = "lines"
SUFFIXES = (".jsonl", ".jsonl.gz")
ROUTING_KEYS = ("source", "cloud", "type", "id")

_STRING = rb'("[^"\\]*(?:\\.[^"\\]*)*")'  # unrolled: a run of plain characters at a time
# the routing keys as a writer of this layout puts them: the JSON string grammar, so a name
# holding quotes or backslashes cannot shift what is read as the next key
_ROUTING = re.compile(rb'\{"source":' + _STRING + rb',"cloud":' + _STRING + rb',"type":' + _STRING
                      + rb',"id":' + _STRING)
MAX_BLANK_LINES = 10_000  # a gzip bomb of newlines would take minutes to count; no writer leaves them
_DENSITY_FROM = 50_000  # bytes of a line from which its density is checked (below it, too few values to matter)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def is_lines_path(path: Path) -> bool:
    """Whether a snapshot written to `path` takes the JSON Lines layout."""
    return path.name.lower().endswith(SUFFIXES)


def is_lines_header(first_line: bytes) -> bool:
    """Whether a document's first line is the header of the JSON Lines layout."""
    if not first_line.lstrip().startswith(b"{"):
        return False
    try:
        header = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(header, dict) and header.get("layout") == LAYOUT and "resources" not in header


def snapshot_lines(header: dict[str, Any], resources: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """The lines of a snapshot document (`Snapshot.as_dict()` without its resources, then
    the resources), each ending in a newline."""
    yield to_json({**header, "layout": LAYOUT}) + b"\n"
    for resource in resources:
        routed = {key: resource.get(key) for key in ROUTING_KEYS}
        routed.update(resource)
        yield to_json(routed) + b"\n"


def write_lines(path: Path, lines: Iterable[bytes]) -> None:
    """Write the lines atomically to `path`, gzip-compressed for a `.gz` path."""
    with write_stream_atomic(path) as stream:
        if path.suffix.lower() == ".gz":
            with gzip.GzipFile(fileobj=stream, mode="wb", mtime=0, compresslevel=6) as packed:
                for line in lines:
                    packed.write(line)
        else:
            for line in lines:
                stream.write(line)


def parse_header(line: bytes, where: str) -> dict[str, Any]:
    """The header line as a dict (the one-document layout's checks follow in
    `snapshot_from_document`)."""
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"not a snapshot: invalid JSON on its first line ({exc})", where=where, line=1) from None
    if not isinstance(header, dict):
        raise SnapshotError("not a snapshot: its first line is no JSON object", where=where, line=1)
    header.pop("layout", None)
    return header


def parse_resource(line: bytes, where: str, number: int, routed: bool = False) -> Any:
    """One resource line as Python values, read as the one-document layout reads them: integers
    past 64 bits and NaN too (orjson refuses them; the standard library does not), lone
    surrogates replaced. `routed`: refuse a line whose routing keys, read whole, are not the
    ones `routing_keys` reads (a key given twice: JSON keeps the last, routing the first),
    so that every reader places it alike."""
    if len(line) > _DENSITY_FROM:
        from .snapshot import _check_density
        try:
            _check_density(line, where)  # as the one-document reader refuses such a file
        except SnapshotError as exc:
            raise SnapshotError(exc.message, where=where, line=number) from None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise SnapshotError("not a snapshot: not UTF-8 JSON", where=where, line=number) from None
        except json.JSONDecodeError as exc:
            raise SnapshotError(f"not a snapshot: invalid JSON ({exc.msg})", where=where, line=number) from None
        except ValueError as exc:  # an integer of more digits than Python converts
            raise SnapshotError(f"not a snapshot: {str(exc).split(';')[0]}", where=where, line=number) from None
        except RecursionError:
            raise SnapshotError("not a snapshot: JSON nested too deeply", where=where, line=number) from None
    if _SURROGATE_ESCAPE.search(line):
        from .snapshot import replace_lone_surrogates
        try:
            value = replace_lone_surrogates(value)
        except RecursionError:
            raise SnapshotError("not a snapshot: JSON nested too deeply", where=where, line=number) from None
    if routed and isinstance(value, dict) and _ROUTING.match(line) is not None \
            and tuple(value.get(key) for key in ROUTING_KEYS) != routing_keys(line, where, number):
        raise SnapshotError(f"resources[{number - 2}] gives one of {', '.join(ROUTING_KEYS)} twice",
                            where=where, line=number)
    return value


def blank_line(blank: int, where: str, number: int) -> int:
    """Count the blank line at `number`, the `blank`-th before it: refused past
    MAX_BLANK_LINES, alike by both readers of the layout."""
    if blank + 1 > MAX_BLANK_LINES:
        raise SnapshotError(f"not a snapshot: more than {MAX_BLANK_LINES:,} blank lines", where=where, line=number)
    return blank + 1


def routing_keys(line: bytes, where: str, number: int) -> tuple[Any, Any, Any, Any]:
    """(source, cloud, type, id) of a resource line: read from its first keys when a writer of
    this layout put them there, else from the whole line."""
    match = _ROUTING.match(line)
    if match is not None:
        try:
            source, cloud, kind, rid = match.groups()
            if line.find(b"\\", 0, match.end()) < 0:
                # a string without escapes is its UTF-8 between the quotes: most ids, read a
                # million times, need no JSON parser
                return (source[1:-1].decode("utf-8"), cloud[1:-1].decode("utf-8"), kind[1:-1].decode("utf-8"),
                        rid[1:-1].decode("utf-8"))
            return tuple(without_lone_surrogates(orjson.loads(group)) for group in (source, cloud, kind, rid))
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            pass  # a lone surrogate escape or broken UTF-8: the whole line's reading decides
    resource = parse_resource(line, where, number)
    if not isinstance(resource, dict):
        raise SnapshotError(f"resources[{number - 2}] is not an object", where=where, line=number)
    return resource.get("source"), resource.get("cloud"), resource.get("type"), resource.get("id")


def open_lines(path: Path) -> IO[bytes]:
    """Open a snapshot file to read it line by line, gzip or not (the caller counts bytes
    against the input limit). Missing, special or unreadable files fail naming the file."""
    fd, _ = open_regular(path, "snapshot file", SnapshotError)
    handle = os.fdopen(fd, "rb")
    try:
        magic = handle.read(2)
        handle.seek(0)
    except OSError as exc:
        handle.close()
        raise SnapshotError(f"cannot read snapshot file: {exc.strerror}", where=str(path)) from None
    if magic == GZIP_MAGIC:
        packed = gzip.GzipFile(fileobj=handle, mode="rb")
        packed.myfileobj = handle  # closed with it (what gzip.open does for a path)
        return packed  # type: ignore[return-value]
    return handle
