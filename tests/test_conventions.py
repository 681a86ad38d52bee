"""The conventions users of Checkov, Prowler and Trivy reach for: findings to standard
output, CSV, choosing what runs, --rules beside the shipped packs, logging with
timestamps, progress, help for every option, and the compliance summary per framework."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import pytest

from auditor.cli import build_parser, main
from auditor.compliance import compliance
from auditor.findings import Finding, RuleInfo, ScanReport
from auditor.formats.csv import CsvReport, cell
from auditor.options import SPECS
from auditor.progress import Progress
from tests.conftest import AS_OF

ARGS = ["--as-of", AS_OF.isoformat(), "--no-history"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_findings_to_standard_output_in_each_machine_format(workdir):
    for fmt, check in (("json", lambda out: json.loads(out)["schema"] == "auditor.findings"),
                       ("sarif", lambda out: json.loads(out)["version"] == "2.1.0"),
                       ("csv", lambda out: out.startswith("severity,state,waived,rule_id"))):
        result = subprocess.run([sys.executable, "-m", "auditor", "scan", *ARGS, "-f", fmt, "-o", "-"],
                                capture_output=True, text=True, cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert check(result.stdout), fmt
        assert "Scanned 344 resources" in result.stderr  # the summary beside the findings, not in them
    assert not (workdir / "reports").exists()


def test_standard_output_takes_exactly_one_format(workdir, capsys):
    assert main(["scan", *ARGS, "-f", "json,sarif", "-o", "-"]) == 2
    assert "writes one format to standard output" in capsys.readouterr().err
    assert main(["scan", *ARGS, "-o", "-", "-f", "json", "--compare", "latest"]) == 2


def test_report_renders_to_standard_output_too(workdir, capsys):
    assert main(["scan", *ARGS, "-q", "-f", "json"]) == 0
    assert main(["report", "--from", "reports/latest/findings.json", "-f", "csv", "-o", "-"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][0] == "severity" and len(rows) > 100


def test_csv_cells_never_run_as_formulas(sample_report):
    assert cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert [cell(v) for v in ("+1", "-1", "@SUM(A1)", "\tx", "plain", None)] == [
        "'+1", "'-1", "'@SUM(A1)", "'\\x09x", "plain", ""]
    # a name cannot forge a line where the CSV is printed (findings to standard output in CI)
    assert cell("vm\n::error title=auditor::all clear") == "vm\\x0a::error title=auditor::all clear"
    rows = list(csv.DictReader(io.StringIO(CsvReport().render(sample_report).decode())))
    assert len(rows) == len(sample_report.findings)
    hostile = next(r for r in rows if "onerror" in r["resource_name"])
    assert hostile["resource_name"] == "<img src=x onerror=alert(1)>"
    assert all(not r[key].startswith(("=", "+", "-", "@")) for r in rows for key in r)


def rule_ids(workdir) -> set[str]:
    return {r["id"] for r in json.loads((workdir / "reports" / "latest" / "findings.json").read_text())["rules"]}


@pytest.mark.parametrize("argv, wanted", [
    (["--checks", "AZ-NET-*", "--checks", "VS-SUP-001"], lambda i: i.startswith("AZ-NET-") or i == "VS-SUP-001"),
    (["--skip-checks", "AZ-*", "--skip-checks", "HY-*"], lambda i: not i.startswith(("AZ-", "HY-"))),
    (["--severity", "critical", "--severity", "high"], None),
    (["--framework", "cis-azure-2.0"], None),
])
def test_choosing_what_runs(workdir, capsys, argv, wanted):
    assert main(["scan", *ARGS, "-q", "-f", "json", *argv]) == 0
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    ids = {r["id"] for r in document["rules"]}
    assert ids
    if wanted:
        assert all(wanted(i) for i in ids)
    if "--severity" in argv:
        assert {r["severity"] for r in document["rules"]} == {"critical", "high"}
        assert {f["severity"] for f in document["findings"]} <= {"critical", "high"}
    if "--framework" in argv:
        assert all("cis-azure-2.0" in r["frameworks"] for r in document["rules"])
    assert main(["scan", *ARGS, "-q", "--checks", "NOPE-*"]) == 2
    assert "no loaded rule matches" in capsys.readouterr().err


def test_rules_add_to_the_shipped_packs_unless_told_otherwise(workdir, capsys):
    (workdir / "house.yaml").write_text("""\
rules:
  - id: HOUSE-001
    title: VM without an owner tag
    severity: low
    category: other
    resource: azure:microsoft.compute/virtualmachines
    description: d
    remediation: r
    match: {path: tags.owner, op: absent}
""")
    assert main(["scan", *ARGS, "-q", "-f", "json", "--rules", "house.yaml"]) == 0
    both = rule_ids(workdir)
    assert "HOUSE-001" in both and "AZ-NET-001" in both
    assert main(["scan", *ARGS, "-q", "-f", "json", "--rules", "house.yaml", "--no-default-rules"]) == 0
    assert rule_ids(workdir) == {"HOUSE-001"}
    assert main(["scan", *ARGS, "--no-default-rules"]) == 2
    assert "--no-default-rules needs --rules PATH" in capsys.readouterr().err
    assert main(["rules", "list", "--rules", "house.yaml"]) == 0
    assert "HOUSE-001" in capsys.readouterr().out


def test_verbose_logs_each_step_with_a_timestamp(workdir, capsys):
    assert main(["scan", *ARGS, "-q", "-f", "json", "-v"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " auditor INFO: " in line]
    assert any("evaluating" in line for line in lines) and any("writing json" in line for line in lines)
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ auditor INFO: ", line) for line in lines)
    assert main(["scan", *ARGS, "-q", "-f", "json", "--log-level", "error"]) == 0
    assert " auditor INFO: " not in capsys.readouterr().err


def test_progress_shows_each_long_step_on_a_terminal():
    stream = io.StringIO()
    progress = Progress(stream=stream, enabled=True)
    progress.stage("evaluating 69 rules over 100,000 resources...")
    progress.done()
    assert stream.getvalue() == "\r\x1b[Kevaluating 69 rules over 100,000 resources...\r\x1b[K"
    silent = io.StringIO()
    Progress(stream=silent).stage("x")  # not a terminal: nothing
    assert silent.getvalue() == ""


@pytest.mark.parametrize("command", list(SPECS))
def test_every_option_of_every_command_has_help(command, capsys):
    for spec in SPECS[command]:
        assert len(spec.help) > 10, (command, spec.name)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command.split(), "--help"])
    shown = capsys.readouterr().out
    for spec in SPECS[command]:
        assert f"--{spec.name}" in shown, (command, spec.name)


def _rule(rule_id: str, status: str = "evaluated", failed: int = 0, waived: int = 0, **frameworks) -> RuleInfo:
    return RuleInfo(id=rule_id, title="t", severity="high", category="other", resources=["azure:x"],
                    description="d", remediation="r", references=[], frameworks=frameworks, file="f", line=1,
                    pack="p", status=status, counts={"checked": 3, "failed": failed, "waived": waived})


def test_a_control_is_passed_only_when_every_rule_on_it_judged_everything():
    rules = [_rule("A", **{"cis": ["1.1", "1.2"]}), _rule("B", failed=1, **{"cis": ["1.2"]}),
             _rule("C", status="partial", **{"cis": ["1.3"]}), _rule("D", waived=2, **{"cis": ["1.4", "1.10"]}),
             _rule("E", status="not_evaluated", **{"cis": ["1.10"]})]
    finding = Finding(rule_id="B", fingerprint="f", severity="high", category="other", title="t", message="m",
                      resource_id="r", resource_name="r", resource_type="t", cloud="azure", source="s")
    report = ScanReport(tool_version="0", scanned_at="", as_of="", collected_at="", sources=[], resource_count=1,
                        rules=rules, findings=[finding])
    cis = compliance(report)["cis"]
    assert [(c["id"], c["status"]) for c in cis["controls"]] == [
        ("1.1", "passed"), ("1.2", "failed"), ("1.3", "not_evaluated"), ("1.4", "waived"), ("1.10", "not_evaluated")]
    assert cis["totals"] == {"passed": 1, "failed": 1, "waived": 1, "not_evaluated": 2}
    assert cis["controls"][1]["findings"] == 1


def test_the_framework_summary_on_the_console_and_in_findings_json(workdir, capsys):
    assert main(["scan", *ARGS, "-f", "json", "--framework", "cis-azure-2.0"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"Compliance with CIS Microsoft Azure Foundations Benchmark 2.0 \(cis-azure-2.0\): (\d+) "
                      r"controls: passed (\d+)  failed (\d+)  waived (\d+)  not evaluated (\d+)", out)
    assert match, out
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    totals = document["compliance"]["cis-azure-2.0"]["totals"]
    assert [int(n) for n in match.groups()] == [sum(totals.values()), totals["passed"], totals["failed"],
                                                totals["waived"], totals["not_evaluated"]]
    assert totals["failed"] > 0


def test_every_argument_of_every_command_has_help_positionals_too():
    import argparse

    def walk(parser: argparse.ArgumentParser, name: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, argparse._HelpAction):
                yield name, action

    missing = [(name, action.dest) for name, action in walk(build_parser(), "auditor")
               if not action.help]
    assert not missing, missing
