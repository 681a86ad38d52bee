"""Compliance per framework: for each catalogue the rules map to (CIS Microsoft Azure
Foundations, the vSphere Security Configuration Guide, CIS Controls, ISO 27001, NIST
800-53, Azure Policy), each control's status from the rules that check it.

A control is `failed` when a rule mapped to it has an open finding, `not_evaluated` when
none failed but one was not (or only partly) evaluated, `waived` when its only findings
are waived, and `passed` only when every rule mapped to it judged every resource it
applies to and found nothing: a control nobody could check is never reported compliant.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .findings import RuleInfo, ScanReport

# what people call each catalogue; ids the rules use that are not here are shown as written
FRAMEWORK_NAMES = {
    "cis-azure-2.0": "CIS Microsoft Azure Foundations Benchmark 2.0",
    "vsphere-scg-8": "VMware vSphere 8 Security Configuration Guide",
    "vcf-scg-9": "VMware Cloud Foundation 9 Security Configuration Guide",
    "cis-controls-8": "CIS Critical Security Controls v8",
    "iso-27001-2022": "ISO/IEC 27001:2022 Annex A",
    "nist-800-53": "NIST SP 800-53 Rev. 5",
    "azure-policy": "Azure Policy built-in definitions",
    "mcsb": "Microsoft cloud security benchmark v1",
}
CONTROL_STATUSES = ("passed", "failed", "waived", "not_evaluated")


@dataclass
class Control:
    """One control of a framework and the rules that check it."""

    id: str
    rules: list[str] = field(default_factory=list)
    status: str = "passed"
    findings: int = 0  # open findings of its rules

    def as_dict(self) -> dict[str, Any]:
        """JSON form, with the control's title where the catalogue's owner publishes one."""
        found = {"id": self.id, "status": self.status, "rules": self.rules, "findings": self.findings}
        title = control_titles().get(self.id)
        if title:
            found["title"] = title
        return found


@functools.cache
def control_titles() -> dict[str, str]:
    """Control id -> title: the Security Configuration Guide's control titles and the display
    names of the Azure Policy definitions the rules cite (shipped in auditor/data)."""
    titles: dict[str, str] = {}
    for name in ("scg_control_titles.json", "azure_policy_names.json"):
        text = resources.files("auditor").joinpath("data", name).read_text(encoding="utf-8")
        titles.update({key: value for key, value in json.loads(text).items() if not key.startswith("_")})
    return titles


def _rule_status(rule: RuleInfo) -> str:
    counts = rule.counts
    if counts.get("failed", 0):
        return "failed"
    if rule.status != "evaluated":
        return "not_evaluated"
    return "waived" if counts.get("waived", 0) else "passed"


_PRECEDENCE = {"failed": 0, "not_evaluated": 1, "waived": 2, "passed": 3}


def compliance(report: ScanReport) -> dict[str, dict[str, Any]]:
    """Per framework: its name, its controls (sorted by id) and their totals by status."""
    open_findings: dict[str, int] = {}
    for finding in report.current:
        if not finding.suppression:
            open_findings[finding.rule_id] = open_findings.get(finding.rule_id, 0) + 1
    frameworks: dict[str, dict[str, Control]] = {}
    for rule in report.rules:
        status = _rule_status(rule)
        for framework, ids in rule.frameworks.items():
            for control_id in ids:
                control = frameworks.setdefault(framework, {}).setdefault(control_id, Control(control_id))
                control.rules.append(rule.id)
                control.findings += open_findings.get(rule.id, 0)
                if _PRECEDENCE[status] < _PRECEDENCE[control.status]:
                    control.status = status
    summary = {}
    for framework in sorted(frameworks):
        controls = sorted(frameworks[framework].values(), key=lambda c: _natural(c.id))
        totals = {status: sum(1 for c in controls if c.status == status) for status in CONTROL_STATUSES}
        summary[framework] = {"name": FRAMEWORK_NAMES.get(framework, framework), "totals": totals,
                              "controls": [c.as_dict() for c in controls]}
    return summary


def _natural(control_id: str) -> tuple:
    """Sort 6.10 after 6.9 and esxi-8.x by name."""
    return tuple((0, int(part), "") if part.isascii() and part.isdigit() and len(part) < 18 else (1, 0, part)
                 for part in control_id.replace("-", ".").split("."))
