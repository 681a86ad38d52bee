"""SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.

- One run per source category: `vsphere/<vcenter>/` or `azure/<tenant>/`
  (`automationDetails.id`), so GitHub tracks each vCenter and tenant separately and a
  category whose run has no results closes its old alerts. Every category of the scanned
  snapshot gets a run, with or without results.
- Every result has a physicalLocation (GitHub rejects results without one): the rule's
  YAML file and line. The cloud resource is the logicalLocation.
- `partialFingerprints.primaryLocationLineHash` is the finding's fingerprint, so GitHub
  keeps one alert per rule and resource across scans.
- A category whose sources all failed to collect gets no run, so that GitHub keeps its
  alerts open instead of closing them as fixed.
- GitHub's limits (25,000 results per run, 10 MB gzipped upload) are kept by dropping the
  lowest severities first; the run's properties say what was cut.
"""

from __future__ import annotations

import zlib
from typing import Any

from ..errors import InputError
from ..findings import SEVERITY_RANK, Finding, RuleInfo, ScanReport
from ..jsonio import to_json
from . import ReportFormat

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
MAX_RESULTS_PER_RUN = 25_000
# the category of the run that reports sources which could not be collected (no alerts of its own)
COLLECTION_CATEGORY = "auditor/collection/"
MAX_GZIPPED_BYTES = 10 * 1024 * 1024
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub reads security-severity as CVSS-like: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium,
# 0.1-3.9 low. Info rules carry none, so GitHub shows them as plain notes.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}


def category(source: dict[str, Any]) -> str:
    """The automationDetails.id of the run a source's findings go to."""
    if source.get("cloud") == "azure":
        tenant = (source.get("details") or {}).get("tenant_id") or source["id"]
        return f"azure/{tenant}/"
    return f"{source.get('cloud', 'unknown')}/{source['id']}/"


def _rule_name(rule: RuleInfo) -> str:
    # SARIF names are identifiers shown in UIs: PascalCase of the title
    return "".join(word[:1].upper() + word[1:] for word in
                   "".join(c if c.isalnum() else " " for c in rule.title).split())


def _help_markdown(rule: RuleInfo) -> str:
    lines = [f"**{rule.title}**", "", rule.description, "", "**Remediation**", "",
             rule.remediation]
    if rule.frameworks:
        lines += ["", "**Controls**", ""]
        lines += [f"- {name}: {', '.join(ids)}" for name, ids in sorted(rule.frameworks.items())]
    if rule.references:
        lines += ["", "**References**", ""] + [f"- <{url}>" for url in rule.references]
    lines += ["", f"Severity: {rule.severity}. Category: {rule.category}. "
                  f"Applies to: {', '.join(rule.resources)}."]
    return "\n".join(lines)


def _help_text(rule: RuleInfo) -> str:
    text = f"{rule.description}\n\nRemediation: {rule.remediation}"
    if rule.references:
        text += "\n\nReferences: " + " ".join(rule.references)
    return text


def sarif_rule(rule: RuleInfo) -> dict[str, Any]:
    """reportingDescriptor for one rule."""
    tags = ["security", rule.category]
    tags += [f"{name}/{control}" for name, ids in sorted(rule.frameworks.items()) for control in ids]
    properties: dict[str, Any] = {"tags": tags, "precision": "high",
                                  "problem.severity": LEVELS[rule.severity] if rule.severity != "low"
                                  else "recommendation", "severity": rule.severity,
                                  "pack": rule.pack}
    if rule.severity in SECURITY_SEVERITY:
        properties["security-severity"] = SECURITY_SEVERITY[rule.severity]
    descriptor: dict[str, Any] = {
        "id": rule.id, "name": _rule_name(rule),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": _help_text(rule), "markdown": _help_markdown(rule)},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": properties,
    }
    if rule.references:
        descriptor["helpUri"] = rule.references[0]
    return descriptor


def physical_location(rule: RuleInfo | None) -> dict[str, Any]:
    """Where a rule is written: the location every result of the rule points at."""
    file = rule.file if rule else "rules"
    line = rule.line if rule else 1
    return {"artifactLocation": {"uri": file}, "region": {"startLine": max(1, line)}}


def sarif_result(finding: Finding, rule: RuleInfo | None, rule_index: int,
                 location: dict[str, Any] | None = None) -> dict[str, Any]:
    """One result; `baselineState` comes from the gate when findings were compared.
    `location` may be one shared mapping for all results of the rule (it is only read)."""
    result: dict[str, Any] = {
        "ruleId": finding.rule_id, "ruleIndex": rule_index,
        # what the provider acts on (AVS hosts) is shown, as a note: it blocks no pull request
        "level": "note" if finding.responsibility == "provider" else LEVELS.get(finding.severity, "warning"),
        "message": {"text": finding.message},
        "locations": [{
            "physicalLocation": location or physical_location(rule),
            "logicalLocations": [{"kind": "resource", "name": finding.resource_name,
                                  "fullyQualifiedName": finding.resource_id}],
        }],
        "partialFingerprints": {"primaryLocationLineHash": finding.fingerprint},
        "properties": {"resourceId": finding.resource_id, "resourceName": finding.resource_name,
                       "resourceType": finding.resource_type, "cloud": finding.cloud,
                       "source": finding.source, "severity": finding.severity,
                       "category": finding.category, "evidence": finding.evidence},
    }
    if finding.item_key is not None:
        result["properties"]["item"] = finding.item_key
    if finding.responsibility != "customer":
        result["properties"]["responsibility"] = finding.responsibility
    if finding.state in ("new", "unchanged", "updated", "absent"):
        result["baselineState"] = finding.state
    elif finding.state == "unknown":
        # not looked at this time (source failed, rule not run): still believed open, so it
        # stays in the upload and its alert stays open; the state says why it is here
        result["baselineState"] = "unchanged"
    if finding.state is not None:
        result["properties"]["state"] = finding.state
    if finding.suppression:
        waiver = finding.suppression
        result["suppressions"] = [{
            "kind": "external", "status": "accepted", "justification": waiver["reason"],
            "properties": {"owner": waiver["owner"], "expires": waiver["expires"], "ticket": waiver.get("ticket"),
                           "waiver": f"{waiver['file']}:{waiver['line']}"}}]
    return result


def _applies_to(rule: RuleInfo, cloud: str) -> bool:
    return any(selector.split(":", 1)[0] in ("*", cloud) for selector in rule.resources)


def _fit(results: list[tuple[Finding, dict[str, Any]]], limit: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Keep at most `limit` results, most severe first; count what was cut by severity."""
    ordered = sorted(results, key=lambda pair: SEVERITY_RANK.get(pair[0].severity, 9))
    cut: dict[str, int] = {}
    for finding, _ in ordered[limit:]:
        cut[finding.severity] = cut.get(finding.severity, 0) + 1
    return [result for _, result in ordered[:limit]], cut


def gzipped_size(payload: bytes, level: int = 1) -> int:
    """Size of `payload` gzipped. Level 1 compresses least, so a file that fits at level 1
    fits at the level any uploader uses."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return len(compressor.compress(payload)) + len(compressor.flush())


class SarifReport(ReportFormat):
    name = "sarif"
    filename = "results.sarif"

    def __init__(self, max_results: int = MAX_RESULTS_PER_RUN,
                 max_gzipped_bytes: int = MAX_GZIPPED_BYTES, include_absent: bool = False):
        self.max_results = max_results
        self.max_gzipped_bytes = max_gzipped_bytes
        # GitHub's upload file must not carry absent (fixed) results; other consumers may
        self.include_absent = include_absent

    def document(self, report: ScanReport, limit: int | None = None) -> dict[str, Any]:
        """The SARIF log as a mapping."""
        limit = self.max_results if limit is None else limit
        rules = report.rules
        index = {rule.id: position for position, rule in enumerate(rules)}
        by_id = {rule.id: rule for rule in rules}
        locations = {rule.id: physical_location(rule) for rule in rules}
        categories: dict[str, list[dict[str, Any]]] = {}
        source_category: dict[str, str] = {}
        for source in report.sources:
            name = category(source)
            categories.setdefault(name, []).append(source)
            source_category[source["id"]] = name
        grouped: dict[str, list[tuple[Finding, dict[str, Any]]]] = {name: [] for name in categories}
        for finding in report.findings:
            if finding.state == "absent" and not self.include_absent:
                continue
            name = source_category.get(finding.source) or f"{finding.cloud}/{finding.source}/"
            grouped.setdefault(name, []).append(
                (finding, sarif_result(finding, by_id.get(finding.rule_id), index.get(finding.rule_id, -1),
                                       locations.get(finding.rule_id))))
        driver_rules = [sarif_rule(rule) for rule in rules]
        runs = []
        uncollected: list[dict[str, Any]] = []
        for name, pairs in grouped.items():
            sources = categories.get(name, [])
            failed_here = {s["id"] for s in sources if s.get("status") != "ok"}
            if failed_here and not any(f.state == "unknown" and f.source in failed_here for f, _ in pairs):
                # no run for a category (a vCenter, a tenant) part or all of which could not be
                # collected, unless earlier findings of what failed are here (--compare: as
                # unknown, kept open as unchanged): a run without them would tell GitHub that
                # their alerts are fixed. GitHub keeps the category's earlier analysis instead.
                uncollected.extend(s for s in sources if s["id"] in failed_here)
                continue
            results, cut = _fit(pairs, limit)
            properties: dict[str, Any] = {
                "sources": [{"id": s["id"], "status": s.get("status", "ok"), "error": s.get("error")}
                            for s in sources],
                "scannedAt": report.scanned_at, "asOf": report.as_of,
                "collectedAt": report.collected_at,
            }
            if report.waivers:
                properties["waivers"] = [{k: w[k] for k in ("rule", "resource", "owner", "expires", "status",
                                                            "matched")} for w in report.waivers]
            if cut:
                properties["truncated"] = {"kept": len(results), "omitted": sum(cut.values()),
                                           "omittedBySeverity": cut,
                                           "reason": f"GitHub code scanning limits: {self.max_results} results "
                                                     f"per run, {self.max_gzipped_bytes:,} bytes gzipped"}
            failed = [s for s in sources if s.get("status") != "ok"]
            invocation: dict[str, Any] = {"executionSuccessful": not failed,
                                          "endTimeUtc": report.scanned_at}
            notifications = [
                {"level": "error", "message": {"text": f"collection from {s['id']} failed: {s.get('error')}"}}
                for s in failed]
            # optional lookups a source could not make (licence assignments, say): the rules that
            # read them judged those resources as not evaluated
            notifications += [
                {"level": "warning", "message": {"text": f"{s['id']}: {what} not collected: {why}"}}
                for s in sources if isinstance(s.get("details"), dict)
                and isinstance(s["details"].get("not_collected"), dict)
                for what, why in s["details"]["not_collected"].items()]
            cloud = name.split("/", 1)[0]
            # a rule that did not judge this run's resources is no pass: say so, per rule
            notifications += [
                {"level": "note" if rule.status == "partial" else "warning",
                 "message": {"text": f"rule {rule.id} {rule.status.replace('_', ' ')}: {rule.reason}"},
                 "associatedRule": {"id": rule.id, "index": index[rule.id]}}
                for rule in rules if rule.status != "evaluated" and _applies_to(rule, cloud)]
            if notifications:
                invocation["toolExecutionNotifications"] = notifications
            if report.sample:
                properties["sample"] = True
            runs.append({
                "tool": {"driver": {"name": "auditor", "version": report.tool_version,
                                    "semanticVersion": report.tool_version,
                                    "rules": driver_rules}},
                "automationDetails": {"id": name},
                "invocations": [invocation],
                "results": results,
                "columnKind": "unicodeCodePoints",
                "properties": properties,
            })
        if uncollected:
            runs.append(self._collection_run(report, uncollected, driver_rules))
        return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}

    @staticmethod
    def _collection_run(report: ScanReport, failed: list[dict[str, Any]],
                        driver_rules: list[dict[str, Any]]) -> dict[str, Any]:
        """A run of its own category that says which sources could not be collected, so the
        log never reads as a clean scan, without touching those sources' alerts."""
        notifications = [{"level": "error", "message": {"text": f"collection from {s['id']} failed: {s.get('error')}; "
                                                                 "its findings were not evaluated"}}
                         for s in failed]
        properties: dict[str, Any] = {"sources": [{"id": s["id"], "status": s.get("status"), "error": s.get("error")}
                                                  for s in failed],
                                      "scannedAt": report.scanned_at, "asOf": report.as_of}
        if report.sample:
            properties["sample"] = True
        return {"tool": {"driver": {"name": "auditor", "version": report.tool_version,
                                    "semanticVersion": report.tool_version, "rules": driver_rules}},
                "automationDetails": {"id": COLLECTION_CATEGORY},
                "invocations": [{"executionSuccessful": False, "endTimeUtc": report.scanned_at,
                                 "toolExecutionNotifications": notifications}],
                "results": [], "columnKind": "unicodeCodePoints", "properties": properties}

    def fits(self, payload: bytes) -> bool:
        """True when `payload` is within the gzipped size limit (cheap for small files)."""
        return len(payload) <= self.max_gzipped_bytes or gzipped_size(payload) <= self.max_gzipped_bytes

    def render(self, report: ScanReport) -> bytes:
        limit = self.max_results
        while True:
            payload = to_json(self.document(report, limit)) + b"\n"
            if self.fits(payload):
                return payload
            if limit == 0:
                raise InputError(f"SARIF cannot fit in {self.max_gzipped_bytes:,} bytes gzipped even "
                                 "without results: the rule metadata alone is larger; run fewer rules",
                                 where="results.sarif")
            limit = limit * 3 // 4  # still too large: keep fewer, most severe first
