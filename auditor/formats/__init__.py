"""Output formats. Each renders a ScanReport to bytes and knows nothing of the sources.

A format is one module with one class registered here; `auditor scan --format` and
`auditor report --format` pick them by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import IO

from ..findings import ScanReport


class ReportFormat(ABC):
    """Renders a scan report into one file."""

    name: str
    filename: str

    @abstractmethod
    def render(self, report: ScanReport) -> bytes:
        """The file's bytes for `report`."""

    def write(self, report: ScanReport, stream: IO[bytes]) -> None:
        """Write the file for `report` to `stream` (atomic.write_stream_atomic's, say). A
        format whose files can be large writes them in pieces instead of as one string."""
        stream.write(self.render(report))


def formats() -> dict[str, ReportFormat]:
    """All formats by name (imported here, not at package import, to keep start-up fast)."""
    from .csv import CsvReport
    from .findings_json import FindingsJson
    from .html import HtmlReport
    from .junit import JUnitReport
    from .sarif import SarifReport
    return {fmt.name: fmt for fmt in (FindingsJson(), SarifReport(), HtmlReport(), JUnitReport(), CsvReport())}
