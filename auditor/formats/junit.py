"""JUnit XML for CI systems that show test results: one testcase per rule, grouped in a
testsuite per category. A rule with open findings fails (one failure per finding); a rule
that was not evaluated (its sources failed, it waits for a baseline table, no resource of
its types) is skipped with the reason, never shown as passing; so is a partial one with no
open finding (part of what it covers could not be looked at, so it has not passed either),
and its output says what it could not look at. Text from the estate goes through `for_xml`: a control byte in a VM
name would otherwise make the whole file unreadable XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from ..findings import NOT_CURRENT, Finding, RuleInfo, ScanReport
from ..text import for_xml
from . import ReportFormat


def _failure_text(finding: Finding) -> str:
    lines = [finding.message, f"resource: {finding.resource_id}", f"source: {finding.source}",
             f"fingerprint: {finding.fingerprint}"]
    if finding.state:
        lines.append(f"state: {finding.state}")
    for entry in finding.evidence:
        observed = "(absent)" if entry.get("absent") else entry.get("actual")
        lines.append(f"evidence: {entry.get('path')} {entry.get('op')} "
                     f"{entry.get('expected', '')} -> {observed}")
    return for_xml("\n".join(lines))


def _counts_text(rule: RuleInfo) -> str:
    counts = rule.counts
    text = ", ".join(f"{name.replace('_', ' ')} {counts.get(name, 0)}"
                     for name in ("checked", "passed", "failed", "waived", "not_evaluated"))
    return for_xml(f"resources: {text}" + (f"\n{rule.status.replace('_', ' ')}: {rule.reason}" if rule.reason else ""))


class JUnitReport(ReportFormat):
    name = "junit"
    filename = "junit.xml"

    def render(self, report: ScanReport) -> bytes:
        by_rule: dict[str, list[Finding]] = defaultdict(list)
        providers: dict[str, list[Finding]] = defaultdict(list)
        for finding in report.findings:
            if finding.state not in NOT_CURRENT and not finding.suppression:  # waived risk is not a failure
                # what the provider acts on (AVS hosts) fails no test, as it fails no gate by default
                (providers if finding.responsibility == "provider" else by_rule)[finding.rule_id].append(finding)

        def skipped(rule: RuleInfo) -> bool:
            return rule.status != "evaluated" and not by_rule.get(rule.id)

        # the sample's results must not pass for an estate's in a CI system's test view
        suites = ET.Element("testsuites", name="auditor (SAMPLE ESTATE)" if report.sample else "auditor",
                            tests=str(len(report.rules)),
                            failures=str(sum(1 for r in report.rules if by_rule.get(r.id))),
                            skipped=str(sum(1 for r in report.rules if skipped(r))),
                            timestamp=for_xml(report.scanned_at))
        categories: dict[str, list[RuleInfo]] = defaultdict(list)
        for rule in report.rules:
            categories[rule.category].append(rule)
        for category, rules in categories.items():
            suite = ET.SubElement(suites, "testsuite",
                                  name=for_xml(f"{category} (SAMPLE ESTATE)" if report.sample else category),
                                  tests=str(len(rules)),
                                  failures=str(sum(1 for rule in rules if by_rule.get(rule.id))), errors="0",
                                  skipped=str(sum(1 for rule in rules if skipped(rule))),
                                  timestamp=for_xml(report.scanned_at))
            for rule in rules:
                case = ET.SubElement(suite, "testcase", classname=for_xml(f"auditor.{category}"),
                                     name=for_xml(f"{rule.id} {rule.title}"), file=for_xml(rule.file),
                                     line=str(rule.line))
                if skipped(rule):
                    ET.SubElement(case, "skipped", message=for_xml(f"{rule.status.replace('_', ' ')}: {rule.reason}"))
                for finding in by_rule.get(rule.id, []):
                    failure = ET.SubElement(case, "failure", type=for_xml(finding.severity),
                                            message=for_xml(f"[{finding.severity}] {finding.message}"))
                    failure.text = _failure_text(finding)
                out = _counts_text(rule)
                if providers.get(rule.id):
                    out += for_xml("".join(f"\nthe provider's (not counted): {finding.message}"
                                           for finding in providers[rule.id]))
                ET.SubElement(case, "system-out").text = out
        ET.indent(suites)
        return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"
