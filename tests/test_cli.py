"""The command line: main job, exit codes, one-line errors, nothing partial written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.cli import main, safe
from auditor.sample import SAMPLE_SNAPSHOT
from auditor.sample.generate import hardened_host_options
from auditor.snapshot import Snapshot, Source, make_resource, save_snapshot

OUTPUTS = {"findings.json", "results.sarif", "report.html", "junit.xml"}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot_with(tmp_path: Path, *resources, failed: str | None = None) -> Path:
    sources = [Source(id="vc1", cloud="vsphere", kind="vcenter")]
    if failed:
        sources.append(Source(id=failed, cloud="vsphere", kind="vcenter", status="failed",
                              error="connection refused"))
    path = tmp_path / "snap.json"
    save_snapshot(Snapshot(collected_at="2026-11-20T00:00:00Z", sources=sources, resources=list(resources)), path)
    return path


def host(version: str, name: str = "esx01", build: str = "1"):
    """A host hardened to the shipped rules, running `version`."""
    return make_resource(id=f"vc1/host-{name}", name=name, cloud="vsphere", type="HostSystem", source="vc1",
                         native={"summary": {"config": {"product": {"version": version, "build": build}},
                                             "runtime": {"connectionState": "connected"}},
                                 "config": {"lockdownMode": "lockdownNormal",
                                            "dateTimeInfo": {"ntpConfig": {"server": ["ntp1.corp.example",
                                                                                      "ntp2.corp.example"]}},
                                            "option": [{"key": "Syslog.global.logHost",
                                                        "value": "ssl://syslog.corp.example:6514"},
                                                       *(option for option in hardened_host_options()
                                                         if option["key"] != "Syslog.global.logHost")]}})


def test_default_scan_writes_every_format_under_reports(workdir, capsys):
    code, out, err = run(capsys, "scan", "--as-of", "2026-11-25")
    assert code == 0, err
    assert "Scanned 344 resources from 6 sources" in out and "Top findings:" in out
    latest = workdir / "reports" / "latest"
    assert latest.is_symlink() and {p.name for p in latest.iterdir()} == OUTPUTS
    document = json.loads((latest / "findings.json").read_text())
    assert document["summary"]["total"] == len(document["findings"]) > 100


def test_second_scan_keeps_the_first_and_moves_latest(workdir, capsys):
    run(capsys, "scan", "--as-of", "2026-11-25", "--format", "json")
    first = (workdir / "reports" / "latest").resolve()
    run(capsys, "scan", "--as-of", "2026-11-25", "--format", "json")
    second = (workdir / "reports" / "latest").resolve()
    assert first != second and (first / "findings.json").exists()
    assert {p.name for p in second.iterdir()} == {"findings.json"}


def test_fail_on(workdir, capsys):
    old = snapshot_with(workdir, host("7.0.3"))
    assert run(capsys, "scan", "--snapshot", str(old), "--fail-on", "high", "--as-of", "2026-11-25")[0] == 1
    assert run(capsys, "scan", "--snapshot", str(old), "--fail-on", "critical", "--as-of", "2026-11-25")[0] == 0
    assert run(capsys, "scan", "--snapshot", str(old), "--as-of", "2026-11-25")[0] == 0
    # patched to the minimum build, and more than a year before 8.0's end of support
    current = snapshot_with(workdir, host("8.0.3", build="24784735"))
    assert run(capsys, "scan", "--snapshot", str(current), "--fail-on", "info", "--as-of", "2026-06-01")[0] == 0


def test_incomplete_collection_exits_3(workdir, capsys):
    path = snapshot_with(workdir, host("8.0.2"), failed="vc2")
    code, _, err = run(capsys, "scan", "--snapshot", str(path), "--fail-on", "high")
    assert code == 3 and "collection incomplete: vc2 failed" in err


@pytest.mark.parametrize("setup, expected", [
    (lambda d: ("--snapshot", str(d / "missing.json")), "missing.json: snapshot file not found"),
    (lambda d: (d / "bad.json").write_text("{not json") and ("--snapshot", str(d / "bad.json")),
     "bad.json:1: not a snapshot: invalid JSON"),
    (lambda d: (d / "future.json").write_text(json.dumps({"kind": "auditor.snapshot", "schema_version": 99}))
     and ("--snapshot", str(d / "future.json")), "schema_version 99 is newer than this auditor reads"),
    (lambda d: (d / "r.yaml").write_text("rules:\n  - id: A-1\n    title: t\n    severity: high\n"
                                         "    category: other\n    resource: azure:microsoft.network/routetables\n    description: d\n"
                                         "    remediation: r\n    match: {path: a, op: frobnicate, value: 1}\n")
     and ("--rules", str(d / "r.yaml")), "r.yaml:9: rule A-1: unknown operator 'frobnicate'"),
    (lambda d: (d / "r.yaml").write_text("rules: [\n") and ("--rules", str(d / "r.yaml")), "r.yaml:2: YAML syntax error"),
    (lambda d: (d / "b.yaml").write_text("baselines:\n  support.minimum_versions: {}\n")
     and ("--baseline", str(d / "b.yaml")), "rule AZ-SUP-002: baseline table 'support.minimum_versions'"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(workdir, capsys, setup, expected):
    assert run(capsys, "scan", "--as-of", "2026-11-25")[0] == 0
    runs_before = sorted(p.name for p in (workdir / "reports").iterdir())
    latest_before = (workdir / "reports" / "latest").resolve()
    code, out, err = run(capsys, "scan", *setup(workdir))
    assert code == 2
    lines = err.strip().splitlines()
    # one line per problem (a baseline two rules read is two problems), the first one named
    assert all(line.startswith("auditor: error: ") for line in lines) and expected in lines[0], err
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in (workdir / "reports").iterdir()) == runs_before
    assert (workdir / "reports" / "latest").resolve() == latest_before


def test_unknown_format_is_a_usage_error(workdir, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["scan", "--format", "pdf"])
    assert caught.value.code == 2
    assert "unknown format 'pdf'" in capsys.readouterr().err


def test_rules_list_and_validate(workdir, capsys):
    code, out, _ = run(capsys, "rules", "list")
    assert code == 0 and "VS-SUP-001" in out and "AZ-NET-001" in out
    code, _, _ = run(capsys, "rules", "list", "--format", "markdown", "--output", "rules.md")
    text = (workdir / "rules.md").read_text()
    assert code == 0 and text.startswith("# Rule catalogue") and "| AZ-NET-001 | high |" in text
    code, out, _ = run(capsys, "rules", "list", "--format", "json")
    assert {rule["id"] for rule in json.loads(out)} >= {"VS-LIC-001", "HY-SUP-001"}
    rules_dir = Path(__file__).resolve().parent.parent / "rules"
    code, out, _ = run(capsys, "rules", "validate", str(rules_dir))
    assert code == 0 and out.startswith("ok: ")
    (workdir / "bad.yaml").write_text("rules:\n  - id: lower\n")
    code, _, err = run(capsys, "rules", "validate", str(workdir / "bad.yaml"))
    assert code == 2 and "bad.yaml:2: rule lower: missing required key 'title'" in err


def test_report_renders_again_from_saved_findings(workdir, capsys):
    run(capsys, "scan", "--as-of", "2026-11-25", "--format", "json")
    saved = workdir / "reports" / "latest" / "findings.json"
    for fmt, name in (("html", "again.html"), ("sarif", "again.sarif"), ("junit", "again.xml"), ("json", "again.json")):
        code, _out, _ = run(capsys, "report", "--from", str(saved), "--format", fmt, "--output", str(workdir / name))
        assert code == 0 and (workdir / name).stat().st_size > 1000
    again = json.loads((workdir / "again.json").read_text())
    original = json.loads(saved.read_text())
    assert again["findings"] == original["findings"] and again["rules"] == original["rules"]
    code, _, err = run(capsys, "report", "--from", str(workdir / "again.html"), "--format", "sarif")
    assert code == 2 and "again.html:1: not a findings.json: invalid JSON" in err


def test_terminal_output_neutralises_escape_sequences():
    assert safe("vm\x1b[2J\x07name") == "vm\\x1b[2J\\x07name"
    assert safe("<img src=x onerror=alert(1)>") == "<img src=x onerror=alert(1)>"


def test_console_script_and_module_entry_points(workdir):
    version = subprocess.run(["auditor", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip().startswith("auditor ")
    result = subprocess.run([sys.executable, "-m", "auditor", "scan", "--snapshot", str(SAMPLE_SNAPSHOT),
                             "--out", str(workdir / "out"), "-q", "--fail-on", "critical"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    # quiet prints only why the gate failed, and which findings did it
    assert result.stderr.startswith("auditor: gate failed: 3 findings at or above critical\n  CRITICAL ")


def test_unwritable_output_fails_before_any_work(workdir, capsys):
    blocker = workdir / "reports"
    blocker.write_text("a file where the output folder should be")
    code, out, err = run(capsys, "scan", "--as-of", "2026-11-25")
    assert code == 2 and "reports: cannot create output folder" in err and out == ""
    assert blocker.read_text().startswith("a file")  # nothing was overwritten


def test_password_file_problems_are_one_line_errors(workdir, capsys, monkeypatch):
    monkeypatch.setenv("VSPHERE_USER", "auditor")
    (workdir / "binary").write_bytes(b"\xff\xfe\x00")
    for path, expected in ((workdir / "missing", "missing: password file not found"),
                           (workdir / "binary", "binary: password file is not UTF-8 text")):
        code, _, err = run(capsys, "collect", "vsphere", "--server", "127.0.0.1:1", "--password-file", str(path),
                           "--out", str(workdir / "s.json"))
        assert code == 2 and expected in err and "Traceback" not in err
