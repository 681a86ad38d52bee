"""findings.json: the machine-readable result of a scan, documented in docs/findings-json.md.

Stable: keys are only ever added within a schema_version; `auditor report --from` and the
CI gate read it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

from ..compliance import compliance
from ..errors import InputError
from ..files import DEFAULT_INPUT_LIMIT, read_input
from ..findings import RULE_STATUSES, SEVERITY_RANK, STATES, Finding, RuleInfo, ScanReport
from ..jsonio import to_json, to_json_pieces
from . import ReportFormat

SCHEMA = "auditor.findings"
SCHEMA_VERSION = 1


def report_document(report: ScanReport, with_findings: bool = True) -> dict[str, Any]:
    """The findings.json document for a report (its `findings` empty unless `with_findings`:
    `FindingsJson.write` writes them in pieces)."""
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "tool": {"name": "auditor", "version": report.tool_version},
        "scanned_at": report.scanned_at, "as_of": report.as_of,
        "snapshot": {"collected_at": report.collected_at, "resource_count": report.resource_count,
                     "resource_counts": report.resource_counts,
                     "sources": report.sources, "incomplete": report.incomplete},
        "sample": report.sample,
        "summary": report.summary().as_dict(),
        "compared_with": report.compared_with,
        "waivers": report.waivers,
        "history": report.history,
        "rules": [rule.as_dict() for rule in report.rules],
        "compliance": compliance(report),
        "findings": [finding.as_dict() for finding in report.findings] if with_findings else [],
    }


class FindingsJson(ReportFormat):
    name = "json"
    filename = "findings.json"

    def render(self, report: ScanReport) -> bytes:
        return to_json(report_document(report), indent=True) + b"\n"

    def write(self, report: ScanReport, stream: IO[bytes]) -> None:
        """The bytes `render` gives, written a few thousand findings at a time, so that a
        million findings never sit in memory as one document. A value orjson cannot write
        makes `to_json` write the whole document another way: then it starts again that way."""
        try:
            self._write(report, stream, strict=True)
        except orjson.JSONEncodeError:
            stream.seek(0)
            stream.truncate()
            self._write(report, stream, strict=False)

    @staticmethod
    def _write(report: ScanReport, stream: IO[bytes], strict: bool) -> None:
        head = to_json_pieces(report_document(report, with_findings=False), indent=True, strict=strict)
        if not report.findings:
            stream.write(head + b"\n")
            return
        stream.write(head[:-len(_EMPTY_TAIL)] + b"[")
        findings = report.findings
        for start in range(0, len(findings), _PIECE):
            # wrapped one level down, as in the document: the same indent, the same depth
            # at which orjson and `encodable` give up
            piece = to_json_pieces({"f": [f.as_dict() for f in findings[start:start + _PIECE]]},
                                   indent=True, strict=strict)
            stream.write((b"," if start else b"") + piece[len(_PIECE_HEAD):-len(_PIECE_TAIL)])
        stream.write(b"\n  ]\n}\n")


_PIECE = 2_000  # findings per piece
_EMPTY_TAIL = b"[]\n}"  # how the document written without findings ends
_PIECE_HEAD, _PIECE_TAIL = b'{\n  "f": [', b"\n  ]\n}"


def read_json(path: Path, what: str, limit: int = DEFAULT_INPUT_LIMIT) -> Any:
    """A JSON document of at most `limit` bytes from a user-supplied file; errors name the file."""
    try:
        return orjson.loads(read_input(path, what, limit=limit, raise_with="--max-input-size"))
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not a {what}: invalid JSON ({exc.msg})", where=str(path), line=exc.lineno) from None


def load_report(path: Path, limit: int = DEFAULT_INPUT_LIMIT) -> ScanReport:
    """Read a findings.json of at most `limit` bytes back into a ScanReport; errors name the file."""
    return report_from_document(read_json(path, "findings.json", limit), str(path))


def report_from_document(document: Any, where: str) -> ScanReport:
    """Build a ScanReport from a parsed findings.json document; any field of the wrong
    shape is a one-line error naming it, never a traceback."""
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise InputError(f"not a findings.json (expected \"schema\": \"{SCHEMA}\")", where=where)
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise InputError(f"findings schema_version {version!r} is not one this auditor reads "
                         f"(<= {SCHEMA_VERSION}); upgrade auditor", where=where)
    check = DocumentChecker(where)
    snapshot = check.mapping(document, "snapshot")
    tool = check.mapping(document, "tool")
    rules = [_rule(check, rule, f"rules[{i}]") for i, rule in enumerate(check.items(document, "rules"))]
    findings = [_finding(check, finding, f"findings[{i}]")
                for i, finding in enumerate(check.items(document, "findings"))]
    sources = check.items(snapshot, "sources", "snapshot.")
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or not isinstance(source.get("id"), str):
            raise InputError(f"snapshot.sources[{index}] must be an object with a text id", where=where)
        for key in ("status", "error", "kind", "cloud"):
            check.optional(source, key, str, None, f"snapshot.sources[{index}].")
        check.optional(source, "details", dict, {}, f"snapshot.sources[{index}].")
    resource_counts = check.optional(snapshot, "resource_counts", dict, {}, "snapshot.")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in resource_counts.values()):
        raise check.fail("snapshot.resource_counts", "must map types to whole numbers")
    waivers = check.optional(document, "waivers", list, [])
    for index, waiver in enumerate(waivers):
        label = f"waivers[{index}]"
        if not isinstance(waiver, dict):
            raise check.fail(label, "is not an object")
        for key in ("rule", "resource", "reason", "owner", "expires", "status", "file"):
            check.text(waiver, key, f"{label}.")
        check.number(waiver, "matched", f"{label}.")
        check.number(waiver, "line", f"{label}.")
    history = check.optional(document, "history", list, [])
    for index, scan in enumerate(history):
        label = f"history[{index}]"
        if not isinstance(scan, dict):
            raise check.fail(label, "is not an object")
        check.text(scan, "scanned_at", f"{label}.")
        for key in (*SEVERITY_RANK, "total"):
            check.number(scan, key, f"{label}.")
        check.optional(scan, "id", int, None, f"{label}.")
    return ScanReport(
        tool_version=check.text(tool, "version", "tool."), scanned_at=check.text(document, "scanned_at"),
        as_of=check.text(document, "as_of"), collected_at=check.text(snapshot, "collected_at", "snapshot."),
        sources=sources, resource_count=check.number(snapshot, "resource_count", "snapshot."),
        rules=rules, findings=findings,
        resource_counts=resource_counts,
        compared_with=check.optional(document, "compared_with", str, None),
        waivers=waivers, history=history,
        sample=check.optional(document, "sample", bool, False))


class DocumentChecker:
    """Reads fields of an earlier report (findings.json or SARIF), naming the first one of
    a wrong shape: a one-line error, never a traceback further on."""

    def __init__(self, where: str, kind: str = "findings.json"):
        self.where = where
        self.kind = kind

    def fail(self, field: str, what: str) -> InputError:
        return InputError(f"{self.kind} field {field} {what}", where=self.where)

    def severity(self, parent: dict[str, Any], key: str, prefix: str = "") -> str:
        value = self.text(parent, key, prefix)
        if value not in SEVERITY_RANK:
            raise self.fail(prefix + key, f"must be one of {', '.join(SEVERITY_RANK)}")
        return value

    def mapping(self, parent: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
        value = parent.get(key)
        if not isinstance(value, dict):
            raise self.fail(prefix + key, "is missing or not an object")
        return value

    def items(self, parent: dict[str, Any], key: str, prefix: str = "") -> list[Any]:
        value = parent.get(key)
        if not isinstance(value, list):
            raise self.fail(prefix + key, "is missing or not a list")
        return value

    def text(self, parent: dict[str, Any], key: str, prefix: str = "") -> str:
        value = parent.get(key)
        if not isinstance(value, str):
            raise self.fail(prefix + key, "is missing or not text")
        return value

    def number(self, parent: dict[str, Any], key: str, prefix: str = "") -> int:
        value = parent.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(prefix + key, "is missing or not a whole number")
        return value

    def optional(self, parent: dict[str, Any], key: str, kind: type, default: Any, prefix: str = "") -> Any:
        value = parent.get(key, default)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(prefix + key, f"must be {kind.__name__}")
        return value


_RULE_TEXT = ("id", "title", "severity", "category", "description", "remediation", "file", "pack")
_FINDING_TEXT = ("rule_id", "fingerprint", "severity", "category", "title", "message", "resource_id",
                 "resource_name", "resource_type", "cloud", "source")


def _rule(check: DocumentChecker, raw: Any, label: str) -> RuleInfo:
    if not isinstance(raw, dict):
        raise check.fail(label, "is not an object")
    values = {key: check.text(raw, key, f"{label}.") for key in _RULE_TEXT}
    check.severity(raw, "severity", f"{label}.")
    resources = check.items(raw, "resources", f"{label}.")
    references = check.items(raw, "references", f"{label}.")
    frameworks = check.mapping(raw, "frameworks", f"{label}.")
    if not all(isinstance(v, str) for v in resources + references) or not all(
            isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in frameworks.values()):
        raise check.fail(label, "has resources, references or frameworks that are not text")
    counts = check.optional(raw, "counts", dict, {}, f"{label}.")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        raise check.fail(f"{label}.counts", "must map names to whole numbers")
    status = check.optional(raw, "status", str, "evaluated", f"{label}.")
    if status not in RULE_STATUSES:
        raise check.fail(f"{label}.status", f"must be one of {', '.join(RULE_STATUSES)}")
    return RuleInfo(**values, resources=resources, references=references, frameworks=frameworks,
                    line=check.number(raw, "line", f"{label}."), status=status,
                    reason=check.optional(raw, "reason", str, None, f"{label}."), counts=counts)


def _finding(check: DocumentChecker, raw: Any, label: str) -> Finding:
    if not isinstance(raw, dict):
        raise check.fail(label, "is not an object")
    values: dict[str, Any] = {key: check.text(raw, key, f"{label}.") for key in _FINDING_TEXT}
    check.severity(raw, "severity", f"{label}.")
    evidence = check.optional(raw, "evidence", list, [], f"{label}.")
    if not all(isinstance(entry, dict) for entry in evidence):
        raise check.fail(f"{label}.evidence", "must be a list of objects")
    state = check.optional(raw, "state", str, None, f"{label}.")
    if state is not None and state not in STATES:
        raise check.fail(f"{label}.state", f"must be one of {', '.join(STATES)}")
    suppression = check.optional(raw, "suppression", dict, None, f"{label}.")
    if suppression is not None:
        for key in ("reason", "owner", "expires", "file"):
            check.text(suppression, key, f"{label}.suppression.")
        check.number(suppression, "line", f"{label}.suppression.")
    responsibility = check.optional(raw, "responsibility", str, "customer", f"{label}.")
    if responsibility not in ("customer", "provider"):
        raise check.fail(f"{label}.responsibility", "must be customer or provider")
    return Finding(**values, item_key=check.optional(raw, "item_key", str, None, f"{label}."), evidence=evidence,
                   state=state, suppression=suppression,
                   first_seen=check.optional(raw, "first_seen", str, None, f"{label}."), responsibility=responsibility)
