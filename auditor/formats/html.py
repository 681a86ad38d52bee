"""The HTML report: one self-contained file for people (no network fetches).

Rendered with jinja2 autoescaping. Findings travel as JSON inside a
`<script type="application/json">` element, escaped so no `<` from a resource name can
close it, and the page builds rows with textContent only: a VM named
`<img src=x onerror=alert(1)>` shows as that text and runs nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..compliance import compliance
from ..findings import SEVERITY_RANK, STATES, ScanReport, Summary
from ..jsonio import to_json
from . import ReportFormat
from .csv import COLUMNS as CSV_COLUMNS

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


TREND_LEFT, TREND_TOP, TREND_HEIGHT, TREND_WIDTH = 46.0, 16.0, 110.0, 480.0


def _ticks(largest: int) -> list[int]:
    """Round values for the y axis (steps of 1, 2 or 5 times a power of ten), from 0 to the
    first one at or above `largest`: at most 6 ticks."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            count = -(-largest // step)
            if count <= 5:
                return [i * step for i in range(count + 1)]
        magnitude *= 10


def _trend(report: ScanReport) -> dict[str, Any] | None:
    """Stacked bars of open findings by severity over the recorded scans, with a y axis of
    round values, the scan dates below and each bar's total above it."""
    scans = report.history
    if len(scans) < 2:
        return None
    largest = max(scan["total"] for scan in scans) or 1
    ticks = _ticks(largest)
    top = ticks[-1]
    base = TREND_TOP + TREND_HEIGHT
    width = min(TREND_WIDTH / len(scans), 56.0)  # a few scans should not look like a wall
    every = max(1, math.ceil(56 / width))  # a date is ~50 units wide at 9px: labels must not overlap
    bars = []
    for index, scan in enumerate(scans):
        y = base
        segments = []
        for severity in SEVERITIES:
            height = TREND_HEIGHT * scan.get(severity, 0) / top
            if height:
                y -= height
                segments.append({"severity": severity, "y": y, "height": height, "count": scan[severity]})
        x = TREND_LEFT + index * width + 2
        bar_width = max(width - 4, 1)
        bars.append({"x": x, "width": bar_width, "middle": x + bar_width / 2, "top": y, "segments": segments,
                     "label": scan["scanned_at"], "date": str(scan["scanned_at"])[:10],
                     "show_date": index % every == 0 or index == len(scans) - 1, "total": scan["total"]})
    return {"bars": bars, "largest": largest, "first": scans[0]["scanned_at"], "last": scans[-1]["scanned_at"],
            "ticks": [{"value": value, "y": base - TREND_HEIGHT * value / top} for value in ticks],
            "left": TREND_LEFT, "right": TREND_LEFT + len(scans) * width, "base": base}


def source_labels(report: ScanReport) -> dict[str, str]:
    """What people call each source: a subscription's display name rather than its GUID."""
    labels = {}
    for source in report.sources:
        name = (source.get("details") or {}).get("display_name")
        if name:
            labels[source["id"]] = f"{name} ({source['id'][:8]}…)"
    return labels


FIELDS = ("rule_id", "fingerprint", "severity", "category", "title", "message",
          "resource_id", "resource_name", "resource_type", "cloud", "source", "item_key",
          "evidence", "state", "suppression", "first_seen", "responsibility")
# Taken from data.rules[rule_id] by the page; stored per finding only where they differ.
FROM_RULE = ("title", "category")
# Unique per finding: stored as they are, a shared table would only add an index.
RAW = ("fingerprint",)


def encode_findings(findings: list[Any], rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The findings as columns, compact enough for 100,000 of them in one page.

    Each column is one of: {"raw": [value per finding]}; {"ref": [index per finding]} into
    `values`, the shared table of every distinct value (strings, evidence lists, waivers:
    deduplicated by their JSON text, the most used first so they get the shortest
    indices); {"const": value} when every finding has the same value; or {"rule": name,
    "except": [[finding index, value], ...]} for a field the page reads from
    `data.rules[rule_id][name]`, with the findings whose value differs (or whose rule is not
    in the report). `decode_findings` (and decodeReport in report.html.j2) rebuild exactly
    the rows `[getattr(finding, name) for name in FIELDS]` would have given."""
    count = len(findings)
    columns: dict[str, Any] = {}
    keyed: dict[str, list[bytes | str | None]] = {}
    originals: dict[bytes | str | None, Any] = {}
    uses: Counter[bytes | str | None] = Counter()
    texts: dict[int, bytes] = {}  # id -> JSON text; the findings keep every object alive meanwhile
    for name in FIELDS:
        column = [getattr(finding, name) for finding in findings]
        if name in FROM_RULE:
            rule_ids = [finding.rule_id for finding in findings]
            columns[name] = {"rule": name, "except": [
                [row, value] for row, (rule_id, value) in enumerate(zip(rule_ids, column, strict=True))
                if not _same(rules.get(rule_id, _MISSING).get(name, _MISSING), value)]}
        elif name in RAW:
            columns[name] = {"raw": column}
        else:
            # strings and None key themselves; anything else by its JSON text (1, True and
            # "1" stay apart), worked out once per object (copies of a finding share theirs)
            keys = [value if value is None or type(value) is str
                    else texts.get(id(value)) or texts.setdefault(id(value), to_json(value))
                    for value in column]
            if count and all(key == keys[0] for key in keys):
                columns[name] = {"const": column[0]}
                continue
            for key, value in zip(keys, column, strict=True):
                originals.setdefault(key, value)
            uses.update(keys)
            keyed[name] = keys
    order = sorted(originals, key=lambda key: -uses[key])  # stable: ties keep first-seen order
    position = {key: at for at, key in enumerate(order)}
    for name, keys in keyed.items():
        columns[name] = {"ref": [position[key] for key in keys]}
    return {"count": count, "values": [originals[key] for key in order],
            "columns": {name: columns[name] for name in FIELDS}}


_MISSING: Any = {}


def _same(expected: Any, value: Any) -> bool:
    return expected is not _MISSING and type(expected) is type(value) and expected == value


def decode_findings(encoded: dict[str, Any], rules: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """The rows back from `encode_findings`' JSON form: the reference for the page's decoder."""
    count, values, columns = encoded["count"], encoded["values"], []
    for name in FIELDS:
        column = encoded["columns"][name]
        if "raw" in column:
            columns.append(column["raw"])
        elif "ref" in column:
            columns.append([values[at] for at in column["ref"]])
        elif "const" in column:
            columns.append([column["const"]] * count)
        else:
            rule_ids = columns[FIELDS.index("rule_id")]
            decoded = [rules.get(rule_id, {}).get(column["rule"]) for rule_id in rule_ids]
            for row, value in column["except"]:
                decoded[row] = value
            columns.append(decoded)
    return [list(row) for row in zip(*columns, strict=True)] if count else []


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
        findings = encode_findings(report.findings, rules)
        fields = FIELDS
        summary = report.summary()
        page = template.render(
            report=report, summary=summary, severities=SEVERITIES, states=STATES, state_labels=STATE_LABELS,
            chart=_chart(summary), trend=_trend(report),
            payload={"fields": fields, "findings": findings, "rules": rules, "severities": SEVERITIES,
                     "source_labels": source_labels(report), "scanned_at": report.scanned_at,
                     "compliance": compliance(report), "csv_columns": CSV_COLUMNS})
        return page.encode("utf-8")
