"""JUnit XML for CI systems that show test reports: one testcase per rule that ran,
one failure per finding of that rule, grouped in a testsuite per category."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from ..findings import Finding, ScanReport
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
    return "\n".join(lines)


class JUnitReport(ReportFormat):
    name = "junit"
    filename = "junit.xml"

    def render(self, report: ScanReport) -> bytes:
        by_rule: dict[str, list[Finding]] = defaultdict(list)
        for finding in report.findings:
            if finding.state != "absent" and not finding.suppression:  # waived risk is not a failure
                by_rule[finding.rule_id].append(finding)
        suites = ET.Element("testsuites", name="auditor", tests=str(len(report.rules)),
                            failures=str(sum(1 for r in report.rules if by_rule.get(r.id))),
                            timestamp=report.scanned_at)
        categories: dict[str, list] = defaultdict(list)
        for rule in report.rules:
            categories[rule.category].append(rule)
        for category, rules in categories.items():
            failing = sum(1 for rule in rules if by_rule.get(rule.id))
            suite = ET.SubElement(suites, "testsuite", name=category, tests=str(len(rules)),
                                  failures=str(failing), errors="0", skipped="0",
                                  timestamp=report.scanned_at)
            for rule in rules:
                case = ET.SubElement(suite, "testcase", classname=f"auditor.{category}",
                                     name=f"{rule.id} {rule.title}", file=rule.file,
                                     line=str(rule.line))
                for finding in by_rule.get(rule.id, []):
                    failure = ET.SubElement(case, "failure", type=finding.severity,
                                            message=f"[{finding.severity}] {finding.message}")
                    failure.text = _failure_text(finding)
        ET.indent(suites)
        return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"
