"""Evaluation: compiled rules over a snapshot's resources, producing findings and, per rule,
how many resources it judged and which it could not judge for want of data."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..findings import Finding, fingerprint
from ..snapshot import resource_key
from ..text import shortened
from .conditions import first_item, item_key
from .paths import ABSENT
from .rules import CompiledRule, render_message


def index_by_type(resources: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Resources grouped by (cloud, type), so a rule only sees resources of its types."""
    index: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for resource in resources:
        index[(resource["cloud"], resource["type"])].append(resource)
    return index


def candidates(rule: CompiledRule, index: dict[tuple[str, str], list[dict[str, Any]]]):
    """The resources a rule applies to, each once even if several selectors name it."""
    for resources in candidate_lists(rule, index):
        yield from resources


def candidate_lists(rule: CompiledRule,
                    index: dict[tuple[str, str], list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The index's lists of the resources a rule applies to (`candidates` a list at a time),
    each once: `[vsphere:VirtualMachine, "*:VirtualMachine"]` names one list twice."""
    lists: dict[int, list[dict[str, Any]]] = {}
    for cloud, kind in rule.rule.resources:
        if cloud == "*":
            for (have_cloud, have_kind), resources in index.items():
                if have_kind == kind or (have_cloud == "azure" and have_kind == kind.lower()):
                    lists.setdefault(id(resources), resources)
        elif (cloud, kind) in index:
            lists.setdefault(id(index[(cloud, kind)]), index[(cloud, kind)])
    return list(lists.values())


@dataclass
class RuleTally:
    """What one rule looked at: resources its `where` admitted and that had the data it
    needs (`checked`), and the keys of those that lacked it (not evaluated)."""

    checked: int = 0
    not_evaluated: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    """Findings in rule order, and a tally per rule id."""

    findings: list[Finding]
    tallies: dict[str, RuleTally]


def evaluate_rules(rules: list[CompiledRule], resources: list[dict[str, Any]]) -> Evaluation:
    """Run every rule over the resources of its types."""
    index = index_by_type(resources)
    findings: list[Finding] = []
    tallies: dict[str, RuleTally] = {}
    for compiled in rules:
        tally = tallies[compiled.rule.id] = RuleTally()
        matched: list[Any] = []  # resources, or (resource, position, element) per element
        loop = compiled.loop
        for resources in candidate_lists(compiled, index):
            tally.checked += loop(resources, tally.not_evaluated, matched)
        if compiled.per_item:
            for resource, position, item in matched:
                findings.append(_finding(compiled, resource, item, position))
        else:
            for resource in matched:
                findings.append(_finding(compiled, resource, ABSENT, None))
    return Evaluation(findings, tallies)


def evaluate(rules: list[CompiledRule], resources: list[dict[str, Any]]) -> list[Finding]:
    """Only the findings of `evaluate_rules`."""
    return evaluate_rules(rules, resources).findings


def _finding(compiled: CompiledRule, resource: dict[str, Any], item: Any,
             position: int | None) -> Finding:
    rule = compiled.rule
    evidence: list[dict[str, Any]] = []
    if position is not None:
        # per-element finding: evidence and item are this element's, keyed by its name
        match = compiled.match
        key: str | None = item_key(item, position)
        match.inner.explain(item, evidence, f"{match.path}[{key}].")
    else:
        compiled.match.explain(resource, evidence, "")
        item = first_item(compiled.match, resource)
        key = None
    return Finding(
        rule_id=rule.id,
        fingerprint=fingerprint(rule.id, resource_key(resource), key),
        severity=rule.severity, category=rule.category, title=rule.title,
        message=render_message(compiled.message, resource, item),
        resource_id=resource["id"], resource_name=shortened(resource["name"]),
        resource_type=resource["type"], cloud=resource["cloud"], source=resource["source"],
        item_key=key, evidence=evidence)
