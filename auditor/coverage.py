"""What each rule looked at in a scan: evaluated, partial or not evaluated, why, and how
many resources it checked, passed, failed, waived and could not judge.

"0 findings" must never be mistaken for "not looked at": a rule whose sources all failed,
that waits for an organisation's baseline table, or that found no resource of its types is
`not_evaluated`, and every output shows it so (JUnit as skipped, SARIF as a notification).
A rule that judged some resources but not others (a source failed, data it needs was
missing) is `partial`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .engine.evaluate import RuleTally
from .engine.rules import Rule
from .findings import NOT_CURRENT, Finding, RuleInfo, ScanReport
from .text import first_few


def rule_info(rule: Rule, status: str = "evaluated", reason: str | None = None,
              counts: dict[str, int] | None = None) -> RuleInfo:
    """Report metadata of one rule."""
    return RuleInfo(id=rule.id, title=rule.title, severity=rule.severity, category=rule.category,
                    resources=rule.resource_text, description=rule.description, remediation=rule.remediation,
                    references=rule.references, frameworks=rule.frameworks, file=rule.file, line=rule.line,
                    pack=rule.pack, status=status, reason=reason, counts=dict(counts or {}))


FAILED_SOURCES_NAMED = 5  # failed sources a rule's reason names


def _clouds(rule: Rule) -> set[str]:
    return {cloud for cloud, _ in rule.resources}


def _relevant(rule: Rule, source: dict[str, Any]) -> bool:
    clouds = _clouds(rule)
    return "*" in clouds or source.get("cloud") in clouds


def assess(rule: Rule, tally: RuleTally | None, waiting: list[str] | None,
           sources: list[dict[str, Any]]) -> RuleInfo:
    """The rule's status and reason before findings are compared and waived."""
    if waiting:
        return rule_info(rule, "not_evaluated",
                         f"waits for baseline table{'s' if len(waiting) > 1 else ''} {', '.join(waiting)}: "
                         "declare it in a --baseline file", {"checked": 0, "not_evaluated": 0})
    tally = tally or RuleTally()
    counts = {"checked": tally.checked, "not_evaluated": len(tally.not_evaluated)}
    relevant = [s for s in sources if _relevant(rule, s)]
    failed = [s["id"] for s in relevant if s.get("status") != "ok"]
    reasons = []
    if failed:
        # the first few by name (each rule's reason names them); the report's sources say
        # which the rest are
        reasons.append(f"source{'s' if len(failed) > 1 else ''} failed: {first_few(failed, FAILED_SOURCES_NAMED)}")
    if tally.not_evaluated:
        needs = ", ".join(rule.needs)
        reasons.append(f"1 resource lacks data it needs ({needs})" if len(tally.not_evaluated) == 1 else
                       f"{len(tally.not_evaluated)} resources lack data it needs ({needs})")
    if tally.checked == 0:
        if not reasons:
            reasons.append(f"no resource it applies to ({', '.join(rule.resource_text)}) in the scanned estate")
        return rule_info(rule, "not_evaluated", "; ".join(reasons), counts)
    return rule_info(rule, "partial" if reasons else "evaluated", "; ".join(reasons) or None, counts)


def judged(report: ScanReport, tallies: dict[str, RuleTally],
           estate_wide: frozenset[str] = frozenset()) -> Callable[[Finding], bool]:
    """Whether this scan looked at a previous finding's rule and resource: its rule ran, its
    source was collected, and the resource had the data the rule needs; and, for a rule
    whose verdicts count resources of every source (`estate_wide`), every source was
    collected. A finding it did not look at is unknown, not fixed."""
    collected = {s["id"] for s in report.sources if s.get("status") == "ok"}
    ran = {rule.id for rule in report.rules if rule.status != "not_evaluated"}
    if report.incomplete:
        ran -= estate_wide
    blind = {rule_id: set(tally.not_evaluated) for rule_id, tally in tallies.items() if tally.not_evaluated}

    def looked_at(finding: Finding) -> bool:
        if finding.rule_id not in ran or finding.source not in collected:
            return False
        key = finding.resource_id.lower() if finding.cloud == "azure" else finding.resource_id
        return key not in blind.get(finding.rule_id, ())
    return looked_at


def settle_counts(report: ScanReport) -> None:
    """Fill each rule's passed / failed / waived from the findings, once states and waivers
    are final: a resource with an open finding failed, one with only waived findings is
    waived, the rest of those checked passed."""
    failed: dict[str, set[str]] = {}
    waived: dict[str, set[str]] = {}
    for finding in report.findings:
        if finding.state in NOT_CURRENT:
            continue
        target = waived if finding.suppression else failed
        target.setdefault(finding.rule_id, set()).add(finding.resource_id)
    for rule in report.rules:
        bad = failed.get(rule.id, set())
        accepted = waived.get(rule.id, set()) - bad
        checked = rule.counts.get("checked", 0)
        rule.counts = {"checked": checked, "passed": max(0, checked - len(bad) - len(accepted)),
                       "failed": len(bad), "waived": len(accepted),
                       "not_evaluated": rule.counts.get("not_evaluated", 0)}
