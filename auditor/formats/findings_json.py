"""findings.json: the machine-readable result of a scan, documented in docs/findings-json.md.

Stable: keys are only ever added within a schema_version; `auditor report --from` and the
CI gate read it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError
from ..files import read_input
from ..findings import Finding, RuleInfo, ScanReport
from ..jsonio import to_json
from . import ReportFormat

SCHEMA = "auditor.findings"
SCHEMA_VERSION = 1


def summary(report: ScanReport) -> dict[str, Any]:
    """Counts by severity, category, cloud and source."""
    live = [f for f in report.findings if f.state != "absent"]
    return {"total": len(live),
            "suppressed": sum(1 for f in live if f.suppression),
            "by_state": report.counts_by("state") if report.compared_with else {},
            "by_severity": report.counts_by("severity"),
            "by_category": report.counts_by("category"),
            "by_cloud": report.counts_by("cloud"),
            "by_source": report.counts_by("source")}


def report_document(report: ScanReport) -> dict[str, Any]:
    """The findings.json document for a report."""
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "tool": {"name": "auditor", "version": report.tool_version},
        "scanned_at": report.scanned_at, "as_of": report.as_of,
        "snapshot": {"collected_at": report.collected_at, "resource_count": report.resource_count,
                     "resource_counts": report.resource_counts,
                     "sources": report.sources, "incomplete": report.incomplete},
        "summary": summary(report),
        "compared_with": report.compared_with,
        "waivers": report.waivers,
        "history": report.history,
        "rules": [rule.as_dict() for rule in report.rules],
        "findings": [finding.as_dict() for finding in report.findings],
    }


class FindingsJson(ReportFormat):
    name = "json"
    filename = "findings.json"

    def render(self, report: ScanReport) -> bytes:
        return to_json(report_document(report), indent=True) + b"\n"


def read_json(path: Path, what: str) -> Any:
    """A JSON document from a user-supplied file; errors name the file."""
    try:
        return orjson.loads(read_input(path, what))
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not a {what}: invalid JSON ({exc.msg})", where=str(path), line=exc.lineno) from None


def load_report(path: Path) -> ScanReport:
    """Read a findings.json back into a ScanReport; errors name the file."""
    return report_from_document(read_json(path, "findings.json"), str(path))


def report_from_document(document: Any, where: str) -> ScanReport:
    """Build a ScanReport from a parsed findings.json document."""
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise InputError(f"not a findings.json (expected \"schema\": \"{SCHEMA}\")", where=where)
    version = document.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputError(f"findings schema_version {version!r} is not one this auditor reads "
                         f"(<= {SCHEMA_VERSION}); upgrade auditor", where=where)
    try:
        snapshot = document["snapshot"]
        rules = [RuleInfo(**{k: rule[k] for k in RuleInfo.__dataclass_fields__})
                 for rule in document["rules"]]
        findings = [Finding.from_dict(finding) for finding in document["findings"]]
        return ScanReport(
            tool_version=document["tool"]["version"], scanned_at=document["scanned_at"],
            as_of=document["as_of"], collected_at=snapshot["collected_at"],
            sources=snapshot["sources"], resource_count=snapshot["resource_count"],
            rules=rules, findings=findings, resource_counts=snapshot.get("resource_counts", {}),
            compared_with=document.get("compared_with"), waivers=document.get("waivers") or [],
            history=document.get("history") or [])
    except (KeyError, TypeError) as exc:
        raise InputError(f"findings.json is missing or has a malformed field ({exc})",
                         where=where) from None
