"""The HTML report: one self-contained file for people (no network fetches).

Rendered with jinja2 autoescaping. Findings travel as JSON inside a
`<script type="application/json">` element, escaped so no `<` from a resource name can
close it, and the page builds rows with textContent only: a VM named
`<img src=x onerror=alert(1)>` shows as that text and runs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..findings import SEVERITY_RANK, STATES, ScanReport, Summary
from ..jsonio import to_json
from . import ReportFormat

TEMPLATES = Path(__file__).with_name("templates")
SEVERITIES = list(SEVERITY_RANK)
CATEGORY_ORDER = ["support-status", "network-isolation", "hardening", "licensing", "drift", "other"]
STATE_LABELS = {"new": "new", "unchanged": "unchanged", "updated": "updated", "waiver-expired": "waiver expired",
                "absent": "fixed (absent)", "unknown": "unknown (not evaluated)"}


def script_json(value: Any) -> str:
    """JSON safe to place inside a <script> element (no `</script>`, no `<!--`)."""
    text = to_json(value).decode("utf-8")
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _chart(summary: Summary) -> dict[str, Any]:
    """Bars of current findings per category, split by severity, sized for an inline SVG:
    the same counts as the cards and the console."""
    counts = summary.by_category_severity
    categories = [c for c in CATEGORY_ORDER if c in counts] + sorted(set(counts) - set(CATEGORY_ORDER))
    largest = max((sum(v.values()) for v in counts.values()), default=0) or 1
    bars = []
    for row, name in enumerate(categories):
        x = 0.0
        segments = []
        for severity in SEVERITIES:
            count = counts[name].get(severity, 0)
            if count:
                width = 100.0 * count / largest
                segments.append({"severity": severity, "count": count, "x": x, "width": width})
                x += width
        bars.append({"category": name, "total": sum(counts[name].values()), "y": row * 34,
                     "segments": segments})
    return {"bars": bars, "height": max(34 * len(bars), 34)}


def _trend(report: ScanReport) -> dict[str, Any] | None:
    """Stacked bars of open findings by severity over the recorded scans."""
    scans = report.history
    if len(scans) < 2:
        return None
    largest = max(scan["total"] for scan in scans) or 1
    width = min(480 / len(scans), 40.0)  # a few scans should not look like a wall
    bars = []
    for index, scan in enumerate(scans):
        y = 120.0
        segments = []
        for severity in SEVERITIES:
            height = 110.0 * scan.get(severity, 0) / largest
            if height:
                y -= height
                segments.append({"severity": severity, "y": y, "height": height, "count": scan[severity]})
        bars.append({"x": index * width + 2, "width": max(width - 4, 1), "segments": segments,
                     "label": scan["scanned_at"], "total": scan["total"]})
    return {"bars": bars, "largest": largest, "first": scans[0]["scanned_at"], "last": scans[-1]["scanned_at"]}


def source_labels(report: ScanReport) -> dict[str, str]:
    """What people call each source: a subscription's display name rather than its GUID."""
    labels = {}
    for source in report.sources:
        name = (source.get("details") or {}).get("display_name")
        if name:
            labels[source["id"]] = f"{name} ({source['id'][:8]}…)"
    return labels


class HtmlReport(ReportFormat):
    name = "html"
    filename = "report.html"

    def __init__(self) -> None:
        self.environment = Environment(loader=FileSystemLoader(TEMPLATES),
                                       autoescape=select_autoescape(["html", "j2"]),
                                       trim_blocks=True, lstrip_blocks=True)
        self.environment.filters["script_json"] = script_json

    def render(self, report: ScanReport) -> bytes:
        template = self.environment.get_template("report.html.j2")
        rules = {rule.id: {"title": rule.title, "severity": rule.severity,
                           "category": rule.category, "description": rule.description,
                           "remediation": rule.remediation, "references": rule.references,
                           "frameworks": rule.frameworks, "file": rule.file, "line": rule.line,
                           "resources": rule.resources, "status": rule.status, "reason": rule.reason,
                           "counts": rule.counts}
                 for rule in report.rules}
        fields = ("rule_id", "fingerprint", "severity", "category", "title", "message",
                  "resource_id", "resource_name", "resource_type", "cloud", "source", "item_key",
                  "evidence", "state", "suppression", "first_seen", "responsibility")
        findings = [[getattr(f, name) for name in fields] for f in report.findings]
        summary = report.summary()
        page = template.render(
            report=report, summary=summary, severities=SEVERITIES, states=STATES, state_labels=STATE_LABELS,
            chart=_chart(summary), trend=_trend(report),
            payload={"fields": fields, "findings": findings, "rules": rules, "severities": SEVERITIES,
                     "source_labels": source_labels(report), "scanned_at": report.scanned_at})
        return page.encode("utf-8")
