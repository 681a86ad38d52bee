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
- GitHub's limits are kept:
  - 20 runs per upload (more is rejected outright): an estate of more than 20 categories
    has its categories share 19 runs, `auditor/merged-NN-of-19/`, each category in the run
    a hash of its name picks, so that it stays in that run scan after scan whatever else
    the estate holds; each such run lists the categories it holds in its properties. A
    merged run is a category as above: one failed source holds the whole run back.
  - 25,000 results per run and 10 MB gzipped per upload: by dropping the lowest
    severities first, the same number of results at most in every run; the run's
    properties say what was cut.
- The log is written in one pass: each result is serialized once to measure it (and
  compressed as it goes, to learn the gzipped size), what fits is decided from those
  sizes, and only when the whole log does not fit are the kept results serialized again.
  Memory holds the compressed log (at most the size limit), never the whole log as text.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import zlib
from array import array
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from ..errors import InputError
from ..findings import SEVERITY_RANK, Finding, RuleInfo, ScanReport
from ..jsonio import to_json_pieces
from . import ReportFormat

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
MAX_RESULTS_PER_RUN = 25_000
# GitHub rejects an upload of more runs than this (github/codeql-action#2000); upload-sarif
# combines the files of a folder into one upload, so splitting the log would not help
MAX_RUNS_PER_UPLOAD = 20
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


def _applies_to(rule: RuleInfo, clouds: set[str]) -> bool:
    heads = (selector.split(":", 1)[0] for selector in rule.resources)
    return any(head == "*" or head in clouds for head in heads)


def gzipped_size(payload: bytes, level: int = 1) -> int:
    """Size of `payload` gzipped. Level 1 compresses least, so a file that fits at level 1
    fits at the level any uploader uses."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return len(compressor.compress(payload)) + len(compressor.flush())


def _json_at(value: Any, depth: int, strict: bool) -> bytes:
    """`value` exactly as `to_json` writes it `depth` containers deep inside a document.

    The log is written in pieces, and each must read as it would in the whole: `strict`,
    orjson alone, which raises where `to_json` would turn to `encodable` (an integer past
    64 bits, nesting past orjson's limit counted from the document's top); else through
    `encodable`, as `to_json` writes every part once any part needs it. Either way from the
    piece's own depth: it is wrapped in `depth` lists, encoded, and unwrapped."""
    wrapped = value
    for _ in range(depth):
        wrapped = [wrapped]
    text = to_json_pieces(wrapped, strict=strict)
    return text[depth:-depth] if depth else text


# where the pieces sit in the log: {"runs": [{"results": [{...}]}]}
_RUN_DEPTH = 2
_RESULT_DEPTH = 4


@dataclass
class _Run:
    """One run of the log before it is written.

    `findings` are most severe first: the results a run keeps are always a prefix of them.
    `head` is the run's own text between the tool (the same in every run) and its results;
    `before_cut` and `after_cut` are its properties ahead of and after `truncated`."""

    head: bytes
    findings: list[Finding]
    before_cut: dict[str, Any]
    after_cut: dict[str, Any] = field(default_factory=dict)
    # the severities of `findings` run-length encoded, [severity, first index, end index]:
    # what a cut omits is counted from these without walking the findings again
    blocks: list[tuple[str, int, int]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        for index, finding in enumerate(self.findings):
            if self.blocks and self.blocks[-1][0] == finding.severity:
                self.blocks[-1] = (finding.severity, self.blocks[-1][1], index + 1)
            else:
                self.blocks.append((finding.severity, index, index + 1))

    def tail(self, kept: int, reason: str, strict: bool) -> bytes:
        """The end of the run after its `kept` results: `]`, then columnKind and the
        properties, which say what was cut (counted by severity, in the order of the cut)."""
        omitted: dict[str, int] = {}
        for severity, start, end in self.blocks:
            if end > kept:
                omitted[severity] = omitted.get(severity, 0) + end - max(start, kept)
        properties = dict(self.before_cut)
        if omitted:
            properties["truncated"] = {"kept": kept, "omitted": sum(omitted.values()),
                                       "omittedBySeverity": omitted, "reason": reason}
        properties.update(self.after_cut)
        text = _json_at({"columnKind": "unicodeCodePoints", "properties": properties}, _RUN_DEPTH, strict)
        return b"]," + text[1:]


class _Gauge:
    """Bytes gzipped as an uploader would (level 1, the least compression: what fits at
    level 1 fits at any level), counted raw and compressed as they go.

    Records (raw bytes so far, compressed bytes so far) whenever the compressor emits, so
    that how much a stretch adds gzipped can be estimated."""

    def __init__(self) -> None:
        self.compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
        self.raw = 0
        self.packed = 0
        self.raw_at: array[int] = array("q", [0])
        self.packed_at: array[int] = array("q", [0])

    def add(self, data: bytes) -> None:
        """Append `data`."""
        self.raw += len(data)
        out = self.compressor.compress(data)
        if out:
            self._emitted(out)

    def close(self) -> None:
        """End the stream."""
        self._emitted(self.compressor.flush())

    def _emitted(self, out: bytes) -> None:
        self.packed += len(out)
        self.raw_at.append(self.raw)
        self.packed_at.append(self.packed)

    def packed_at_offset(self, offset: int) -> float:
        """Estimated gzipped bytes of the first `offset` raw bytes: deflate emits in
        blocks, so between two emissions the output is taken to grow evenly."""
        after = bisect.bisect_left(self.raw_at, offset)
        if after >= len(self.raw_at):
            return float(self.packed)
        if after == 0 or self.raw_at[after] == offset:
            return float(self.packed_at[after])
        low, high = self.raw_at[after - 1], self.raw_at[after]
        share = (offset - low) / (high - low)
        return self.packed_at[after - 1] + share * (self.packed_at[after] - self.packed_at[after - 1])


class _Sink(_Gauge):
    """The log as it is produced, gzipped to learn whether it fits `limit`.

    The compressed bytes are kept while the log could still fit (until both its raw and
    gzipped sizes pass the limit), so a log that fits is written out from them without
    being produced again, and memory never holds more than about the size limit."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.chunks: list[bytes] | None = []

    def _emitted(self, out: bytes) -> None:
        self.packed += len(out)
        if self.chunks is not None:
            if self.raw > self.limit and self.packed > self.limit:
                self.chunks = None  # it cannot fit: no need to keep it
            else:
                self.chunks.append(out)

    @property
    def fits(self) -> bool:
        """True when the log is within the limit, raw or gzipped (after `close`)."""
        return self.chunks is not None

    def write_to(self, stream: IO[bytes], piece: int = 1 << 20) -> None:
        """Write the log, decompressed from what was kept, a piece at a time."""
        assert self.chunks is not None
        decompressor = zlib.decompressobj(31)
        for chunk in self.chunks:
            stream.write(decompressor.decompress(chunk, piece))
            while decompressor.unconsumed_tail:
                stream.write(decompressor.decompress(decompressor.unconsumed_tail, piece))
        stream.write(decompressor.flush())


# when the log does not fit, the first try keeps what the estimate of its gzipped size puts
# this far under the limit (the estimate has been within 1% of the truth, mostly 0.2%)
_ESTIMATE_MARGIN = 0.01
# the estimate corrected by measured tries is off by about 0.1% near them: later tries aim
# this far under the limit, and an earlier writer's step is tried up to this far over it
_CORRECTED_MARGIN = 0.002
# tries before falling back to the earlier writer's steps alone (each try renders the log)
_TRIES = 5


class SarifReport(ReportFormat):
    name = "sarif"
    filename = "results.sarif"

    def __init__(self, max_results: int = MAX_RESULTS_PER_RUN, max_gzipped_bytes: int = MAX_GZIPPED_BYTES,
                 include_absent: bool = False, max_runs: int = MAX_RUNS_PER_UPLOAD):
        if max_runs < 2:
            raise ValueError("max_runs must leave room for a run of results and the collection run")
        self.max_results = max_results
        self.max_gzipped_bytes = max_gzipped_bytes
        # GitHub's upload file must not carry absent (fixed) results; other consumers may
        self.include_absent = include_absent
        self.max_runs = max_runs

    def render(self, report: ScanReport) -> bytes:
        buffer = io.BytesIO()
        self.write(report, buffer)
        return buffer.getvalue()

    def write(self, report: ScanReport, stream: IO[bytes]) -> None:
        """Write the log to `stream` in pieces, within GitHub's limits (see the module).
        Nothing is written when the log cannot fit (an InputError)."""
        try:
            log = self._decide(_LogWriter(self, report, strict=True))
        except orjson.JSONEncodeError:
            # a value orjson cannot write (an integer past 64 bits, nesting past its limit):
            # to_json then writes the whole document through `encodable`; so does this, anew
            log = self._decide(_LogWriter(self, report, strict=False))
        log.write_to(stream)

    def _decide(self, writer: _LogWriter) -> _Sink:
        """The log with as many results per run as fit: the one render measures every
        result, and only a log over the size limit is rendered again, with fewer.

        What is kept is what the earlier writer kept or more: it kept the most severe
        results, the same number at most in every run, and tried max_results, then 3/4 of
        it each time until the log fitted. Here the count comes from the measured sizes:
        the largest the estimate puts 1% under the limit; then, with the estimate corrected
        by what each try measured, the largest that still fits; last, any of the earlier
        writer's steps between the largest count known to fit and the smallest known not
        to that the corrected estimate puts near the limit."""
        limit = self.max_gzipped_bytes
        full = writer.measure()
        if full.fits:
            return full
        search = _Search(writer, limit)
        kept: _Sink | None = None
        margin = _ESTIMATE_MARGIN
        for _ in range(_TRIES):
            if search.failing == 0:
                break  # not even the log without results fits
            count = search.largest_within(limit * (1 - margin))
            if count is None:
                if kept is not None:
                    break
                count = search.fitting + 1  # the estimate has nothing fit: the fewest untried
            sink = search.render(count)
            margin = _CORRECTED_MARGIN
            if sink.fits:
                first = kept is None
                kept = sink
                # one more try only when the corrected estimate gains at least 1% more results
                better = search.largest_within(limit * (1 - margin))
                if not first or better is None or better < count * 1.01:
                    break
        if kept is None:  # the estimate misled every try: the earlier writer's steps, down to 0
            for step in writer.steps(self.max_results):
                if step < search.failing:
                    sink = search.render(step)
                    if sink.fits:
                        kept = sink
                        break
            if kept is None:
                raise InputError(f"SARIF cannot fit in {limit:,} bytes gzipped even "
                                 "without results: the rule metadata alone is larger; run fewer rules",
                                 where="results.sarif")
        for step in reversed(writer.steps(self.max_results)):
            if not search.fitting < step < search.failing:
                continue
            raw, packed = search.corrected(step)
            if raw > limit and packed > limit * (1 + _CORRECTED_MARGIN):
                break  # clearly more than fits
            sink = search.render(step)
            if not sink.fits:
                break
            kept = sink
        return kept


class _Search:
    """The counts of results per run tried for a log over the size limit: the largest known
    to fit, the smallest known not to (at first the whole log), and by how much the estimate
    of the gzipped size was short at each, to correct it in between."""

    def __init__(self, writer: _LogWriter, limit: int):
        self.writer = writer
        self.limit = limit
        self.fitting = -1
        self.failing = writer.largest
        self.short: dict[int, float] = {writer.largest: writer.measured_packed - writer.estimate(writer.largest)[1]}

    def render(self, count: int) -> _Sink:
        """The log keeping `count` results per run, noted as fitting or not."""
        sink = self.writer.render(count)
        self.short[count] = sink.packed - self.writer.estimate(count)[1]
        if sink.fits:
            self.fitting = max(self.fitting, count)
        else:
            self.failing = min(self.failing, count)
        return sink

    def corrected(self, count: int) -> tuple[int, float]:
        """The estimate for `count`, corrected by what the nearest tries on either side
        measured (interpolated between them)."""
        raw, packed = self.writer.estimate(count)
        below = max((tried for tried in self.short if tried <= count), default=None)
        above = min((tried for tried in self.short if tried >= count), default=None)
        if below is None or above is None or below == above:
            shift = self.short[below if above is None else above]
        else:
            share = (count - below) / (above - below)
            shift = self.short[below] + share * (self.short[above] - self.short[below])
        return raw, packed + shift

    def largest_within(self, target: float) -> int | None:
        """The largest count between the known fitting and failing ones whose log the
        corrected estimate puts within the limit raw or within `target` gzipped."""
        def within(count: int) -> bool:
            raw, packed = self.corrected(count)
            return raw <= self.limit or packed <= target

        low, high = self.fitting + 1, self.failing - 1
        if low > high or not within(low):
            return None
        while low < high:  # the log grows with the count: bisect for the last that fits
            middle = (low + high + 1) // 2
            if within(middle):
                low = middle
            else:
                high = middle - 1
        return low


class _LogWriter:
    """The runs of one report and the pieces of its log, rendered for a given number of
    results per run."""

    def __init__(self, fmt: SarifReport, report: ScanReport, strict: bool):
        self.fmt = fmt
        self.report = report
        self.strict = strict
        # what a run's `truncated` note gives as the reason for the cut
        self.reason = (f"GitHub code scanning limits: {fmt.max_results} results per run, "
                       f"{fmt.max_gzipped_bytes:,} bytes gzipped")
        rules = report.rules
        self.index = {rule.id: position for position, rule in enumerate(rules)}
        self.by_id = {rule.id: rule for rule in rules}
        self.locations = {rule.id: physical_location(rule) for rule in rules}
        driver_rules = [sarif_rule(rule) for rule in rules]
        tool = {"driver": {"name": "auditor", "version": report.tool_version,
                           "semanticVersion": report.tool_version, "rules": driver_rules}}
        # every run carries the same tool: written once, repeated as bytes
        self.tool = _json_at({"tool": tool}, _RUN_DEPTH, strict)[:-1]
        self.category_count = 0
        self.runs = self._plan()
        self.start = _json_at({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": []}, 0, strict)[:-2]
        self.offsets: list[array[int]] = []
        self.measured_raw = self.measured_packed = 0
        self.gauge = _Gauge()
        self.tails: list[int] = []

    # --- which runs, holding what ----------------------------------------------------------

    def _plan(self) -> list[_Run]:
        report, fmt = self.report, self.fmt
        categories: dict[str, list[dict[str, Any]]] = {}
        source_category: dict[str, str] = {}
        for source in report.sources:
            name = category(source)
            categories.setdefault(name, []).append(source)
            source_category[source["id"]] = name
        grouped: dict[str, list[Finding]] = {name: [] for name in categories}
        for finding in report.findings:
            if finding.state == "absent" and not fmt.include_absent:
                continue
            name = source_category.get(finding.source) or f"{finding.cloud}/{finding.source}/"
            grouped.setdefault(name, []).append(finding)
        # more categories than GitHub takes runs: they share runs (one kept for collection)
        self.category_count = len(grouped)
        merging = len(grouped) > fmt.max_runs
        shares = fmt.max_runs - 1
        units: dict[str, list[str]] = {}
        for name in grouped:
            unit = f"auditor/merged-{_share(name, shares) + 1:02d}-of-{shares}/" if merging else name
            units.setdefault(unit, []).append(name)
        order = sorted(units) if merging else list(units)
        runs = []
        uncollected: list[dict[str, Any]] = []
        withheld: list[str] = []
        for unit in order:
            members = units[unit]
            sources = [s for name in members for s in categories.get(name, [])]
            findings = grouped[members[0]] if len(members) == 1 else [f for name in members for f in grouped[name]]
            failed_here = {s["id"] for s in sources if s.get("status") != "ok"}
            if failed_here and not any(f.state == "unknown" and f.source in failed_here for f in findings):
                # no run for a category (a vCenter, a tenant; or the categories sharing a
                # merged run) part or all of which could not be collected, unless earlier
                # findings of what failed are here (--compare: as unknown, kept open as
                # unchanged): a run without them would tell GitHub that their alerts are
                # fixed. GitHub keeps the category's earlier analysis instead.
                uncollected.extend(s for s in sources if s["id"] in failed_here)
                if merging:
                    withheld.extend(name for name in members
                                    if not any(s["id"] in failed_here for s in categories.get(name, [])))
                continue
            runs.append(self._run(unit, members if merging else None, sources, findings))
        if uncollected:
            runs.append(self._collection_run(uncollected, withheld, units if merging else None))
        return runs

    def _run(self, name: str, members: list[str] | None, sources: list[dict[str, Any]],
             findings: list[Finding]) -> _Run:
        report = self.report
        properties: dict[str, Any] = {
            "sources": [{"id": s["id"], "status": s.get("status", "ok"), "error": s.get("error")}
                        for s in sources],
            "scannedAt": report.scanned_at, "asOf": report.as_of,
            "collectedAt": report.collected_at,
        }
        if report.waivers:
            properties["waivers"] = [{k: w[k] for k in ("rule", "resource", "owner", "expires", "status",
                                                        "matched")} for w in report.waivers]
        after: dict[str, Any] = {}
        if members is not None:
            after["merged"] = {"categories": members,
                               "reason": f"GitHub code scanning takes at most {self.fmt.max_runs} runs per upload: "
                                         f"the scan's {self.category_count} categories share "
                                         f"{self.fmt.max_runs - 1} runs, each always the same one"}
        if report.sample:
            after["sample"] = True
        failed = [s for s in sources if s.get("status") != "ok"]
        invocation: dict[str, Any] = {"executionSuccessful": not failed, "endTimeUtc": report.scanned_at}
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
        clouds = {member.split("/", 1)[0] for member in (members or [name])}
        # a rule that did not judge this run's resources is no pass: say so, per rule
        notifications += [
            {"level": "note" if rule.status == "partial" else "warning",
             "message": {"text": f"rule {rule.id} {rule.status.replace('_', ' ')}: {rule.reason}"},
             "associatedRule": {"id": rule.id, "index": self.index[rule.id]}}
            for rule in report.rules if rule.status != "evaluated" and _applies_to(rule, clouds)]
        if notifications:
            invocation["toolExecutionNotifications"] = notifications
        ordered = sorted(findings, key=lambda finding: SEVERITY_RANK.get(finding.severity, 9))
        return _Run(self._head(name, invocation), ordered, properties, after)

    def _collection_run(self, failed: list[dict[str, Any]], withheld: list[str],
                        units: dict[str, list[str]] | None) -> _Run:
        """A run of its own category that says which sources could not be collected, so the
        log never reads as a clean scan, without touching those sources' alerts; with merged
        runs, also which categories were held back with them."""
        report = self.report
        notifications = [{"level": "error", "message": {"text": f"collection from {s['id']} failed: {s.get('error')}; "
                                                                 "its findings were not evaluated"}}
                         for s in failed]
        if withheld and units is not None:
            run_of = {name: unit for unit, members in units.items() for name in members}
            notifications += [{"level": "warning", "message": {"text": f"{name} shares run {run_of[name]} with a "
                                                                       "source that failed: its results are held "
                                                                       "back and its alerts stay as last uploaded"}}
                              for name in withheld]
        properties: dict[str, Any] = {"sources": [{"id": s["id"], "status": s.get("status"), "error": s.get("error")}
                                                  for s in failed],
                                      "scannedAt": report.scanned_at, "asOf": report.as_of}
        if withheld:
            properties["withheld"] = withheld
        if report.sample:
            properties["sample"] = True
        invocation = {"executionSuccessful": False, "endTimeUtc": report.scanned_at,
                      "toolExecutionNotifications": notifications}
        return _Run(self._head(COLLECTION_CATEGORY, invocation), [], properties)

    def _head(self, name: str, invocation: dict[str, Any]) -> bytes:
        text = _json_at({"automationDetails": {"id": name}, "invocations": [invocation]}, _RUN_DEPTH, self.strict)
        return b"," + text[1:-1] + b',"results":['

    # --- rendering and measuring -----------------------------------------------------------

    def _piece(self, finding: Finding, position: int) -> bytes:
        """One result as it stands in its run's list (after a comma unless it is the first)."""
        rule_id = finding.rule_id
        piece = _json_at(sarif_result(finding, self.by_id.get(rule_id), self.index.get(rule_id, -1),
                                      self.locations.get(rule_id)), _RESULT_DEPTH, self.strict)
        return b"," + piece if position else piece

    def _produce(self, sink: _Sink, per_run: int, gauged: bool = False) -> None:
        """Write the log keeping at most `per_run` results in each run into `sink`.

        `gauged` (the measuring pass): once the log is known not to fit, its results alone
        go through the gauge too, from the first, and where each result ends in it and each
        run's tail length are noted: results compress alike, so what a stretch of them adds
        gzipped is estimated better there than in the log, where rule metadata, which
        compresses far better, shares deflate blocks with them. A log that fits needs no
        estimate, and the gauge's compressor would be a third of the writer's time."""
        reason, strict = self.reason, self.strict
        gauging = False
        sink.add(self.start)
        for number, run in enumerate(self.runs):
            if number:
                sink.add(b",")
            sink.add(self.tool)
            sink.add(run.head)
            kept = min(per_run, len(run.findings))
            offsets = array("q", [self.gauge.raw])
            for position, finding in enumerate(run.findings[:kept]):
                piece = self._piece(finding, position)
                sink.add(piece)
                if gauging:
                    self.gauge.add(piece)
                    offsets.append(self.gauge.raw)
                elif gauged and sink.chunks is None:
                    gauging = True
                    offsets = self._gauge_until(number, position + 1, per_run)
            tail = run.tail(kept, reason, strict)
            if gauging:
                self.offsets.append(offsets)
                self.tails.append(len(tail))
            sink.add(tail)
        sink.add(b"]}\n")
        sink.close()
        if gauged and not sink.fits and not gauging:  # the last bytes put it over
            gauging = True
            self._gauge_until(len(self.runs), 0, per_run)
        if gauging:
            self.gauge.close()

    def _gauge_until(self, run_number: int, results: int, per_run: int) -> array[int]:
        """Put the results written so far through the gauge: those of the runs before
        `run_number` (noting their offsets and tails) and the first `results` of that run,
        whose offsets so far are returned. They are serialized again (the same bytes): the
        price of learning late that the log does not fit is one more pass over what fitted."""
        for number, run in enumerate(self.runs[:run_number + 1]):
            kept = min(per_run, len(run.findings))
            count = kept if number < run_number else results
            offsets = array("q", [self.gauge.raw])
            for position, finding in enumerate(run.findings[:count]):
                self.gauge.add(self._piece(finding, position))
                offsets.append(self.gauge.raw)
            if number == run_number:
                return offsets
            self.offsets.append(offsets)
            self.tails.append(len(run.tail(kept, self.reason, self.strict)))
        return array("q", [self.gauge.raw])

    def measure(self) -> _Sink:
        """The log with as many results as GitHub takes per run, measured as it is written."""
        sink = _Sink(self.fmt.max_gzipped_bytes)
        self._produce(sink, self.fmt.max_results, gauged=True)
        self.measured_raw, self.measured_packed = sink.raw, sink.packed
        return sink

    def render(self, per_run: int) -> _Sink:
        """The log keeping at most `per_run` results in each run."""
        sink = _Sink(self.fmt.max_gzipped_bytes)
        self._produce(sink, per_run)
        return sink

    def estimate(self, per_run: int) -> tuple[int, float]:
        """The raw size (exact) and gzipped size (estimated) of the log keeping at most
        `per_run` results in each run, from the measured log: each run loses the stretch
        of results past `per_run` (what it added gzipped, as measured), and its tail
        changes (counted raw, which is more than it adds gzipped)."""
        raw, packed = self.measured_raw, float(self.measured_packed)
        reason = self.reason
        for run, offsets, tail in zip(self.runs, self.offsets, self.tails, strict=True):
            written = len(offsets) - 1
            if per_run >= written:
                continue
            cut, end = offsets[per_run], offsets[written]
            grown = len(run.tail(per_run, reason, self.strict)) - tail
            raw += cut - end + grown
            packed -= self.gauge.packed_at_offset(end) - self.gauge.packed_at_offset(cut)
            packed += max(grown, 0)
        return raw, packed

    @property
    def largest(self) -> int:
        """The most results any run of the measured log holds."""
        return max((len(offsets) - 1 for offsets in self.offsets), default=0)

    @staticmethod
    def steps(start: int) -> list[int]:
        """The counts the earlier writer tried, largest first: `start`, then 3/4 of it each
        time, down to 0."""
        counts = [start]
        while counts[-1]:
            counts.append(counts[-1] * 3 // 4)
        return counts


def _share(name: str, shares: int) -> int:
    """The merged run a category goes to when categories share runs: from its name alone,
    so a vCenter or tenant stays in the same run (GitHub tracks alerts per run category)
    whatever other categories come and go."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % shares
