"""The snapshot: a versioned JSON document of everything collected from the sources.

Layout (schema_version 1):

    {"kind": "auditor.snapshot", "schema_version": 1,
     "collected_at": "2026-11-20T08:00:00Z",
     "collector": {"name": "auditor", "version": "0.1.0"},
     "sources": [{"id": "vc01.corp.example", "cloud": "vsphere", "kind": "vcenter",
                  "status": "ok", "error": null, "resource_count": 120}],
     "resources": [{"id": ..., "name": ..., "cloud": "vsphere"|"azure", "type": ...,
                    "source": ..., "tags": {...}, <native properties>, "facts": {...}}]}

Resources stay plain dicts: the engine addresses them by path, and a dict is the fastest
thing to walk. Azure resources are raw ARM JSON with the envelope added; vSphere
resources hold vSphere property paths as nested mappings (`summary.config.product.version`).
"""

from __future__ import annotations

import gc
import gzip
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .atomic import write_bytes_atomic
from .errors import SnapshotError
from .files import DEFAULT_INPUT_LIMIT, decompress_bounded, json_values, read_input, too_dense
from .jsonio import to_json
from .snapshot_lines import (
    blank_line,
    is_lines_header,
    is_lines_path,
    parse_header,
    parse_resource,
    snapshot_lines,
    write_lines,
)
from .text import without_lone_surrogates

SCHEMA_VERSION = 1
KIND = "auditor.snapshot"
CLOUDS = ("vsphere", "azure")
# characters of a source's id: a vCenter's name and port, a subscription's or management
# group's id. Every report names failed sources, so a megabyte-long id (any resource's
# `source` names one) would be written again in each
SOURCE_ID_LIMIT = 1024
ENVELOPE = ("id", "name", "cloud", "type", "source", "tags")


@dataclass
class Source:
    """One vCenter, subscription or tenant a snapshot was collected from."""

    id: str
    cloud: str
    kind: str
    status: str = "ok"  # "ok" or "failed"
    error: str | None = None
    resource_count: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    # when and where the snapshot this source was read from was collected (None: collected
    # live by this run); for --max-age, not stored: a snapshot has one collected_at
    collected_at: str | None = field(default=None, compare=False)
    origin: str | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON form, as stored in the snapshot."""
        return {"id": self.id, "cloud": self.cloud, "kind": self.kind, "status": self.status,
                "error": self.error, "resource_count": self.resource_count,
                "details": self.details}


@dataclass
class Snapshot:
    """Resources from one or more sources, with when and where they were collected."""

    collected_at: str
    sources: list[Source]
    resources: list[dict[str, Any]]
    origin: list[str] = field(default_factory=list)  # files it was read from, for messages

    @property
    def incomplete(self) -> bool:
        """True when a source failed: findings then describe only part of the estate."""
        return any(source.status != "ok" for source in self.sources)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (schema_version 1)."""
        return {"kind": KIND, "schema_version": SCHEMA_VERSION,
                "collected_at": self.collected_at,
                "collector": {"name": "auditor", "version": __version__},
                "sources": [source.as_dict() for source in self.sources],
                "resources": self.resources}


def now_utc() -> str:
    """The current time as the ISO text snapshots and reports use."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def make_resource(*, id: str, name: str, cloud: str, type: str, source: str,
                  tags: dict[str, Any] | None = None, native: dict[str, Any] | None = None,
                  facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build a resource with the envelope; sources call this so every resource has it."""
    resource: dict[str, Any] = dict(native or {})
    resource.update(id=id, name=name, cloud=cloud,
                    type=type.lower() if cloud == "azure" else type,
                    source=source, tags=dict(tags or {}))
    if facts:
        resource["facts"] = facts
    return resource


def save_snapshot(snapshot: Snapshot, path: Path) -> None:
    """Write the snapshot atomically; `.gz` paths are gzip-compressed, `.jsonl` and
    `.jsonl.gz` paths take the JSON Lines layout (see `auditor.snapshot_lines`)."""
    if is_lines_path(path):
        header = snapshot.as_dict()
        resources = header.pop("resources")
        write_lines(path, snapshot_lines(header, resources))
        return
    payload = to_json(snapshot.as_dict())
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    write_bytes_atomic(path, payload)


MAX_INPUT_FLAG = "--max-input-size"


def load_snapshot(path: Path, limit: int = DEFAULT_INPUT_LIMIT) -> Snapshot:
    """Read and check one snapshot file of at most `limit` bytes (after decompression);
    anything unusable raises SnapshotError naming it."""
    where = str(path)
    raw = read_input(path, "snapshot file", SnapshotError, limit=limit, raise_with=MAX_INPUT_FLAG)
    raw = decompress_bounded(raw, where, "snapshot", SnapshotError, limit=limit, raise_with=MAX_INPUT_FLAG)
    _check_density(raw, where)
    first_line = raw[:raw.find(b"\n") + 1 or len(raw)]
    if is_lines_header(first_line):  # a header alone is an empty estate, as the sharded path reads it
        return _snapshot_from_lines(raw, where)
    # the stdlib parser, not orjson: as fast here, and it shares one string per distinct key
    # across the document, which is ~150 MiB less for a 100,000-resource estate
    try:
        with _collector_paused():
            document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SnapshotError("not a snapshot: not UTF-8 JSON", where=where) from None
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"not a snapshot: invalid JSON ({exc.msg})", where=where,
                            line=exc.lineno) from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise SnapshotError(f"not a snapshot: {str(exc).split(';')[0]}", where=where) from None
    except RecursionError:
        raise SnapshotError("not a snapshot: JSON nested too deeply", where=where) from None
    if _SURROGATE_ESCAPE.search(raw):
        # rare, so the walk is paid only by documents that hold such an escape at all
        try:
            document = replace_lone_surrogates(document)
        except RecursionError:
            raise SnapshotError("not a snapshot: JSON nested too deeply", where=where) from None
    return snapshot_from_document(document, where)


def _snapshot_from_lines(raw: bytes, where: str) -> Snapshot:
    """A snapshot of the JSON Lines layout, read whole (see `auditor.shards` for a resource
    at a time)."""
    lines = raw.split(b"\n")
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # the newline that ends the last line starts none
    document = parse_header(lines[0], where)
    document["resources"] = resources = []
    blank = 0
    with _collector_paused():
        for number, line in enumerate(lines[1:], start=2):
            if line.strip():
                resources.append(parse_resource(line, where, number, routed=True))
                continue
            blank = blank_line(blank, where, number)
    return snapshot_from_document(document, where)


def check_density(values: int, size: int, where: str) -> None:
    """Refuse a file of `size` bytes holding `values` JSON values (see `files.json_values`)
    when that is far denser than any inventory (`files.too_dense`)."""
    if too_dense(values, size):
        raise SnapshotError(f"not a snapshot: {values:,} JSON values in {size:,} bytes is far denser than "
                            "any inventory (it would take many times its size in memory)", where=where)


def _check_density(raw: bytes, where: str) -> None:
    check_density(json_values(raw), len(raw), where)


# `\ud800`-`\udfff` escapes: the only way a UTF-8 JSON document can carry a lone surrogate
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def replace_lone_surrogates(value: Any) -> Any:
    """`value` with every unpaired surrogate in its texts (keys too) replaced by U+FFFD:
    reports are UTF-8, which cannot carry them."""
    if isinstance(value, str):
        return without_lone_surrogates(value)
    if isinstance(value, list):
        return [replace_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {replace_lone_surrogates(key): replace_lone_surrogates(item) for key, item in value.items()}
    return value


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while parsing: a JSON tree has no cycles, and
    without the pause the collector re-walks the growing tree, which is most of the parse
    time of a large snapshot (2.8 s -> 0.8 s for 100,000 resources)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fail(where: str, message: str) -> SnapshotError:
    return SnapshotError(message, where=where)


def snapshot_from_document(document: Any, where: str) -> Snapshot:
    """Check a parsed snapshot document and build the Snapshot; errors name `where`."""
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise _fail(where, f"not an auditor snapshot (expected \"kind\": \"{KIND}\")")
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _fail(where, "snapshot has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise _fail(where, f"snapshot schema_version {version} is newer than this auditor "
                           f"reads ({SCHEMA_VERSION}); upgrade auditor")
    if version < 1:
        raise _fail(where, f"snapshot schema_version {version} is not supported")
    collected_at = document.get("collected_at")
    if not isinstance(collected_at, str):
        raise _fail(where, "snapshot has no collected_at timestamp")
    sources_raw = document.get("sources", [])
    resources = document.get("resources")
    if not isinstance(sources_raw, list) or not isinstance(resources, list):
        raise _fail(where, "snapshot needs lists 'sources' and 'resources'")
    sources = []
    for index, entry in enumerate(sources_raw):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str)
                                                  for k in ("id", "cloud", "kind")):
            raise _fail(where, f"sources[{index}] needs text fields id, cloud and kind")
        if len(entry["id"]) > SOURCE_ID_LIMIT:
            raise _fail(where, f"sources[{index}].id is longer than {SOURCE_ID_LIMIT} characters: no vCenter or "
                               "subscription is named so")
        status = entry.get("status", "ok")
        if status not in ("ok", "failed"):
            raise _fail(where, f"sources[{index}].status must be 'ok' or 'failed'")
        count = entry.get("resource_count", 0)
        details = entry.get("details") or {}
        error = entry.get("error")
        sources.append(Source(id=entry["id"], cloud=entry["cloud"], kind=entry["kind"],
                              status=status, error=error if isinstance(error, str) else None,
                              resource_count=count if isinstance(count, int) else 0,
                              details=details if isinstance(details, dict) else {},
                              collected_at=collected_at, origin=where))
    seen: dict[str, int] = {}
    named: dict[str, list[Any]] = {}  # source -> [cloud, resources], in the order first named
    for index, resource in enumerate(resources):
        _check_resource(resource, index, where)
        key = resource_key(resource)
        if key in seen:
            # two resources under one id would share fingerprints and hide each other's findings
            raise _fail(where, f"resources[{index}] ({resource['id']}) has the same id as resources[{seen[key]}]"
                        + (" (Azure ids are case-insensitive)" if resource["cloud"] == "azure" else ""))
        seen[key] = index
        count_source(named, resource["source"], resource["cloud"])
    sources += unlisted_sources(sources, named, collected_at, where)
    return Snapshot(collected_at=collected_at, sources=sources, resources=resources,
                    origin=[where])


def count_source(named: dict[str, list[Any]], source: str, cloud: str) -> None:
    """Count one resource of `source` (for `unlisted_sources`)."""
    entry = named.get(source)
    if entry is None:
        named[source] = [cloud, 1]
    else:
        entry[1] += 1


# what a source of each cloud is, as its resources' `source` field names it
_SOURCE_KINDS = {"vsphere": "vcenter", "azure": "subscription"}


def unlisted_sources(listed: list[Source], named: dict[str, list[Any]], collected_at: str,
                     where: str) -> list[Source]:
    """The sources a snapshot's resources come from (`named`: source -> [cloud, resources])
    that its sources list leaves out, as sources of that snapshot: otherwise --max-age, which
    judges sources, would never find their resources stale, and the report would not list
    where they came from."""
    known = {source.id for source in listed}
    return [Source(id=source, cloud=cloud, kind=_SOURCE_KINDS.get(cloud, "source"), resource_count=count,
                   details={"listed": False}, collected_at=collected_at, origin=where)
            for source, (cloud, count) in named.items() if source not in known]


def _check_resource(resource: Any, index: int, where: str) -> None:
    if not isinstance(resource, dict):
        raise _fail(where, f"resources[{index}] is not an object")
    for key in ("id", "name", "type", "source"):
        if not isinstance(resource.get(key), str) or not resource[key]:
            raise _fail(where, f"resources[{index}] has no text field '{key}'")
    if len(resource["source"]) > SOURCE_ID_LIMIT:
        raise _fail(where, f"resources[{index}] ({resource['id']}): its source is longer than {SOURCE_ID_LIMIT} "
                           "characters: no vCenter or subscription is named so")
    cloud = resource.get("cloud")
    if cloud not in CLOUDS:
        raise _fail(where, f"resources[{index}] ({resource['id']}): cloud must be one of "
                           f"{', '.join(CLOUDS)}")
    tags = resource.get("tags")
    if tags is None:
        resource["tags"] = {}
    elif not isinstance(tags, dict):
        raise _fail(where, f"resources[{index}] ({resource['id']}): tags must be an object")
    if "facts" in resource and not isinstance(resource["facts"], dict):
        # facts are what auditor derives; a collector that wrote them wrote an object
        raise _fail(where, f"resources[{index}] ({resource['id']}): facts must be an object")
    if cloud == "azure":
        # ARM types are case-insensitive; rules address them lower-case
        resource["type"] = resource["type"].lower()


def merge_snapshots(snapshots: list[Snapshot]) -> Snapshot:
    """Combine snapshots of different sources into one; a resource twice is an error."""
    if len(snapshots) == 1:
        return snapshots[0]
    seen: dict[str, str] = {}
    resources: list[dict[str, Any]] = []
    sources: list[Source] = []
    listed: dict[str, str] = {}
    for snapshot in snapshots:
        origin = ", ".join(snapshot.origin) or "snapshot"
        check_source_once(listed, snapshot.sources, origin)
        for resource in snapshot.resources:
            key = resource_key(resource)
            if key in seen:
                raise SnapshotError(f"resource {resource['id']} is also in {seen[key]}; "
                                    "pass each source's snapshot once", where=origin)
            seen[key] = origin
            resources.append(resource)
        sources.extend(snapshot.sources)
    return Snapshot(collected_at=max(s.collected_at for s in snapshots), sources=sources,
                    resources=resources, origin=[o for s in snapshots for o in s.origin])


def check_source_once(listed: dict[str, str], sources: list[Source], origin: str) -> None:
    """Refuse a source that an earlier snapshot (`listed`: source id -> where) has too: its
    staleness, its failure and its resources would belong to neither (a stale copy would
    drop the fresh one's resources under the stale one's age). Adds these to `listed`."""
    for source in sources:
        if source.id in listed and listed[source.id] != origin:
            raise source_twice(source.id, listed[source.id], origin)
        listed.setdefault(source.id, origin)


def source_twice(source_id: str, first: str, origin: str) -> SnapshotError:
    """The refusal of a source that `first` has and `origin` has too."""
    return SnapshotError(f"source {source_id} is also in {first}; pass each source's snapshot once (its newest)",
                         where=origin)


def resource_key(resource: dict[str, Any]) -> str:
    """The identity of a resource across scans: ARM ids compare case-insensitively."""
    rid = resource["id"]
    return rid.lower() if resource.get("cloud") == "azure" else rid


def expire_stale(snapshot: Snapshot, max_age: float, now: datetime | None = None) -> list[Source]:
    """Count as failed each source whose snapshot was collected more than `max_age` seconds
    before `now` (`--max-age`), and return those sources.

    A stale source is treated as one whose collection failed: its resources are dropped, so
    its earlier findings become unknown rather than current, the scan exits 3, and its error
    names the source and the age of its snapshot, so a site whose collector died is never
    silent. A snapshot without a readable collected_at counts as stale; sources collected
    live by this run are never stale."""
    now = now or datetime.now(UTC)
    stale: list[Source] = []
    for source in snapshot.sources:
        if source.status != "ok" or source.collected_at is None:
            continue
        collected = parse_utc(source.collected_at)
        age = None if collected is None else (now - collected).total_seconds()
        if age is not None and -FUTURE_SKEW <= age <= max_age:
            continue
        where = source.origin or "its snapshot"
        if age is None:
            source.error = (f"{source.id}: the collected_at of its snapshot ({source.collected_at!r}, {where}) is no "
                            "timestamp, so --max-age cannot tell how old it is")
        elif age < -FUTURE_SKEW:  # a clock ahead, or a date forged to stay fresh for ever
            source.error = (f"{source.id}: its snapshot says it was collected {source.collected_at}, in the future "
                            f"({where}), so --max-age cannot tell how old it is")
        else:
            source.error = (f"{source.id}: newest snapshot is {duration_text(age)} old (collected "
                            f"{source.collected_at}, {where}), older than --max-age {duration_text(max_age)}: is its "
                            "collector still running?")
        source.status, source.resource_count = "failed", 0
        source.details = {**source.details, "stale_snapshot": {
            "collected_at": source.collected_at, "age_seconds": None if age is None else int(age),
            "max_age_seconds": int(max_age), "from": where}}
        stale.append(source)
    if stale:
        gone = {source.id for source in stale}
        snapshot.resources = [resource for resource in snapshot.resources if resource["source"] not in gone]
    return stale


FUTURE_SKEW = 300  # seconds a site's clock may run ahead of the scan's before its snapshot counts as forged


def parse_utc(text: str) -> datetime | None:
    """An ISO timestamp (`2026-11-20T08:00:00Z`) as an aware datetime, UTC when it names no
    zone; None when it is none."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def duration_text(seconds: float) -> str:
    """A duration as people say it: `45 s`, `90 min`, `37 h`, `3 d 4 h`."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
