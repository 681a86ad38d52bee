"""Findings and the scan report every output format renders.

A finding is one (rule, resource) pair, or one (rule, resource, list element) when the
rule matched with `any_item`. Its fingerprint hashes only the rule id, the resource's
stable id and the element's key: never names, messages or evidence, so a renamed VM or an
edited description keeps its fingerprint and a CI gate can tell new from known.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from operator import attrgetter
from typing import Any

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def fingerprint(rule_id: str, resource_key: str, item_key: str | None) -> str:
    """Stable identity of a finding across scans."""
    text = "\x1f".join((rule_id, resource_key, item_key or ""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class Finding:
    """One violation of one rule by one resource (or one element of a resource's list)."""

    rule_id: str
    fingerprint: str
    severity: str
    category: str
    title: str
    message: str
    resource_id: str
    resource_name: str
    resource_type: str
    cloud: str
    source: str
    item_key: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    state: str | None = None  # new / unchanged / updated / absent, set by the gate
    suppression: dict[str, Any] | None = None  # the waiver that accepts this finding, if any
    first_seen: str | None = None  # from the scan history, when one is kept

    def as_dict(self) -> dict[str, Any]:
        """JSON form used in findings.json (shallow: dataclasses.asdict would deep-copy
        every evidence list, seconds for a large estate)."""
        return dict(zip(_FINDING_FIELDS, _finding_values(self), strict=True))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Finding:
        """Rebuild from findings.json (unknown keys ignored, for forward compatibility)."""
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        return cls(**known)

    def sort_key(self) -> tuple[int, str, str, str]:
        """Most severe first, then by rule and resource, for stable output."""
        return (SEVERITY_RANK.get(self.severity, 9), self.rule_id, self.resource_id,
                self.item_key or "")


_FINDING_FIELDS = tuple(Finding.__dataclass_fields__)
_finding_values = attrgetter(*_FINDING_FIELDS)  # all fields in one C call: 100,000 findings add up


@dataclass
class RuleInfo:
    """A rule's metadata as reports show it (no predicates, no file handles)."""

    id: str
    title: str
    severity: str
    category: str
    resources: list[str]
    description: str
    remediation: str
    references: list[str]
    frameworks: dict[str, list[str]]
    file: str
    line: int
    pack: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form used in findings.json."""
        return asdict(self)


@dataclass
class ScanReport:
    """Everything the formats need: what was scanned, with which rules, and what was found."""

    tool_version: str
    scanned_at: str
    as_of: str  # the date lifecycle and date rules were evaluated against
    collected_at: str
    sources: list[dict[str, Any]]
    resource_count: int
    rules: list[RuleInfo]
    findings: list[Finding]
    resource_counts: dict[str, int] = field(default_factory=dict)  # by cloud:type
    compared_with: str | None = None  # the previous scan the states are relative to
    waivers: list[dict[str, Any]] = field(default_factory=list)  # each waiver with its status
    history: list[dict[str, Any]] = field(default_factory=list)  # recent scans' counts, oldest first

    @property
    def incomplete(self) -> bool:
        """True when a source failed to collect."""
        return any(source.get("status") != "ok" for source in self.sources)

    def counts_by(self, attribute: str) -> dict[str, int]:
        """Number of findings per value of one finding attribute (severity, category...)."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            if finding.state == "absent" and attribute != "state":
                continue  # fixed since the previous scan: not a current finding
            key = getattr(finding, attribute)
            counts[key] = counts.get(key, 0) + 1
        return counts
