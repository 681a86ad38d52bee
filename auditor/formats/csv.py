"""CSV: one row per finding, for spreadsheets and ticket imports.

Cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or
carriage return) are prefixed with `'`: resource names and messages come from the estate,
and a VM named `=HYPERLINK(...)` must stay text (OWASP's CSV injection advice). Control
characters are shown escaped, so a name cannot forge lines where the CSV is printed.
"""

from __future__ import annotations

import csv
import io

from ..findings import Finding, ScanReport
from ..text import for_terminal
from . import ReportFormat

COLUMNS = ("severity", "state", "waived", "rule_id", "title", "category", "resource_name", "resource_id",
           "resource_type", "cloud", "source", "item_key", "message", "first_seen", "waiver_owner",
           "waiver_expires", "fingerprint", "responsibility")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """A value as a CSV cell that no spreadsheet evaluates and no terminal obeys."""
    text = "" if value is None else str(value)
    # then control characters escaped: a newline in a name would forge lines where the CSV is
    # printed (a CI log)
    return for_terminal("'" + text if text.startswith(_FORMULA) else text)


def row(finding: Finding) -> list[str]:
    """The cells of one finding, in COLUMNS order."""
    waiver = finding.suppression or {}
    values = (finding.severity, finding.state, "yes" if finding.suppression else "no", finding.rule_id,
              finding.title, finding.category, finding.resource_name, finding.resource_id, finding.resource_type,
              finding.cloud, finding.source, finding.item_key, finding.message, finding.first_seen,
              waiver.get("owner"), waiver.get("expires"), finding.fingerprint, finding.responsibility)
    return [cell(value) for value in values]


class CsvReport(ReportFormat):
    name = "csv"
    filename = "findings.csv"

    def render(self, report: ScanReport) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 line ends
        writer.writerow(COLUMNS)
        writer.writerows(row(finding) for finding in report.findings)
        return buffer.getvalue().encode("utf-8")
