"""Honest runs: nothing silently dropped, invented or mislabelled.

A failed or missing source turns its earlier findings unknown, never fixed; rules that did
not run are shown as not evaluated in every output; every count reads the same
everywhere; a pure reordering moves nothing; the sample is labelled as the sample."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.findings import Finding
from auditor.gate import decide
from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
from auditor.snapshot import Snapshot, Source, load_snapshot, save_snapshot
from tests.conftest import AS_OF

ARGS = ["--as-of", AS_OF.isoformat(), "--no-history"]
SAMPLE_ZONES = ["--baseline", str(SAMPLE_BASELINE)]
VC2 = "vc-dc2.corp.example"
WAITING = {"AZ-LIC-004", "AZ-LIC-005", "AZ-LIC-006", "AZ-NET-014", "HY-NET-001", "DR-VS-003", "DR-VS-004"}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def latest(workdir: Path, name: str = "findings.json"):
    text = (workdir / "reports" / "latest" / name).read_text()
    return json.loads(text) if name.endswith((".json", ".sarif")) else text


def sample_copy(workdir: Path, name: str, change=None) -> Path:
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    if change:
        change(snapshot)
    path = workdir / name
    save_snapshot(snapshot, path)
    return path


def fail_source(source_id: str):
    def change(snapshot: Snapshot) -> None:
        snapshot.resources = [r for r in snapshot.resources if r["source"] != source_id]
        for source in snapshot.sources:
            if source.id == source_id:
                source.status, source.error, source.resource_count = "failed", f"{source_id}: connection refused", 0
    return change


def previous_scan(workdir: Path) -> Path:
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(sample_copy(workdir, "full.json")), "-q"]) == 0
    saved = workdir / "previous.json"
    saved.write_bytes((workdir / "reports" / "latest" / "findings.json").read_bytes())
    return saved


def test_a_failed_source_makes_its_findings_unknown_not_fixed(workdir, capsys):
    previous = previous_scan(workdir)
    before = [f for f in json.loads(previous.read_text())["findings"] if f["source"] == VC2]
    assert len(before) > 50
    partial = sample_copy(workdir, "partial.json", fail_source(VC2))
    code = main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(partial), "--compare", str(previous)])
    out, err = capsys.readouterr()
    assert code == 3 and f"{VC2}: connection refused" in err
    document = latest(workdir)
    states = {f["state"] for f in document["findings"] if f["source"] == VC2}
    assert states == {"unknown"}  # not "absent": nobody fixed them, nobody looked
    assert document["summary"]["unknown"] == len(before) and document["summary"]["absent"] == 0
    assert document["summary"]["total"] == len([f for f in document["findings"] if f["source"] != VC2])
    assert f"unknown {len(before)}" in out and "absent 0" in out
    html = latest(workdir, "report.html")
    assert re.search(r'data-state="unknown"><span class="muted">unknown \(not evaluated\)</span><b>'
                     f"{len(before)}</b>", html)
    sarif = latest(workdir, "results.sarif")
    assert not any(run["automationDetails"]["id"] == f"vsphere/{VC2}/" for run in sarif["runs"])
    assert not any(r.get("baselineState") == "absent" for run in sarif["runs"] for r in run["results"])


def test_unknown_findings_neither_pass_nor_fail_the_gate():
    def finding(state):
        return Finding(rule_id="R-1", fingerprint=state, severity="high", category="other", title="t", message="m",
                       resource_id=state, resource_name=state, resource_type="t", cloud="azure", source="s",
                       state=state)
    assert decide([finding("unknown"), finding("absent")], "new", "info").failing == []
    assert decide([finding("unknown"), finding("absent")], "high", "info").failing == []
    assert [f.state for f in decide([finding("unknown"), finding("new")], "new", "info").failing] == ["new"]


def test_a_source_not_collected_this_time_is_unknown_too(workdir):
    previous = previous_scan(workdir)

    def vsphere_only(snapshot: Snapshot) -> None:
        snapshot.resources = [r for r in snapshot.resources if r["cloud"] == "vsphere"]
        snapshot.sources = [s for s in snapshot.sources if s.cloud == "vsphere"]
    partial = sample_copy(workdir, "vsphere.json", vsphere_only)
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(partial), "--compare", str(previous), "-q"]) == 0
    document = latest(workdir)
    assert {f["state"] for f in document["findings"] if f["cloud"] == "azure"} == {"unknown"}
    # Azure rules saw no resource of their types: not evaluated, with the reason
    rules = {r["id"]: r for r in document["rules"]}
    assert rules["AZ-NET-001"]["status"] == "not_evaluated"
    assert "no resource it applies to" in rules["AZ-NET-001"]["reason"]


def test_diff_says_a_source_failed_instead_of_listing_removals(workdir, capsys):
    partial = sample_copy(workdir, "partial.json", fail_source(VC2))
    assert main(["diff", str(SAMPLE_SNAPSHOT), str(partial)]) == 3
    out, err = capsys.readouterr()
    assert "0 added, 0 removed, 0 changed" in out and f"! source {VC2} failed in the new snapshot" in out
    assert f"{VC2} failed in the new snapshot: its resources were not compared" in err
    assert main(["diff", str(SAMPLE_SNAPSHOT), str(partial), "--format", "json", "--output", "d.json"]) == 3
    drift = json.loads((workdir / "d.json").read_text())
    assert drift["removed"] == [] and drift["unavailable"][0]["id"] == VC2


def test_when_every_source_fails_no_rule_reads_as_passing(workdir, capsys):
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    for source in snapshot.sources:
        source.status, source.error = "failed", f"{source.id}: unreachable"
    snapshot.resources = []
    save_snapshot(snapshot, workdir / "dead.json")
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", "dead.json"]) == 3
    out = capsys.readouterr().out
    document = latest(workdir)
    assert {r["status"] for r in document["rules"]} == {"not_evaluated"}
    assert all("failed" in r["reason"] for r in document["rules"])
    assert "evaluated 0  partial 0  not evaluated" in out
    junit = ET.fromstring(latest(workdir, "junit.xml"))
    cases = junit.findall(".//testcase")
    assert cases and all(case.find("skipped") is not None for case in cases)
    assert junit.get("failures") == "0" and junit.get("skipped") == str(len(cases))


def test_rules_waiting_for_a_baseline_are_not_evaluated_in_every_output(workdir, capsys):
    # a copy of the sample is not the sample: its zones and entitlements do not apply
    code = main(["scan", *ARGS, "--snapshot", str(sample_copy(workdir, "estate.json"))])
    out = capsys.readouterr().out
    assert code == 0
    document = latest(workdir)
    waiting = {r["id"]: r for r in document["rules"] if r["status"] == "not_evaluated"}
    assert set(waiting) == WAITING
    assert "licensing.entitlements" in waiting["AZ-LIC-004"]["reason"]
    assert "network.zones" in waiting["HY-NET-001"]["reason"]
    for rule_id in WAITING:
        assert rule_id in out
    junit = ET.fromstring(latest(workdir, "junit.xml"))
    skipped = {case.get("name").split()[0] for case in junit.findall(".//testcase") if case.find("skipped") is not None}
    assert skipped == WAITING
    sarif = latest(workdir, "results.sarif")
    for run in sarif["runs"]:
        noted = {n["associatedRule"]["id"] for inv in run["invocations"]
                 for n in inv.get("toolExecutionNotifications", []) if "associatedRule" in n}
        cloud = run["automationDetails"]["id"].split("/")[0]
        expected = {r for r in WAITING if any(sel.split(":")[0] in (cloud, "*") for sel in
                                              next(x for x in document["rules"] if x["id"] == r)["resources"])}
        assert noted == expected, run["automationDetails"]["id"]
    html = latest(workdir, "report.html")
    payload = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html,
                                   re.S).group(1))
    assert payload["rules"]["HY-NET-001"]["status"] == "not_evaluated"


def test_per_rule_counts_tell_zero_findings_from_not_looked_at(workdir):
    waivers = workdir / "waivers.yaml"
    waivers.write_text("waivers:\n  - {rule: VS-SUP-001, resource: 'vc-dc1.corp.example/host-*', reason: r, "
                       "owner: o, expires: 2027-06-30}\n")
    assert main(["scan", *ARGS, "--waivers", str(waivers), "-q"]) == 0
    document = latest(workdir)
    rule = next(r for r in document["rules"] if r["id"] == "VS-SUP-001")
    hosts = document["snapshot"]["resource_counts"]["vsphere:HostSystem"]
    findings = [f for f in document["findings"] if f["rule_id"] == "VS-SUP-001"]
    waived = {f["resource_id"] for f in findings if f["suppression"]}
    failed = {f["resource_id"] for f in findings if not f["suppression"]}
    assert rule["counts"] == {"checked": hosts, "passed": hosts - len(waived) - len(failed), "failed": len(failed),
                              "waived": len(waived), "not_evaluated": 0}
    assert waived and rule["status"] == "evaluated"


def test_an_expired_waiver_gives_its_findings_their_own_state(workdir):
    waivers = workdir / "waivers.yaml"
    waivers.write_text("waivers:\n  - {rule: VS-SUP-002, resource: '*', reason: r, owner: o, expires: 2026-01-31}\n")
    previous = previous_scan(workdir)
    code = main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", "full.json", "--compare", str(previous),
                 "--waivers", str(waivers), "-q"])
    assert code == 1  # due again: the gate fails on it although it is not new
    document = latest(workdir)
    due = [f for f in document["findings"] if f["rule_id"] == "VS-SUP-002"]
    assert due and {f["state"] for f in due} == {"waiver-expired"}
    assert document["summary"]["by_state"]["waiver-expired"] == len(due)
    sarif = latest(workdir, "results.sarif")
    states = {r["properties"]["state"] for run in sarif["runs"] for r in run["results"] if r["ruleId"] == "VS-SUP-002"}
    assert states == {"waiver-expired"}
    assert "state: waiver-expired" in latest(workdir, "junit.xml")


def test_every_count_reads_the_same_everywhere(workdir, capsys):
    waivers = workdir / "waivers.yaml"
    waivers.write_text("waivers:\n  - {rule: HY-SUP-*, resource: '*', reason: r, owner: o, expires: 2027-06-30}\n")
    previous = previous_scan(workdir)

    def fixed_one(snapshot: Snapshot) -> None:
        host = next(r for r in snapshot.resources if r["name"] == "esx01.dc1.corp.example")
        host["config"]["lockdownMode"] = "lockdownNormal"
    changed = sample_copy(workdir, "changed.json", fixed_one)
    capsys.readouterr()
    main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(changed), "--compare", str(previous),
          "--waivers", str(waivers)])
    out = capsys.readouterr().out
    summary = latest(workdir)["summary"]
    assert summary["absent"] >= 1 and summary["suppressed"] > 0  # the case that made them disagree
    total = int(re.search(r": (\d+) findings", out).group(1))
    severities = dict((k, int(v)) for k, v in re.findall(r"(\w+) (\d+)", out.split("  severity  ")[1].splitlines()[0]))
    html = latest(workdir, "report.html")
    card = int(re.search(r'id="total-count">(\d+)<', html).group(1))
    cards = {s: int(n) for s, n in re.findall(r'data-severity="(\w+)"><span class="muted">\w+</span><b>(\d+)</b>', html)}
    chart = sum(int(n) for n in re.findall(r'<text x="[\d.]+" y="\d+">(\d+)</text>', html))
    assert total == card == chart == summary["total"] == sum(summary["by_severity"].values())
    assert severities == cards == {s: summary["by_severity"].get(s, 0) for s in cards}


def test_a_pure_reordering_moves_neither_the_gate_nor_the_states(workdir):
    previous = previous_scan(workdir)

    def reorder(snapshot: Snapshot) -> None:
        for resource in snapshot.resources:
            ntp = resource.get("config", {}).get("dateTimeInfo", {}).get("ntpConfig", {})
            if isinstance(ntp.get("server"), list):
                ntp["server"].reverse()
            rules = resource.get("properties", {}).get("securityRules") if resource["cloud"] == "azure" else None
            if isinstance(rules, list):
                rules.reverse()
        snapshot.resources.reverse()
    reordered = sample_copy(workdir, "reordered.json", reorder)
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(reordered), "--compare", str(previous), "-q"]) == 0
    assert {f["state"] for f in latest(workdir)["findings"]} == {"unchanged"}


def test_the_sample_says_sample_in_every_output(workdir, capsys):
    assert main(["scan", *ARGS]) == 0
    assert capsys.readouterr().out.startswith("SAMPLE ESTATE:")
    assert latest(workdir)["sample"] is True
    assert 'id="sample-banner"' in latest(workdir, "report.html")
    assert all(run["properties"]["sample"] is True for run in latest(workdir, "results.sarif")["runs"])
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(sample_copy(workdir, "mine.json"))]) == 0
    assert not capsys.readouterr().out.startswith("SAMPLE") and latest(workdir)["sample"] is False
    assert 'id="sample-banner"' not in latest(workdir, "report.html")
    assert all("sample" not in run["properties"] for run in latest(workdir, "results.sarif")["runs"])


def test_a_source_option_without_its_source_never_scans_the_sample(workdir, capsys):
    assert main(["scan", *ARGS, "--azure-subscription", "abc"]) == 2
    assert "--azure-subscription needs --azure" in capsys.readouterr().err
    assert not (workdir / "reports").exists()


# --- rules validate -----------------------------------------------------------------------

RULE = """  - id: {id}
    title: t
    severity: high
    category: other
    resource: {resource}
    description: d
    remediation: r
    match: {{path: a, op: {op}, value: 1}}
"""


def test_validate_checks_resource_types_and_suggests_the_nearest(workdir, capsys):
    (workdir / "r.yaml").write_text("rules:\n" + RULE.format(id="A-1", resource="vsphere:VirtualMachines", op="eq"))
    assert main(["rules", "validate", "r.yaml"]) == 2
    assert "r.yaml:6: rule A-1: resource 'vsphere:VirtualMachines' is no type the collectors produce (did you " \
           "mean vsphere:VirtualMachine?)" in capsys.readouterr().err


def test_validate_reports_every_problem_in_one_run(workdir, capsys):
    (workdir / "a.yaml").write_text("rules:\n" + RULE.format(id="A-1", resource="azure:microsoft.compute/vms", op="eq")
                                    + RULE.format(id="A-2", resource="vsphere:HostSystem", op="frobnicate")
                                    + RULE.format(id="A-3", resource="vsphere:HostSystem", op="eq"))
    (workdir / "b.yaml").write_text("rules:\n" + RULE.format(id="A-3", resource="vsphere:HostSystem", op="eq")
                                    + "  - id: lower\n")
    assert main(["rules", "validate", "a.yaml", "b.yaml"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4, lines
    assert "a.yaml:6: rule A-1: resource" in lines[0] and "a.yaml:17: rule A-2: unknown operator" in lines[1]
    assert "b.yaml:2: duplicate rule id A-3" in lines[2] and "b.yaml:10: rule lower: missing required key" in lines[3]


@pytest.mark.parametrize("files", [{"empty.yaml": "rules: []\n"}, {}])
def test_an_empty_rule_set_is_refused(workdir, capsys, files):
    folder = workdir / "rules"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    assert main(["rules", "validate", str(folder)]) == 2
    assert "no rules found" in capsys.readouterr().err
    assert main(["scan", *ARGS, "--no-default-rules", "--rules", str(folder)]) == 2
    assert "a scan without rules would pass any estate" in capsys.readouterr().err
    # beside the shipped packs, a named path that adds no rule is a mistake too
    assert main(["scan", *ARGS, "--rules", str(folder)]) == 2
    assert "a rule path that adds no rule is a mistake" in capsys.readouterr().err


# --- snapshots ----------------------------------------------------------------------------

@pytest.mark.parametrize("twin", [
    lambda r: copy.deepcopy(r),
    lambda r: dict(copy.deepcopy(r), id=r["id"].upper()),  # ARM ids are case-insensitive
])
def test_one_id_twice_in_one_snapshot_is_an_input_error(workdir, capsys, twin):
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    nsg = next(r for r in snapshot.resources if r["name"] == "nsg-web")
    snapshot.resources.append(twin(nsg))
    save_snapshot(snapshot, workdir / "twice.json")
    assert main(["scan", *ARGS, "--snapshot", "twice.json"]) == 2
    err = capsys.readouterr().err
    assert "twice.json: resources[" in err and "has the same id as resources[" in err


def test_a_failed_source_in_a_snapshot_file_is_kept_apart():
    snapshot = Snapshot("2026-11-20T00:00:00Z", [Source("vc9", "vsphere", "vcenter", status="failed", error="x")], [])
    assert snapshot.incomplete
