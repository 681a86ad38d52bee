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
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from . import __version__
from .accounting import account_hybrid_benefit, account_vsphere_licences, load_entitlements, load_vsphere_licensing
from .avs import assign_responsibility, link_avs
from .baselines import Baselines, load_baselines
from .blob import BlobLocation, is_blob
from .bundled import bundled_baselines_dir, bundled_rules_dir, display_path
from .coverage import assess, judged, settle_counts
from .engine.evaluate import Evaluation, evaluate_rules
from .engine.rules import CompiledRule, RuleSet, compile_rules, load_rules, missing_baselines, rule_files
from .errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, InputError
from .facts import SizeTables, derive_facts
from .files import DEFAULT_INPUT_LIMIT
from .findings import Finding, ScanReport
from .gate import GateResult, apply_waivers, compare, decide, load_previous, load_waivers
from .lifecycle import assess_support, load_support_tables
from .options import RuleSelection, ScanOptions
from .progress import Progress
from .segmentation import assign_zones, load_zones
from .shards import default_workers, is_lines_file
from .snapshot import Snapshot, expire_stale, load_snapshot, merge_snapshots, now_utc, source_twice
from .termination import sigterm_held, terminated_as_exit
from .vm_sizes import vm_sizes


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
                      as_of: date, *, default_rules: bool = True,
                      selection: RuleSelection | None = None) -> RuleContext:
    """Load rule packs (the shipped ones unless `default_rules` is off, then those of
    `rule_paths`) and baselines, keep the rules `selection` admits, and compile them.

    Shipped baselines always load first, so a user's file only needs the tables it
    overrides.
    """
    paths = ([bundled_rules_dir()] if default_rules else []) + list(rule_paths or [])
    ruleset = load_rules(paths, display=display_path)
    for path in rule_paths or []:  # a named path that adds nothing is a mistake, not a pass
        files = {display_path(file) for file in rule_files([path])}
        if not any(rule.file in files for rule in ruleset.rules):
            raise InputError(f"no rules found ({len(files)} rule file{'s' if len(files) != 1 else ''}): a rule "
                             "path that adds no rule is a mistake", where=str(path))
    if not any(rule.enabled for rule in ruleset.rules):
        raise InputError(f"every rule ({len(ruleset.rules)}) is disabled (enabled: false): a scan without rules "
                         "would pass any estate", where=", ".join(str(path) for path in paths))
    if selection is not None and selection.active:
        ruleset.rules = [r for r in ruleset.rules if selection.admits(r.id, r.severity, r.frameworks)]
        if not ruleset.rules:
            raise InputError("no loaded rule matches --checks / --skip-checks / --severity / --framework")
    baselines = load_baselines([bundled_baselines_dir(), *(baseline_paths or [])])
    for table in baselines.tables.values():
        table.file = display_path(Path(table.file))
    compiled = compile_rules(ruleset, baselines, as_of)
    load_zones(baselines)  # checked now, so that a bad table stops the scan before it starts
    load_entitlements(baselines)
    load_vsphere_licensing(baselines)
    load_support_tables(baselines)
    return RuleContext(ruleset, baselines, compiled)


def load_snapshots(paths: list[Path], limit: int = DEFAULT_INPUT_LIMIT) -> Snapshot:
    """Read and merge snapshot files of at most `limit` bytes each."""
    return merge_snapshots([load_snapshot(path, limit) for path in paths])


def estate_sizes(sources: list) -> SizeTables:
    """The VM sizes the Azure sources read, active vCPUs and all (see `vm_sizes`)."""
    return SizeTables(active=vm_sizes(sources), total=vm_sizes(sources, active=False))


def assess_estate(resources: list[dict], sources: list, rules: RuleContext, as_of: date,
                  on_premises: int | None = None, guests: dict | None = None,
                  sizes: SizeTables | None = None) -> dict[str, dict]:
    """Derive every resource's facts, those that need the baselines too (support status,
    zone membership, licence entitlements); returns the AVS joins (see `link_avs`).
    `on_premises`, `guests`: see `account_hybrid_benefit`; `sizes`: `estate_sizes(sources)`,
    when known already."""
    derive_facts(resources, sizes or estate_sizes(sources))
    linked = link_avs(resources)  # before support: VMs on Azure VMware Solution run in Azure
    assess_support(resources, rules.baselines, as_of)
    assign_zones(resources, rules.baselines)
    account_vsphere_licences(resources, rules.baselines)
    account_hybrid_benefit(resources, rules.baselines, on_premises, guests)
    return linked


def resource_counts(resources: list[dict]) -> dict[str, int]:
    """How many resources of each cloud:type."""
    counts: dict[str, int] = {}
    for resource in resources:
        key = f"{resource['cloud']}:{resource['type']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def build_report(header: Snapshot, rules: RuleContext, evaluation: Evaluation, counts: dict[str, int],
                 resource_count: int, linked: dict[str, dict], as_of: date, sample: bool = False) -> ScanReport:
    """The report of an evaluation, with every enabled rule's status (a rule waiting for a
    baseline is in it too, as not evaluated); findings are sorted here."""
    evaluation.findings.sort(key=lambda finding: finding.sort_key())
    sources = [source.as_dict() for source in header.sources]
    for source in sources:  # a vCenter and its Azure VMware Solution private cloud are one system
        if source["id"] in linked:
            source["azure_vmware_solution"] = linked[source["id"]]
    waiting = rules.waiting
    infos = [assess(rule, evaluation.tallies.get(rule.id), waiting.get(rule.id), sources)
             for rule in rules.ruleset.rules if rule.enabled]
    report = ScanReport(
        tool_version=__version__, scanned_at=now_utc(), as_of=as_of.isoformat(),
        collected_at=header.collected_at, sources=sources, resource_count=resource_count,
        rules=infos, findings=evaluation.findings, resource_counts=dict(sorted(counts.items())), sample=sample)
    settle_counts(report)
    return report


def evaluate_snapshot(snapshot: Snapshot, rules: RuleContext, as_of: date,
                      sample: bool = False) -> tuple[ScanReport, Evaluation]:
    """Derive facts, evaluate the compiled rules and build the report (see `build_report`)."""
    linked = assess_estate(snapshot.resources, snapshot.sources, rules, as_of)
    evaluation = evaluate_rules(rules.compiled, snapshot.resources)
    assign_responsibility(evaluation.findings, snapshot.resources)
    report = build_report(snapshot, rules, evaluation, resource_counts(snapshot.resources), len(snapshot.resources),
                          linked, as_of, sample)
    return report, evaluation


def scan_snapshot(snapshot: Snapshot, rules: RuleContext, as_of: date) -> ScanReport:
    """Evaluate compiled rules over a snapshot and build the report."""
    return evaluate_snapshot(snapshot, rules, as_of)[0]


# --- the whole scan ------------------------------------------------------------------------

@dataclass
class ScanOutcome:
    """What a scan produced and decided, for the CLI to print."""

    report: ScanReport
    run: Path | None  # None with --output -: the one format is in `payload`
    formats: list[str]
    gate: GateResult
    exit_code: int
    no_previous: Path | None = None  # `--compare latest` found no earlier scan here
    payload: bytes | None = None  # the format for standard output (--output -)

    @property
    def failed_sources(self) -> list[dict]:
        """Sources that could not be collected."""
        return [s for s in self.report.sources if s.get("status") != "ok"]


def previous_findings(compare: str, output: Path | BlobLocation,
                      limit: int = DEFAULT_INPUT_LIMIT) -> tuple[list[Finding], str, Path | BlobLocation | None]:
    """The previous scan's findings, what to call it, and (for `latest` with no earlier scan
    yet) the path that was looked for: then every finding counts as new."""
    if compare == "latest" and is_blob(output):
        from .blob import previous_findings as previous_in_storage
        return previous_in_storage(output, limit)
    if compare == "latest":
        path = output / "latest" / "findings.json"
        if not path.is_file():
            return [], f"{path} (no earlier scan yet)", path
        # name the run folder it points to now: `latest` moves to this scan once it is written
        latest = output / "latest"
        run = output / os.readlink(latest) if latest.is_symlink() else latest
        return load_previous(path, limit), str(run / "findings.json"), None
    return load_previous(Path(compare), limit), compare, None


LOG = logging.getLogger("auditor")


class Steps:
    """The long steps of a run: each shown on a terminal while it runs and logged with its
    duration (`--log-level info`), so a 100,000-resource scan is never silent."""

    def __init__(self, progress: Progress):
        self.progress = progress

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        self.progress.stage(f"{text}...")
        started = time.perf_counter()
        yield
        LOG.info("%s (%.2f s)", text, time.perf_counter() - started)


def run_scan(options: ScanOptions, warn: Callable[[str], None], progress: Progress | None = None) -> ScanOutcome:
    """Scan what the options name and write the reports; see the module docstring. While
    shards are evaluated and while the reports are written, a SIGTERM ends the scan as
    Ctrl-C does (workers and writers ended, spill and staging folders removed, the history
    and `latest` as they were, exit 143); while `latest` moves, it waits for that;
    elsewhere it ends the process at once, as it always did: a live collection or a
    history's lock is not waited for."""
    from .formats import formats as registered
    from .live import live_sources
    from .output import point_latest, prepare_output, write_run_folder
    from .sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT

    progress = progress or Progress(enabled=False)
    steps = Steps(progress)
    # every input is read before anything is collected, evaluated or written
    previous = compared_with = no_previous = None
    with steps.step("reading rules, baselines, waivers and the previous scan"):
        if options.compare:
            previous, compared_with, no_previous = previous_findings(options.compare, options.output,
                                                                         options.max_input_size)
        waivers = [waiver for path in options.waivers for waiver in load_waivers(path)]
        files = ([SAMPLE_SNAPSHOT] if options.sample else []) + options.snapshots
        # the sample's own zones and entitlements come first, so a --baseline still overrides them
        baselines = ([SAMPLE_BASELINE] if options.sample else []) + options.baselines
        context = load_rule_context(options.rules, baselines, options.as_of, default_rules=options.default_rules,
                                    selection=options.selection)
        sources = live_sources(options.vsphere, options.azure, warn)  # credentials and TLS options checked
        if not options.to_stdout:
            prepare_output(options.output)  # before a live collection that may take minutes
        if options.history is not None:
            from .history import check
            check(options.history)  # a wrong password or a newer schema, too, before that collection
    LOG.info("%d rules from %d files, %d compiled", len(context.ruleset.rules), len(context.ruleset.files),
             len(context.compiled))
    workers = options.workers or default_workers()
    whole = [file for file in files if is_blob(file) or not is_lines_file(file)]
    if workers > 1 and files and not sources and not whole:
        report, evaluation = _evaluate_in_shards(options, files, context, steps, workers)
    else:
        if workers > 1 and len(whole) < len(files):  # some JSON Lines, but not all: say why memory grows
            LOG.info("reading the whole estate into one process: %s", "live sources are collected too" if sources
                     else f"{whole[0]} is not a local JSON Lines snapshot")
        report, evaluation = _evaluate_in_memory(options, files, sources, context, steps, progress, warn)
    with steps.step("comparing and applying waivers"):
        if previous is not None:
            estate_wide = frozenset(rule.id for rule in context.ruleset.rules if rule.scope == "estate")
            report.findings = compare(report.findings, previous, judged(report, evaluation.tallies, estate_wide))
            report.compared_with = compared_with
        if waivers:
            report.waivers = apply_waivers(report.findings, waivers, options.as_of, report.incomplete)
        settle_counts(report)
        gate = decide(report.findings, options.fail_on, options.min_severity, options.gate_provider_findings)
    if options.history is not None:
        from .history import prepare, record
        with steps.step("reading the scan history"):
            prepare(options.history, report)  # first-seen dates and the trend, for the report
    run, payload = None, None
    # the history row only once the run folder is complete and in place, and `latest` last:
    # a scan killed at any point leaves no row without its report, and `latest` on a whole run
    with steps.step(f"writing {', '.join(options.formats)}"), terminated_as_exit():
        if options.to_stdout:
            payload = registered()[options.formats[0]].render(report)
        else:
            # a writer per CPU at most: each copies the pages of findings it reads
            run = write_run_folder(report, options.output, options.formats,
                                   processes=min(workers, default_workers()))
    if options.history is not None:
        # one transaction, which may wait on another scan's lock (inside SQLite, where no
        # Python handler runs): a SIGTERM ends the process at once and the row is not made
        with steps.step("recording the scan history"):
            record(options.history, report, run)
    if run is not None:
        with sigterm_held():  # two system calls: a SIGTERM waits for them
            point_latest(options.output, run)
    progress.done()
    code = EXIT_INCOMPLETE if report.incomplete else EXIT_FINDINGS if gate.failed else EXIT_OK
    return ScanOutcome(report=report, run=run, formats=options.formats, gate=gate, exit_code=code,
                       no_previous=no_previous, payload=payload)


LIVE_COLLECTION = "the live collection"  # how refusals name what was collected live


def _evaluate_in_memory(options: ScanOptions, files: list, sources: list, context: RuleContext, steps: Steps,
                        progress: Progress, warn: Callable[[str], None]) -> tuple[ScanReport, Evaluation]:
    """Load every snapshot and collect every live source into one estate in this process,
    and evaluate it: the reference path, which the sharded one must match byte for byte."""
    from .live import collect_live

    with steps.step(f"loading {len(files)} snapshot file{'s' if len(files) != 1 else ''}"):
        local = [file for file in files if not is_blob(file)]
        snapshots = [_load_frozen(local, options.max_input_size)] if local else []
        if len(local) < len(files):  # the blob, or the newest snapshot of each source under a prefix
            from .blob import read_snapshots
            snapshots += [snapshot for file in files if is_blob(file)
                          for snapshot in read_snapshots(file, options.max_input_size)]
    if sources:
        # a vCenter both collected live and in a snapshot file: refused before minutes of
        # collecting, as merge_snapshots would refuse it after (an Azure scope's
        # subscriptions are known only once collected: those are refused there)
        listed = {source.id: source.origin or "a snapshot" for snapshot in snapshots for source in snapshot.sources}
        for source in sources:  # any file that has it, whatever its name
            if source.id in listed:
                raise source_twice(source.id, listed[source.id], LIVE_COLLECTION)
        with steps.step(f"collecting {len(sources)} live source{'s' if len(sources) != 1 else ''}"):
            collected = collect_live(sources, progress, warn)
            if options.save_snapshot:
                save_live_snapshot(collected, options.save_snapshot, warn)
        collected.origin = [LIVE_COLLECTION]  # how refusals name it
        snapshots.append(collected)
    snapshot = merge_snapshots(snapshots)
    if options.max_age is not None:
        expire_stale(snapshot, options.max_age)  # a snapshot too old is a failed source, never a silent one
    LOG.info("%d resources from %d sources", len(snapshot.resources), len(snapshot.sources))
    # the inventory is acyclic and lives until the scan ends: keep the cyclic collector from
    # re-walking millions of its objects on every collection (refcounting still frees them)
    gc.freeze()
    with steps.step(f"evaluating {len(context.compiled)} rules over {len(snapshot.resources):,} resources"):
        report, evaluation = evaluate_snapshot(snapshot, context, options.as_of, sample=options.sample)
    return report, evaluation


def _evaluate_in_shards(options: ScanOptions, files: list[Path], context: RuleContext, steps: Steps,
                        workers: int) -> tuple[ScanReport, Evaluation]:
    """Evaluate JSON Lines snapshots a vCenter (or a part of one) or all of Azure at a time in `workers`
    processes (see `auditor.shards`)."""
    from .shards import evaluate_sharded, route, spill_folder

    with terminated_as_exit(), spill_folder() as spill:
        with steps.step(f"routing {len(files)} snapshot file{'s' if len(files) != 1 else ''} into shards"):
            routed = route(files, options.max_input_size, spill)
        stale = frozenset()
        if options.max_age is not None:  # a snapshot too old is a failed source, never a silent one
            stale = frozenset(source.id for source in expire_stale(routed.header, options.max_age))
        resources = sum(shard.resources for shard in routed.shards)
        LOG.info("%d resources from %d sources in %d parts", resources, len(routed.header.sources),
                 len(routed.shards))
        with steps.step(f"evaluating {len(context.compiled)} rules over {resources:,} resources in "
                        f"{workers} workers"):
            evaluation, counts, evaluated, linked = evaluate_sharded(routed, context, options.as_of, workers, stale)
            report = build_report(routed.header, context, evaluation, counts, evaluated, linked, options.as_of,
                                  options.sample)
    gc.freeze()  # the findings live until the scan ends; see _load_frozen
    return report, evaluation


def save_live_snapshot(collected: Snapshot, path: Path, warn: Callable[[str], None]) -> None:
    """Keep what was collected live; when every source failed, keep the file already there."""
    from .snapshot import save_snapshot

    if not any(source.status == "ok" for source in collected.sources):
        warn(f"no live source could be collected; {path} was not written")
        return
    save_snapshot(collected, path)


def _load_frozen(files: list[Path], limit: int) -> Snapshot:
    """Load snapshots and move them out of the cyclic collector's sight before it runs
    again: re-enabled on a fresh million-object tree, its first full pass costs half a
    second for nothing (a JSON tree has no cycles; refcounting still frees it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        snapshot = load_snapshots(files, limit)
        gc.freeze()
        return snapshot
    finally:
        if enabled:
            gc.enable()


__all__ = ["RuleContext", "ScanOutcome", "evaluate_snapshot", "load_rule_context", "load_snapshots", "run_scan",
           "scan_snapshot"]
