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
    # set by the gate: new / unchanged / updated (compared with a previous scan), absent
    # (fixed since), unknown (its rule or source was not evaluated this time: neither open
    # nor fixed), waiver-expired (an expired waiver covers it: due again)
    state: str | None = None
    suppression: dict[str, Any] | None = None  # the waiver that accepts this finding, if any
    first_seen: str | None = None  # from the scan history, when one is kept
    # who acts on it: the customer, or the provider (Microsoft runs the hosts of an Azure
    # VMware Solution private cloud); provider findings do not fail the gate by default
    responsibility: str = "customer"

    def as_dict(self) -> dict[str, Any]:
        """JSON form used in findings.json (shallow: dataclasses.asdict would deep-copy
        every evidence list, seconds for a large estate)."""
        return dict(zip(_FINDING_FIELDS, finding_values(self), strict=True))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Finding:
        """Rebuild from findings.json (unknown keys ignored, for forward compatibility)."""
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        return cls(**known)

    def sort_key(self) -> str:
        """Most severe first, then by rule and resource, for stable output; a vSphere and an
        Azure resource can share an id, so cloud, source and fingerprint break the tie.

        One text, ordered as the tuple (severity rank, rule id, resource id, item key, cloud,
        source, fingerprint) would be: fields joined by NUL, which sorts below every character
        once NUL and \\x01 inside a field are escaped in an order-keeping way. A sort compares
        it in one C call, where a tuple's comparisons cost 0.3 s over 100,000 findings."""
        fields = (_RANK_DIGITS.get(self.severity, "9"), self.rule_id, self.resource_id,
                  self.item_key or "", self.cloud, self.source, self.fingerprint)
        key = "\x00".join(fields)
        if key.count("\x00") == 6 and "\x01" not in key:  # nothing to escape: the common case
            return key
        return "\x00".join(field.translate(_ORDER_ESCAPES) for field in fields)


_RANK_DIGITS = {name: str(rank) for name, rank in SEVERITY_RANK.items()}
# \x00 -> \x01\x01 and \x01 -> \x01\x02 keep the order of any two texts and leave no NUL
_ORDER_ESCAPES = str.maketrans({"\x00": "\x01\x01", "\x01": "\x01\x02"})


# states of findings that describe the estate now; absent and unknown ones are kept for the
# record (what was fixed, what could not be looked at) but are not current findings
NOT_CURRENT = frozenset({"absent", "unknown"})
STATES = ("new", "unchanged", "updated", "waiver-expired", "absent", "unknown")

_FINDING_FIELDS = tuple(Finding.__dataclass_fields__)
# every field of a finding as a tuple in declaration order (Finding(*values) makes it again), in
# one C call: 100,000 findings add up
finding_values = attrgetter(*_FINDING_FIELDS)


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
    # how the rule fared in this scan: evaluated, partial (some resources or sources could
    # not be looked at) or not_evaluated, with why, and per-resource counts (see RULE_COUNTS)
    status: str = "evaluated"
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form used in findings.json."""
        return asdict(self)


# per rule: resources checked (admitted by `where` and with the data it needs), of those
# passed, failed (an open finding) and waived (only waived findings); and not evaluated
# (admitted, but lacking data the rule needs)
RULE_COUNTS = ("checked", "passed", "failed", "waived", "not_evaluated")
RULE_STATUSES = ("evaluated", "partial", "not_evaluated")


@dataclass
class Summary:
    """The counts every output shows, computed once so that they agree everywhere.

    `total` counts current findings (not absent, not unknown), waived ones included;
    `open` those of them not waived. `by_*` count current findings; `by_state` every
    finding, and `by_category_severity` is what the category chart draws.
    """

    total: int
    open: int
    suppressed: int
    absent: int
    unknown: int
    by_state: dict[str, int]
    by_severity: dict[str, int]
    by_category: dict[str, int]
    by_cloud: dict[str, int]
    by_source: dict[str, int]
    by_category_severity: dict[str, dict[str, int]]
    rules_by_status: dict[str, int]

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
    sample: bool = False  # the bundled sample estate was scanned: nothing here is a real estate

    @property
    def incomplete(self) -> bool:
        """True when a source failed to collect."""
        return any(source.get("status") != "ok" for source in self.sources)

    @property
    def current(self) -> list[Finding]:
        """Findings that describe the estate now (not absent, not unknown)."""
        return [f for f in self.findings if f.state not in NOT_CURRENT]

    def summary(self) -> Summary:
        """The counts console, HTML, findings.json and JUnit all show."""
        by: dict[str, dict[str, int]] = {name: {} for name in ("severity", "category", "cloud", "source")}
        by_state: dict[str, int] = {}
        chart: dict[str, dict[str, int]] = {}
        total = suppressed = 0
        for finding in self.findings:
            if finding.state is not None:
                by_state[finding.state] = by_state.get(finding.state, 0) + 1
            if finding.state in NOT_CURRENT:
                continue
            total += 1
            if finding.suppression:
                suppressed += 1
            for name, counts in by.items():
                key = getattr(finding, name)
                counts[key] = counts.get(key, 0) + 1
            row = chart.setdefault(finding.category, {})
            row[finding.severity] = row.get(finding.severity, 0) + 1
        statuses: dict[str, int] = {}
        for rule in self.rules:
            statuses[rule.status] = statuses.get(rule.status, 0) + 1
        return Summary(total=total, open=total - suppressed, suppressed=suppressed,
                       absent=by_state.get("absent", 0), unknown=by_state.get("unknown", 0),
                       by_state=by_state, by_severity=by["severity"], by_category=by["category"],
                       by_cloud=by["cloud"], by_source=by["source"], by_category_severity=chart,
                       rules_by_status=statuses)
