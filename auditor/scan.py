"""The scan pipeline: rules and baselines, snapshots and live sources, facts, evaluation,
the gate, reports.

`run_scan(options)` is the whole of `auditor scan`: it takes the typed options (whatever
layer filled them) and returns a `ScanOutcome` that the CLI prints. Everything that can
fail on bad input (rule files, baselines, waivers, the previous scan, snapshots, the output
folder, live source options) is read and checked before anything is collected, evaluated
or written, so a bad input never leaves a partial report behind.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from . import __version__
from .accounting import account_hybrid_benefit, load_entitlements
from .baselines import Baselines, load_baselines
from .bundled import bundled_baselines_dir, bundled_rules_dir, display_path
from .coverage import assess, judged, settle_counts
from .engine.evaluate import Evaluation, evaluate_rules
from .engine.rules import CompiledRule, RuleSet, compile_rules, load_rules, missing_baselines
from .errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK
from .facts import derive_facts
from .findings import Finding, ScanReport
from .gate import GateResult, apply_waivers, compare, decide, load_previous, load_waivers
from .options import ScanOptions
from .segmentation import assign_zones, load_zones
from .snapshot import Snapshot, load_snapshot, merge_snapshots, now_utc
from .sources import Progress


@dataclass
class RuleContext:
    """Loaded and compiled rules with the baselines they were compiled against."""

    ruleset: RuleSet
    baselines: Baselines
    compiled: list[CompiledRule]

    @property
    def waiting(self) -> dict[str, list[str]]:
        """Enabled rules left off until their baselines are declared: id -> missing tables."""
        return {rule.id: missing for rule in self.ruleset.rules
                if rule.enabled and (missing := missing_baselines(rule, self.baselines))}


def load_rule_context(rule_paths: list[Path] | None, baseline_paths: list[Path] | None,
                      as_of: date) -> RuleContext:
    """Load rule packs (default: the shipped ones) and baselines, and compile the rules.

    Shipped baselines always load first, so a user's file only needs the tables it
    overrides.
    """
    ruleset = load_rules(rule_paths or [bundled_rules_dir()], display=display_path)
    baselines = load_baselines([bundled_baselines_dir(), *(baseline_paths or [])])
    for table in baselines.tables.values():
        table.file = display_path(Path(table.file))
    compiled = compile_rules(ruleset, baselines, as_of)
    load_zones(baselines)  # checked now, so that a bad table stops the scan before it starts
    load_entitlements(baselines)
    return RuleContext(ruleset, baselines, compiled)


def load_snapshots(paths: list[Path]) -> Snapshot:
    """Read and merge snapshot files."""
    return merge_snapshots([load_snapshot(path) for path in paths])


def evaluate_snapshot(snapshot: Snapshot, rules: RuleContext, as_of: date,
                      sample: bool = False) -> tuple[ScanReport, Evaluation]:
    """Derive facts, evaluate the compiled rules and build the report, with every enabled
    rule's status (a rule waiting for a baseline is in it too, as not evaluated)."""
    derive_facts(snapshot.resources)
    # facts that need the baselines: zone membership and licence entitlements
    assign_zones(snapshot.resources, rules.baselines)
    account_hybrid_benefit(snapshot.resources, rules.baselines)
    evaluation = evaluate_rules(rules.compiled, snapshot.resources)
    evaluation.findings.sort(key=lambda finding: finding.sort_key())
    counts: dict[str, int] = {}
    for resource in snapshot.resources:
        key = f"{resource['cloud']}:{resource['type']}"
        counts[key] = counts.get(key, 0) + 1
    sources = [source.as_dict() for source in snapshot.sources]
    waiting = rules.waiting
    infos = [assess(rule, evaluation.tallies.get(rule.id), waiting.get(rule.id), sources)
             for rule in rules.ruleset.rules if rule.enabled]
    report = ScanReport(
        tool_version=__version__, scanned_at=now_utc(), as_of=as_of.isoformat(),
        collected_at=snapshot.collected_at, sources=sources, resource_count=len(snapshot.resources),
        rules=infos, findings=evaluation.findings, resource_counts=dict(sorted(counts.items())), sample=sample)
    settle_counts(report)
    return report, evaluation


def scan_snapshot(snapshot: Snapshot, rules: RuleContext, as_of: date) -> ScanReport:
    """Evaluate compiled rules over a snapshot and build the report."""
    return evaluate_snapshot(snapshot, rules, as_of)[0]


# --- the whole scan ------------------------------------------------------------------------

@dataclass
class ScanOutcome:
    """What a scan produced and decided, for the CLI to print."""

    report: ScanReport
    run: Path
    formats: list[str]
    gate: GateResult
    exit_code: int
    waiting: dict[str, list[str]] = field(default_factory=dict)
    no_previous: Path | None = None  # `--compare latest` found no earlier scan here

    @property
    def failed_sources(self) -> list[dict]:
        """Sources that could not be collected."""
        return [s for s in self.report.sources if s.get("status") != "ok"]


def previous_findings(compare: str, output: Path) -> tuple[list[Finding], str, Path | None]:
    """The previous scan's findings, what to call it, and (for `latest` with no earlier scan
    yet) the path that was looked for: then every finding counts as new."""
    if compare == "latest":
        path = output / "latest" / "findings.json"
        if not path.is_file():
            return [], f"{path} (no earlier scan yet)", path
        return load_previous(path), str(path), None
    return load_previous(Path(compare)), compare, None


def run_scan(options: ScanOptions, warn: Callable[[str], None], progress: Progress | None = None) -> ScanOutcome:
    """Scan what the options name and write the reports; see the module docstring."""
    from .live import live_sources
    from .output import prepare_output, write_run
    from .sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
    from .sources import collect_all

    # every input is read before anything is collected, evaluated or written
    previous = compared_with = no_previous = None
    if options.compare:
        previous, compared_with, no_previous = previous_findings(options.compare, options.output)
    waivers = [waiver for path in options.waivers for waiver in load_waivers(path)]
    files = ([SAMPLE_SNAPSHOT] if options.sample else []) + options.snapshots
    # the sample's own zones and entitlements come first, so a --baseline still overrides them
    baselines = ([SAMPLE_BASELINE] if options.sample else []) + options.baselines
    context = load_rule_context(options.rules, baselines, options.as_of)
    sources = live_sources(options.vsphere, options.azure, warn)  # credentials and TLS options checked
    prepare_output(options.output)  # before a live collection that may take minutes
    snapshots = [_load_frozen(files)] if files else []
    if sources:
        collected = collect_all(sources, progress or Progress(enabled=False))
        if options.save_snapshot:
            save_live_snapshot(collected, options.save_snapshot, warn)
        snapshots.append(collected)
    snapshot = merge_snapshots(snapshots)
    # the inventory is acyclic and lives until the scan ends: keep the cyclic collector from
    # re-walking millions of its objects on every collection (refcounting still frees them)
    gc.freeze()
    report, evaluation = evaluate_snapshot(snapshot, context, options.as_of, sample=options.sample)
    del snapshot  # findings hold what the reports need; free the inventory before rendering
    if previous is not None:
        report.findings = compare(report.findings, previous, judged(report, evaluation.tallies))
        report.compared_with = compared_with
    if waivers:
        report.waivers = apply_waivers(report.findings, waivers, options.as_of)
    settle_counts(report)
    gate = decide(report.findings, options.fail_on, options.min_severity)
    if options.history is not None:
        from .history import record
        record(options.history, report)
    run = write_run(report, options.output, options.formats)
    code = EXIT_INCOMPLETE if report.incomplete else EXIT_FINDINGS if gate.failed else EXIT_OK
    return ScanOutcome(report=report, run=run, formats=options.formats, gate=gate, exit_code=code,
                       waiting=context.waiting, no_previous=no_previous)


def save_live_snapshot(collected: Snapshot, path: Path, warn: Callable[[str], None]) -> None:
    """Keep what was collected live; when every source failed, keep the file already there."""
    from .snapshot import save_snapshot

    if not any(source.status == "ok" for source in collected.sources):
        warn(f"no live source could be collected; {path} was not written")
        return
    save_snapshot(collected, path)


def _load_frozen(files: list[Path]) -> Snapshot:
    """Load snapshots and move them out of the cyclic collector's sight before it runs
    again: re-enabled on a fresh million-object tree, its first full pass costs half a
    second for nothing (a JSON tree has no cycles; refcounting still frees it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        snapshot = load_snapshots(files)
        gc.freeze()
        return snapshot
    finally:
        if enabled:
            gc.enable()


__all__ = ["RuleContext", "ScanOutcome", "evaluate_snapshot", "load_rule_context", "load_snapshots", "run_scan",
           "scan_snapshot"]
