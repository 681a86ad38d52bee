"""Microsoft's SARIF multitool, with GitHub's (GHAS) rules, finds no error in our SARIF."""

from __future__ import annotations

import copy
import gzip
import json
import os
import subprocess

import pytest

from auditor.formats.sarif import SarifReport
from tests.conftest import multitool_binary, need_peer

pytestmark = pytest.mark.peer

# SARIF2005 asks for tool.driver.informationUri: auditor has no public home page to name
ACCEPTED_WARNINGS = {"SARIF2005"}


def validate(tmp_path, payload: bytes) -> list[dict]:
    binary = multitool_binary()
    need_peer(binary is not None, "SARIF multitool not installed (bash .ci/run installs it)")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)  # npm 11 skips the package's chmod postinstall
    sarif = tmp_path / "results.sarif"
    sarif.write_bytes(payload)
    out = tmp_path / "validation.sarif"
    result = subprocess.run([str(binary), "validate", str(sarif), "--output", str(out), "--log", "ForceOverwrite",
                             "--rule-kind", "Sarif;Ghas"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DOTNET_CLI_TELEMETRY_OPTOUT": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    # the tool exits 0 even when it reports errors: read its own SARIF log
    log = json.loads(out.read_text(encoding="utf-8-sig"))
    return [r for run in log["runs"] for r in run.get("results", [])]


def test_sample_scan_sarif_has_no_errors_or_unexpected_warnings(tmp_path, sample_report):
    problems = validate(tmp_path, SarifReport().render(sample_report))
    errors = [p for p in problems if p.get("level", "warning") == "error"]
    assert errors == [], errors[:3]
    unexpected = [p for p in problems if p["ruleId"] not in ACCEPTED_WARNINGS]
    assert unexpected == [], unexpected[:3]


def test_truncated_and_compared_sarif_is_valid_too(tmp_path, sample_report):
    report = copy.copy(sample_report)
    report.findings = [copy.copy(f) for f in sample_report.findings]
    for index, finding in enumerate(report.findings):
        finding.state = ("new", "unchanged", "updated", "absent")[index % 4]
    report.sources = [dict(s, status="failed", error="connection refused") if i == 1 else s
                      for i, s in enumerate(sample_report.sources)]
    problems = validate(tmp_path, SarifReport(max_results=10).render(report))
    assert [p for p in problems if p["ruleId"] not in ACCEPTED_WARNINGS] == []


def test_the_validator_does_report_a_broken_file(tmp_path, sample_report):
    document = json.loads(SarifReport().render(sample_report))
    del document["runs"][0]["results"][0]["locations"]  # GitHub rejects such results
    document["runs"][0]["results"][1]["ruleIndex"] = 9999
    problems = validate(tmp_path, json.dumps(document).encode())
    assert {p["ruleId"] for p in problems} - ACCEPTED_WARNINGS, "validator reported nothing"


def test_an_estate_past_githubs_limits_gives_valid_sarif_too(tmp_path, sample_report):
    """Issue #17's estate, scaled down: 60 categories share 19 runs, one source failed (its
    run is held back, the collection run says so), and the size limit cuts results."""
    from tests.test_format_scaling import repeated_estate
    report = repeated_estate(sample_report, copies=30, per_copy=40)
    report.sources = [dict(s, status="failed", error="connection refused") if i == 7 else s
                      for i, s in enumerate(report.sources)]
    empty = copy.copy(report)
    empty.findings = []
    floor, full = (len(gzip.compress(SarifReport().render(r), compresslevel=1)) for r in (empty, report))
    payload = SarifReport(max_gzipped_bytes=(floor + full) // 2).render(report)
    document = json.loads(payload)
    assert len(document["runs"]) <= 20 and document["runs"][-1]["properties"]["withheld"]
    assert any("truncated" in run["properties"] for run in document["runs"])
    problems = validate(tmp_path, payload)
    assert [p for p in problems if p["ruleId"] not in ACCEPTED_WARNINGS] == [], problems[:3]
