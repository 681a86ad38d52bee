"""The scan pipeline: rules and baselines, snapshots, facts, evaluation, report.

Everything that can fail on bad input (rule files, baselines, snapshots) is read and
checked before anything is evaluated or written, so a bad input never leaves a partial
report behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from . import __version__
from .accounting import account_hybrid_benefit, load_entitlements
from .baselines import Baselines, load_baselines
from .bundled import bundled_baselines_dir, bundled_rules_dir, display_path
from .engine.evaluate import evaluate
from .engine.rules import CompiledRule, RuleSet, compile_rules, load_rules, missing_baselines
from .facts import derive_facts
from .findings import RuleInfo, ScanReport
from .segmentation import assign_zones, load_zones
from .snapshot import Snapshot, load_snapshot, merge_snapshots, now_utc


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


def rule_infos(compiled: list[CompiledRule]) -> list[RuleInfo]:
    """Report metadata of the rules that ran."""
    return [RuleInfo(id=c.rule.id, title=c.rule.title, severity=c.rule.severity,
                     category=c.rule.category, resources=c.rule.resource_text,
                     description=c.rule.description, remediation=c.rule.remediation,
                     references=c.rule.references, frameworks=c.rule.frameworks,
                     file=c.rule.file, line=c.rule.line, pack=c.rule.pack)
            for c in compiled]


def scan_snapshot(snapshot: Snapshot, rules: RuleContext, as_of: date) -> ScanReport:
    """Evaluate compiled rules over a snapshot and build the report."""
    derive_facts(snapshot.resources)
    # facts that need the baselines: zone membership and licence entitlements
    assign_zones(snapshot.resources, rules.baselines)
    account_hybrid_benefit(snapshot.resources, rules.baselines)
    findings = evaluate(rules.compiled, snapshot.resources)
    findings.sort(key=lambda finding: finding.sort_key())
    counts: dict[str, int] = {}
    for resource in snapshot.resources:
        key = f"{resource['cloud']}:{resource['type']}"
        counts[key] = counts.get(key, 0) + 1
    return ScanReport(
        tool_version=__version__, scanned_at=now_utc(), as_of=as_of.isoformat(),
        collected_at=snapshot.collected_at,
        sources=[source.as_dict() for source in snapshot.sources],
        resource_count=len(snapshot.resources), rules=rule_infos(rules.compiled),
        findings=findings, resource_counts=dict(sorted(counts.items())))
