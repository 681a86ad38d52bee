"""Drift between two snapshots: resources added, removed and changed, path by path.

Lists of named things (NSG rules, services, port groups, options) are matched by their
`name`, `key` or `id`, so a reordering is not drift. Fields that change on their own are
ignored: VOLATILE below is the documented list (glob patterns over dotted paths, with
list positions removed: `config.option.value` covers every option's value).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from .snapshot import Snapshot, resource_key

# Paths that change without anyone changing the estate: ARM etags and GUID stamps,
# timestamps of the collection, runtime counters and free space, and derived facts
# (re-derived on every scan, so their changes are already the changes of what they are
# derived from).
VOLATILE = (
    "etag", "*.etag", "facts", "facts.*",
    "properties.extended.instanceView.*Time*", "properties.*.lastModified*", "properties.lastModified*",
    "summary.quickStats*", "summary.runtime.bootTime", "runtime.bootTime", "summary.runtime.healthSystemRuntime*",
    "summary.freeSpace", "summary.uncommitted", "summary.maxFileSize",
    "guest.guestHeartbeatStatus", "summary.overallStatus", "overallStatus",
    # Azure Policy re-evaluates on its own schedule: a state's evaluation time is not a change
    "properties.timestamp",
    "_missing",
)
_VOLATILE = [re.compile(fnmatch.translate(pattern)) for pattern in VOLATILE]
_INDEX = re.compile(r"\[[^\]]*\]")
_KEYS = ("name", "key", "id")


def volatile(path: str) -> bool:
    """True when changes at `path` are noise (see VOLATILE)."""
    plain = _INDEX.sub("", path)
    return any(pattern.match(plain) for pattern in _VOLATILE)


@dataclass
class Change:
    path: str
    old: Any
    new: Any
    kind: str  # added / removed / changed


@dataclass
class ResourceDrift:
    id: str
    name: str
    type: str
    cloud: str
    source: str
    changes: list[Change] = field(default_factory=list)


@dataclass
class Drift:
    """What differs between two snapshots."""

    old_collected_at: str
    new_collected_at: str
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[ResourceDrift]
    # sources that failed in either snapshot ({id, snapshot: old|new, error}): their
    # resources are not compared, since a failed collection is not a removal
    unavailable: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _summary(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: resource.get(key) for key in ("id", "name", "type", "cloud", "source")}


def _list_key(items: list[Any]) -> str | None:
    """The field that names every element of a list of mappings uniquely, if one does."""
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for candidate in _KEYS:
        values = [item.get(candidate) for item in items]
        named = all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values)
        if named and len(set(values)) == len(values):
            return candidate
    return None


def _scalar_list(items: list[Any]) -> bool:
    return all(not isinstance(item, (dict, list)) for item in items)


def diff_values(old: Any, new: Any, path: str, changes: list[Change]) -> None:
    """Append the differences between two JSON values under `path`."""
    if path and volatile(path):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                if not volatile(sub):
                    changes.append(Change(sub, None, new[key], "added"))
            elif key not in new:
                if not volatile(sub):
                    changes.append(Change(sub, old[key], None, "removed"))
            else:
                diff_values(old[key], new[key], sub, changes)
        return
    if isinstance(old, list) and isinstance(new, list):
        key = _list_key(old) if old else _list_key(new)
        if key is not None and (not new or _list_key(new) == key) and (not old or _list_key(old) == key):
            before = {item[key]: item for item in old}
            after = {item[key]: item for item in new}
            for name in sorted(set(before) | set(after), key=str):
                sub = f'{path}["{name}"]' if isinstance(name, str) else f"{path}[{name}]"
                if name not in before:
                    changes.append(Change(sub, None, after[name], "added"))
                elif name not in after:
                    changes.append(Change(sub, before[name], None, "removed"))
                else:
                    diff_values(before[name], after[name], sub, changes)
            return
        if _scalar_list(old) and _scalar_list(new):
            if sorted(map(str, old)) != sorted(map(str, new)):
                changes.append(Change(path, old, new, "changed"))
            return
        if len(old) == len(new):
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                diff_values(a, b, f"{path}[{index}]", changes)
            return
        changes.append(Change(path, old, new, "changed"))
        return
    if old != new and not (_is_nan(old) and _is_nan(new)):  # NaN equals nothing, itself included
        changes.append(Change(path, old, new, "changed"))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def diff_snapshots(old: Snapshot, new: Snapshot) -> Drift:
    """Resources added, removed and changed from `old` to `new`. Resources of a source that
    failed in either snapshot are left out of the comparison and the source is reported:
    what a failed collection did not see has not been removed. So are the resources of a
    source the new snapshot did not collect at all (a snapshot of one vCenter compared
    with one of two): not looking is no removal. A source only the new snapshot has brings
    its resources in as added."""
    unavailable = [{"id": s.id, "snapshot": label, "error": s.error, "status": "failed"}
                   for label, snapshot in (("old", old), ("new", new)) for s in snapshot.sources if s.status != "ok"]
    collected_now = {s.id for s in new.sources}
    unavailable += [{"id": s.id, "snapshot": "new", "error": "not collected in the new snapshot",
                     "status": "not collected"} for s in old.sources
                    if s.id not in collected_now and s.status == "ok"]
    skipped = {entry["id"] for entry in unavailable}
    before = {resource_key(r): r for r in old.resources if r["source"] not in skipped}
    after = {resource_key(r): r for r in new.resources if r["source"] not in skipped}
    changed = []
    for key in sorted(set(before) & set(after)):
        changes: list[Change] = []
        diff_values(before[key], after[key], "", changes)
        if changes:
            resource = after[key]
            changed.append(ResourceDrift(id=resource["id"], name=resource["name"], type=resource["type"],
                                         cloud=resource["cloud"], source=resource["source"], changes=changes))
    return Drift(old_collected_at=old.collected_at, new_collected_at=new.collected_at,
                 added=[_summary(after[k]) for k in sorted(set(after) - set(before))],
                 removed=[_summary(before[k]) for k in sorted(set(before) - set(after))],
                 changed=changed, unavailable=unavailable)
