"""The CI gate: compare findings with a previous scan, apply waivers, decide the exit code.

- States: `new` (fingerprint not in the previous scan), `unchanged`, `updated` (same
  fingerprint, different evidence or severity), `absent` (in the previous scan, and its
  rule and source were evaluated this time without finding it: fixed), `unknown` (in the
  previous scan, but its source failed or was not collected, or its rule did not run or
  could not judge the resource: neither fixed nor open), `waiver-expired` (an expired
  waiver covers it).
- Waivers (YAML): rule id (or glob) + resource pattern + reason + owner + expiry date. A
  waived finding is reported as suppressed. An expired waiver suppresses nothing and is
  reported, and the findings it used to cover fail the gate even though they are not new:
  accepted risk that has fallen due. A waiver that matches nothing is reported as stale; one
  that waives everything (`*` for rule and resource) or very many findings is flagged.
- Exit: with `--fail-on new`, 1 only when a new or waiver-expired, unsuppressed finding at
  or above the minimum severity exists; unknown and absent findings never fail it. 3 when
  collection was incomplete.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from .baselines import parse_date
from .errors import InputError
from .files import DEFAULT_INPUT_LIMIT
from .findings import NOT_CURRENT, SEVERITY_RANK, Finding
from .jsonio import encodable
from .patterns import Pattern, fullmatch, glob
from .text import path_text, plural
from .yamlfile import LinedDict, LinedList, line_of, load_yaml

WAIVER_KEYS = {"rule", "resource", "reason", "owner", "expires", "ticket"}
REQUIRED_WAIVER_KEYS = ("rule", "resource", "reason", "owner", "expires")


# --- previous findings ----------------------------------------------------------------------

def load_previous(path: Path, limit: int = DEFAULT_INPUT_LIMIT) -> list[Finding]:
    """Findings of a previous scan (a file of at most `limit` bytes), from our findings.json
    or our SARIF."""
    from .formats.findings_json import SCHEMA, read_json, report_from_document

    where = str(path)
    document = read_json(path, "previous scan", limit)
    if isinstance(document, dict) and document.get("schema") == SCHEMA:
        # what that scan found fixed is not a finding any more; what it could not look at
        # (unknown) is still believed open and carries forward
        return [f for f in report_from_document(document, where).findings if f.state != "absent"]
    if isinstance(document, dict) and document.get("version") == "2.1.0" and isinstance(document.get("runs"), list):
        return _from_sarif(document, where)
    raise InputError("previous scan must be an auditor findings.json or SARIF file", where=where)


def _from_sarif(document: dict[str, Any], where: str) -> list[Finding]:
    from .formats.findings_json import DocumentChecker

    check = DocumentChecker(where, "SARIF")
    findings = []
    for index, run in enumerate(document["runs"]):
        label = f"runs[{index}]."
        if not isinstance(run, dict):
            raise check.fail(label[:-1], "is not an object")
        driver = check.optional(check.optional(run, "tool", dict, {}, label), "driver", dict, {}, f"{label}tool.")
        if driver.get("name") != "auditor":
            raise InputError("SARIF was not written by auditor: its fingerprints cannot be compared",
                             where=where)
        for number, result in enumerate(check.optional(run, "results", list, [], label)):
            findings.extend(_sarif_result(check, result, f"{label}results[{number}]"))
    return findings


def _sarif_result(check: Any, result: Any, label: str) -> list[Finding]:
    """The finding one SARIF result of ours stands for (none for a fixed one); fields of a
    wrong shape are one-line errors."""
    if not isinstance(result, dict):
        raise check.fail(label, "is not an object")
    props = check.optional(result, "properties", dict, {}, f"{label}.")
    fingerprints = check.optional(result, "partialFingerprints", dict, {}, f"{label}.")
    fingerprint = check.optional(fingerprints, "primaryLocationLineHash", str, None, f"{label}.partialFingerprints.")
    if not fingerprint or result.get("baselineState") == "absent":
        return []
    message = check.optional(result, "message", dict, {}, f"{label}.")
    evidence = check.optional(props, "evidence", list, [], f"{label}.properties.")
    if not all(isinstance(entry, dict) for entry in evidence):
        raise check.fail(f"{label}.properties.evidence", "must be a list of objects")
    severity = check.severity(props, "severity", f"{label}.properties.") if "severity" in props else "info"

    def text(parent: dict[str, Any], key: str, prefix: str, default: str = "") -> str:
        return check.optional(parent, key, str, default, prefix)
    return [Finding(
        rule_id=text(result, "ruleId", f"{label}."), fingerprint=fingerprint, severity=severity,
        category=text(props, "category", f"{label}.properties.", "other"), title="",
        message=text(message, "text", f"{label}.message."),
        resource_id=text(props, "resourceId", f"{label}.properties."),
        resource_name=text(props, "resourceName", f"{label}.properties."),
        resource_type=text(props, "resourceType", f"{label}.properties."),
        cloud=text(props, "cloud", f"{label}.properties."), source=text(props, "source", f"{label}.properties."),
        item_key=check.optional(props, "item", str, None, f"{label}.properties."), evidence=evidence)]


def _evidence_key(finding: Finding) -> bytes:
    # what was observed, not how it was worded: a renamed VM changes its message, not this
    observed = [(e.get("path"), e.get("actual"), e.get("absent", False)) for e in finding.evidence]
    ordered = sorted(observed, key=lambda item: str(item[0]))
    try:
        return orjson.dumps(ordered, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # a big integer or deep nesting from an earlier report
        return orjson.dumps(encodable(ordered), option=orjson.OPT_NON_STR_KEYS)


def compare(current: list[Finding], previous: list[Finding],
            evaluated: Callable[[Finding], bool] = lambda finding: True) -> list[Finding]:
    """Mark each current finding's state; append previous findings that are gone, as
    `absent` where `evaluated(old)` says this scan looked at its rule and resource, and as
    `unknown` where it could not (failed source, rule not run, data missing)."""
    before = {finding.fingerprint: finding for finding in previous}
    seen = set()
    for finding in current:
        old = before.get(finding.fingerprint)
        seen.add(finding.fingerprint)
        if old is None:
            finding.state = "new"
        elif old.responsibility == "provider" and finding.responsibility != "provider":
            # the gate never counted it: now that it is the customer's, it is news to the gate
            finding.state = "new"
        elif old.severity != finding.severity or _evidence_key(old) != _evidence_key(finding):
            finding.state = "updated"
        else:
            finding.state = "unchanged"
    gone = []
    for fingerprint, old in before.items():
        if fingerprint not in seen:
            gone_finding = copy.copy(old)
            gone_finding.state = "absent" if evaluated(old) else "unknown"
            gone_finding.suppression = None
            gone.append(gone_finding)
    return current + sorted(gone, key=lambda f: f.sort_key())


# --- waivers --------------------------------------------------------------------------------

@dataclass
class Waiver:
    """One accepted risk: which rule on which resources, why, who owns it, until when."""

    rule: str
    resource: str
    reason: str
    owner: str
    expires: date
    ticket: str | None
    file: str
    line: int
    _rule_pattern: Pattern | None = None
    _resource_pattern: Pattern | None = None

    def __post_init__(self) -> None:
        self._rule_pattern = glob(self.rule)
        # resource ids of Azure are case-insensitive; globs are matched case-insensitively
        self._resource_pattern = glob(self.resource, ignore_case=True)

    def matches(self, finding: Finding) -> bool:
        """True when this waiver names the finding's rule and its resource (id or name)."""
        if not fullmatch(self._rule_pattern, finding.rule_id):
            return False
        return (fullmatch(self._resource_pattern, finding.resource_id)
                or fullmatch(self._resource_pattern, finding.resource_name))

    def as_dict(self) -> dict[str, Any]:
        """The waiver as reports show it."""
        return {"rule": self.rule, "resource": self.resource, "reason": self.reason, "owner": self.owner,
                "expires": self.expires.isoformat(), "ticket": self.ticket, "file": self.file, "line": self.line}


def load_waivers(path: Path) -> list[Waiver]:
    """Read a waivers file; every problem is `file:line: what is wrong`."""
    where = path_text(path)
    document = load_yaml(path)
    if not isinstance(document, LinedDict) or not isinstance(document.get("waivers"), LinedList):
        raise InputError("a waivers file needs a top-level 'waivers:' list", where=where, line=line_of(document, 1))
    waivers = []
    entries = document["waivers"]
    for index, entry in enumerate(entries):
        line = entries.item_lines[index]
        if not isinstance(entry, LinedDict):
            raise InputError("each waiver must be a mapping", where=where, line=line)
        for key in entry:
            if key not in WAIVER_KEYS:
                raise InputError(f"unknown waiver key '{key}' (allowed: {', '.join(sorted(WAIVER_KEYS))})",
                                 where=where, line=entry.line_of(key))
        for key in REQUIRED_WAIVER_KEYS:
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"waiver needs '{key}' as non-empty text", where=where,
                                 line=entry.line_of(key) if key in entry else entry.line)
        expires = parse_date(entry["expires"])
        if expires is None:
            raise InputError("waiver 'expires' must be an ISO date (2027-03-31)", where=where,
                             line=entry.line_of("expires"))
        ticket = entry.get("ticket")
        try:  # its globs compile here
            waivers.append(Waiver(rule=entry["rule"].strip(), resource=entry["resource"].strip(),
                                  reason=entry["reason"].strip(), owner=entry["owner"].strip(), expires=expires,
                                  ticket=str(ticket) if ticket is not None else None, file=where, line=entry.line))
        except ValueError as exc:
            raise InputError(f"waiver 'rule' or 'resource' is not a usable glob: {exc}", where=where,
                             line=entry.line) from None
    return waivers


def apply_waivers(findings: list[Finding], waivers: list[Waiver], today: date,
                  incomplete: bool = False) -> list[dict[str, Any]]:
    """Suppress findings covered by a current waiver, mark those an expired waiver covers
    `waiver-expired`; return every waiver with its status.

    Status: `active` (matched, in date), `expired` (past its date: suppresses nothing),
    `stale` (in date but matches no finding: the risk it accepted is gone, delete it), or
    `not_evaluated` (matches no current finding, but a source failed (`incomplete`) or the
    findings it matches are unknown: what it covers could not be looked at, so it is not
    called stale). A `warning` says when a waiver is broad enough to hide real findings.
    """
    statuses = []
    current = [f for f in findings if f.state not in NOT_CURRENT]
    expired_over: list[Finding] = []
    for waiver in waivers:
        expired = waiver.expires < today
        matched = [f for f in current if waiver.matches(f)]
        if not expired:  # an expired waiver suppresses nothing, whatever order waivers come in
            for finding in matched:
                if finding.suppression is None:
                    finding.suppression = waiver.as_dict()
        else:
            expired_over.extend(matched)
        if expired or matched:
            status = "expired" if expired else "active"
        elif incomplete or any(waiver.matches(f) for f in findings if f.state == "unknown"):
            status = "not_evaluated"
        else:
            status = "stale"
        entry = waiver.as_dict() | {"status": status, "matched": len(matched)}
        warning = waiver_warning(waiver, len(matched), len(current))
        if warning:
            entry["warning"] = warning
        statuses.append(entry)
    for finding in expired_over:
        if finding.suppression is None:  # another, current waiver still accepts it
            finding.state = "waiver-expired"
    return statuses


BROAD_WAIVER_FINDINGS = 50  # a waiver matching more findings than this is flagged


# ids and names of every kind: a glob that matches them all (`*`, `?*`, `**`) matches anything
_PROBES = ("x", "AZ-NET-001", "VS-SUP-001", "vc1.corp.example/host-12", "dc1-web01",
           "/subscriptions/0/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n")


def _matches_anything(pattern: Pattern | None) -> bool:
    return pattern is not None and all(fullmatch(pattern, probe) for probe in _PROBES)


def waiver_warning(waiver: Waiver, matched: int, current: int) -> str | None:
    """Why a waiver deserves a second look: it waives everything, or very many findings."""
    if _matches_anything(waiver._rule_pattern) and _matches_anything(waiver._resource_pattern):
        return "waives every rule on every resource: it hides any finding, including future ones"
    if matched > BROAD_WAIVER_FINDINGS:
        return (f"waives {matched} of {current} findings (more than {BROAD_WAIVER_FINDINGS}): "
                "narrow it to the resources whose risk was accepted")
    return None


# --- the decision ---------------------------------------------------------------------------

@dataclass
class GateResult:
    """What failed the gate, for the exit code and the summary."""

    failing: list[Finding]
    reason: str
    provider_left: int = 0  # current findings the provider acts on that the gate did not count

    @property
    def failed(self) -> bool:
        return bool(self.failing)


def _provider_note(left_out: list[Finding]) -> tuple[int, str]:
    """How many findings the provider acts on would have failed the gate, and the words."""
    if not left_out:
        return 0, ""
    return len(left_out), (f"; {plural(len(left_out), 'finding')} the provider acts on not counted "
                           "(--gate-provider-findings counts them)")


def decide(findings: list[Finding], fail_on: str, min_severity: str,
           provider_findings: bool = False) -> GateResult:
    """Which findings fail the gate under `--fail-on` (a severity, `new`, or `never`).
    Absent and unknown findings never fail it; waived ones neither; nor those the provider
    acts on (Azure VMware Solution hosts), unless `provider_findings`."""
    if fail_on == "never":
        return GateResult([], "never fails")
    current = [f for f in findings if f.state not in NOT_CURRENT and f.suppression is None]
    live = [f for f in current if provider_findings or f.responsibility != "provider"]
    left_out = [f for f in current if f not in live]
    if fail_on == "new":
        threshold = SEVERITY_RANK[min_severity]
        def fails(f: Finding) -> bool:
            return SEVERITY_RANK[f.severity] <= threshold and f.state in ("new", "waiver-expired")
        failing = [f for f in live if fails(f)]
        left, note = _provider_note([f for f in left_out if fails(f)])
        new = sum(1 for f in failing if f.state == "new")
        parts = [plural(new, "new finding")] if new else []
        if len(failing) > new:
            parts.append(plural(len(failing) - new, "finding") + " whose waiver expired")
        return GateResult(failing, f"{' and '.join(parts)} at or above {min_severity}{note}", left)
    threshold = SEVERITY_RANK[fail_on]
    failing = [f for f in live if SEVERITY_RANK[f.severity] <= threshold]
    left, note = _provider_note([f for f in left_out if SEVERITY_RANK[f.severity] <= threshold])
    return GateResult(failing, f"{plural(len(failing), 'finding')} at or above {fail_on}{note}", left)

