"""Honest runs: nothing silently dropped, invented or mislabelled.

A failed or missing source turns its earlier findings unknown, never fixed; rules that did
not run are shown as not evaluated in every output; every count reads the same
everywhere; a pure reordering moves nothing; the sample is labelled as the sample."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.findings import Finding
from auditor.gate import decide
from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
from auditor.snapshot import Snapshot, Source, load_snapshot, save_snapshot
from tests.conftest import AS_OF
from tests.postgres import history_db_fixture  # noqa: F401 (the history_db fixture: SQLite and PostgreSQL)

ARGS = ["--as-of", AS_OF.isoformat(), "--no-history"]
SAMPLE_ZONES = ["--baseline", str(SAMPLE_BASELINE)]
VC2 = "vc-dc2.corp.example"
WAITING = {"AZ-LIC-004", "AZ-LIC-005", "AZ-LIC-006", "AZ-LIC-007", "AZ-NET-014", "HY-NET-001", "DR-VS-003", "DR-VS-004"}


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
    # the failed vCenter's run keeps its earlier alerts open (unchanged, state unknown) and
    # says the collection failed; nothing reads as fixed
    [run] = [run for run in sarif["runs"] if run["automationDetails"]["id"] == f"vsphere/{VC2}/"]
    assert len(run["results"]) == len(before) and not run["invocations"][0]["executionSuccessful"]
    assert {(r["baselineState"], r["properties"]["state"]) for r in run["results"]} == {("unchanged", "unknown")}
    assert not any(r.get("baselineState") == "absent" for run in sarif["runs"] for r in run["results"])
    # so comparing with that SARIF later finds nothing new about the failed vCenter
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(partial), "--compare",
                 str(workdir / "reports" / "latest" / "results.sarif"), "-o", "again", "-q"]) == 3
    again = json.loads((workdir / "again" / "latest" / "findings.json").read_text())
    assert again["summary"]["by_state"].get("new", 0) == 0


def test_a_sarif_of_a_scan_whose_every_source_failed_says_so(workdir):
    every = sample_copy(workdir, "none.json", lambda s: [fail_source(source.id)(s) for source in list(s.sources)])
    assert main(["scan", *ARGS, "--snapshot", str(every), "-q"]) == 3
    sarif = latest(workdir, "results.sarif")
    # no run of any vCenter or tenant (an empty one would close its alerts as fixed), but a
    # run of its own that says what could not be collected
    assert [run["automationDetails"]["id"] for run in sarif["runs"]] == ["auditor/collection/"]
    [invocation] = sarif["runs"][0]["invocations"]
    assert not invocation["executionSuccessful"] and sarif["runs"][0]["results"] == []
    assert len(invocation["toolExecutionNotifications"]) == 6


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
        # the waiting rules, and those that judged only part of what they apply to (hosts on
        # a release line without a minimum patch level, the lab's release the tables lack)
        expected = {r["id"] for r in document["rules"] if r["status"] != "evaluated"
                    and any(sel.split(":")[0] in (cloud, "*") for sel in r["resources"])}
        assert WAITING & expected and noted == expected, run["automationDetails"]["id"]
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
    cards = {s: int(n) for s, n in re.findall(r'data-severity="(\w+)"[^>]*><span class="muted">\w+</span><b>(\d+)</b>',
                                              html)}
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
                for rule in rules:  # the lists inside a rule have no order either
                    for field in ("destinationPortRanges", "sourceAddressPrefixes"):
                        if isinstance(rule["properties"].get(field), list):
                            rule["properties"][field].reverse()
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
    assert "a.yaml:6: rule A-1: resource" in lines[0] and "a.yaml:17: rule A-2: unknown operator" in lines[1]
    assert "b.yaml:2: duplicate rule id A-3" in lines[2]
    # every problem of one rule, not only its first: seven missing keys and a malformed id
    lower = lines[3:]
    assert len(lower) == 8 and all("b.yaml:10: rule" in line for line in lower), lower
    assert sum("missing required key" in line for line in lower) == 7 and any("must match" in line for line in lower)


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


# --- what a new user found next: each a number that was not true ----------------------------

@pytest.mark.parametrize("redirect", [
    "2>/dev/null | head -1",  # `| head -1` closes the pipe after one line
    "2>&1 | head -1",  # ... standard error's too
    "2>&1 | true",  # closed before anything is written
    "2>/dev/full | true",  # standard error on a full disk
    "2>&- | true",  # standard error closed before the start: None in Python
    ">&- 2>&-",  # both
])
def test_a_closed_pipe_keeps_the_exit_code(workdir, redirect):
    """The gate's verdict must survive the reader going away, whichever stream it reads."""
    every = sample_copy(workdir, "none.json", lambda s: [fail_source(source.id)(s) for source in list(s.sources)])
    for argv, code in ((["--snapshot", str(every)], 3), (["--snapshot", str(SAMPLE_SNAPSHOT), "--fail-on", "high"], 1)):
        command = " ".join([sys.executable, "-m", "auditor", "scan", *ARGS, *argv, "-o", str(workdir / "out")])
        result = subprocess.run(["bash", "-c", f"{command} {redirect}; exit ${{PIPESTATUS[0]}}"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == code, result
        assert "Traceback" not in result.stdout + result.stderr, result


def test_a_host_without_its_configuration_is_not_evaluated_not_passed(workdir):
    previous = previous_scan(workdir)
    host = "esx01.dc1.corp.example"

    def disconnect(snapshot: Snapshot) -> None:
        for resource in snapshot.resources:
            if resource["name"] == host:
                resource["config"] = None
                resource["summary"]["runtime"]["connectionState"] = "disconnected"
    partial = sample_copy(workdir, "disconnected.json", disconnect)
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(partial), "--compare", str(previous), "-q"]) == 0
    document = latest(workdir)
    about_host = [f for f in document["findings"] if f["resource_name"] == host]
    before = [f for f in json.loads(previous.read_text())["findings"] if f["resource_name"] == host
              and f["rule_id"].startswith(("VS-NET", "DR-VS"))]
    assert before  # the host had hardening findings
    states = {f["rule_id"]: f["state"] for f in about_host if f["rule_id"].startswith(("VS-NET", "DR-VS"))}
    assert set(states.values()) == {"unknown"}, states  # nobody fixed them: nobody could look
    assert not any(f["state"] == "new" for f in about_host)  # no "no NTP server" from missing data
    rules = {r["id"]: r for r in document["rules"]}
    assert rules["VS-NET-006"]["counts"]["not_evaluated"] >= 1


def test_junit_shows_a_partial_rule_with_no_open_finding_as_skipped(workdir):
    previous = previous_scan(workdir)
    partial = sample_copy(workdir, "partial.json", fail_source(VC2))
    main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(partial), "--compare", str(previous), "-q"])
    rules = {r["id"]: r for r in latest(workdir)["rules"]}
    junit = ET.fromstring(latest(workdir, "junit.xml"))
    cases = {case.get("name").split()[0]: case for case in junit.iter("testcase")}
    partial_quiet = [rid for rid, r in rules.items() if r["status"] == "partial" and not r["counts"].get("failed")]
    assert partial_quiet
    for rule_id in partial_quiet:
        skipped = cases[rule_id].find("skipped")
        assert skipped is not None and skipped.get("message").startswith("partial: ")


def test_history_counts_unknown_findings_apart_from_open_ones(workdir, capsys, history_db):
    main(["scan", "--as-of", AS_OF.isoformat(), *SAMPLE_ZONES, "--snapshot", str(sample_copy(workdir, "a.json")), "-q",
          *history_db.flags])
    partial = sample_copy(workdir, "partial.json", fail_source(VC2))
    main(["scan", "--as-of", AS_OF.isoformat(), *SAMPLE_ZONES, "--snapshot", str(partial), "--compare", "latest",
          "-q", *history_db.flags])
    document = latest(workdir)
    assert document["history"][-1]["total"] == document["summary"]["open"]
    assert history_db.rows("SELECT total, incomplete FROM scans ORDER BY id")[-1] == (document["summary"]["open"], 1)
    capsys.readouterr()
    main(["history", *history_db.flags])
    newest = capsys.readouterr().out.splitlines()[1]
    assert f"{document['summary']['open']:>5}" in newest


def test_a_waiver_of_a_failed_source_is_not_called_stale(workdir, capsys):
    waivers = workdir / "w.yaml"
    waivers.write_text("""waivers:
  - rule: DR-VS-003
    resource: '*dc2*'
    reason: accepted
    owner: secops
    expires: '2027-06-30'
""")
    partial = sample_copy(workdir, "partial.json", fail_source(VC2))
    main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(partial), "--waivers", str(waivers)])
    err = capsys.readouterr().err
    assert "remove it" not in err
    assert latest(workdir)["waivers"][0]["status"] == "not_evaluated"
    main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(sample_copy(workdir, "full.json")), "--waivers",
          str(waivers), "-q"])
    assert latest(workdir)["waivers"][0]["status"] == "active"


def test_compare_latest_names_the_run_it_compared_with(workdir):
    main(["scan", *ARGS, "-q"])
    first = os.readlink(workdir / "reports" / "latest")
    main(["scan", *ARGS, "--compare", "latest", "-q"])
    assert latest(workdir)["compared_with"] == str(Path("reports") / first / "findings.json")


def test_diff_with_a_source_the_new_snapshot_did_not_collect(workdir, capsys):
    def vsphere_only(snapshot: Snapshot) -> None:
        snapshot.resources = [r for r in snapshot.resources if r["source"] != VC2]
        snapshot.sources = [s for s in snapshot.sources if s.id != VC2]
    assert main(["diff", str(SAMPLE_SNAPSHOT), str(sample_copy(workdir, "fewer.json", vsphere_only))]) == 3
    out, err = capsys.readouterr()
    assert "0 removed" in out and f"{VC2} was not collected in the new snapshot" in err


def test_list_flags_take_comma_lists_as_the_environment_does(workdir):
    assert main(["scan", *ARGS, "--severity", "critical,high", "-f", "json", "csv", "-q"]) == 0
    document = latest(workdir)
    assert {f["severity"] for f in document["findings"]} == {"critical", "high"}
    assert sorted(p.name for p in (workdir / "reports" / "latest").iterdir()) == ["findings.csv", "findings.json"]


def test_the_sample_is_named_even_when_quiet_and_in_junit(workdir, capsys):
    assert main(["scan", *ARGS, "-q"]) == 0
    assert "SAMPLE ESTATE" in capsys.readouterr().err
    junit = ET.fromstring(latest(workdir, "junit.xml"))
    assert "SAMPLE ESTATE" in junit.get("name")
    assert all("SAMPLE ESTATE" in suite.get("name") for suite in junit.iter("testsuite"))


def test_a_pack_of_disabled_rules_only_is_refused(workdir, capsys):
    (workdir / "off.yaml").write_text("""rules:
  - id: OFF-001
    title: t
    severity: low
    category: other
    resource: azure:microsoft.network/routetables
    description: d
    remediation: r
    enabled: false
    match: {path: name, op: eq, value: x}
""")
    assert main(["rules", "validate", str(workdir / "off.yaml")]) == 2
    assert "every rule (1) is disabled" in capsys.readouterr().err


def test_a_tenant_with_one_failed_subscription_gets_no_run_that_would_close_its_alerts(workdir):
    prod = "0b1f6471-1bf0-4dda-aec3-111122223333"
    partial = sample_copy(workdir, "partial.json", fail_source(prod))
    assert main(["scan", *ARGS, "--snapshot", str(partial), "-q"]) == 3
    runs = {run["automationDetails"]["id"]: run for run in latest(workdir, "results.sarif")["runs"]}
    # without an earlier scan nothing is known of the failed subscription: the tenant's run is
    # left out (GitHub keeps its last analysis) and the collection run says why
    assert not any(category.startswith("azure/") for category in runs)
    assert prod in runs["auditor/collection/"]["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
    assert any(category.startswith("vsphere/") for category in runs)


def test_licence_findings_of_a_healthy_source_are_unknown_when_another_failed(workdir):
    previous = previous_scan(workdir)
    prod = "0b1f6471-1bf0-4dda-aec3-111122223333"
    before = [f for f in json.loads(previous.read_text())["findings"] if f["rule_id"] == "AZ-LIC-004"
              and f["source"] != prod]
    assert before  # vm-dc-01 of the shared subscription
    partial = sample_copy(workdir, "partial.json", fail_source(prod))
    main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(partial), "--compare", str(previous), "-q"])
    states = {f["resource_name"]: f["state"] for f in latest(workdir)["findings"] if f["rule_id"] == "AZ-LIC-004"}
    # the entitlements are counted over every subscription's claims: with one missing, a
    # finding that vanished was not fixed, it could not be judged
    assert all(states.get(f["resource_name"]) in ("unknown", "unchanged", "updated") for f in before), states


@pytest.mark.parametrize("gone, named", [(7, "vc-gone-0, vc-gone-1, vc-gone-2, vc-gone-3, vc-gone-4 and 2 more"),
                                         (5, "vc-gone-0, vc-gone-1, vc-gone-2, vc-gone-3, vc-gone-4")])
def test_a_rule_names_the_first_failed_sources_and_counts_the_rest(workdir, gone, named):
    """Every rule's reason named every failed source: 100,000 stale sources made a gigabyte
    of reports. The sources list still names each."""
    def lose(snapshot: Snapshot) -> None:
        snapshot.sources += [Source(f"vc-gone-{i}", "vsphere", "vcenter", status="failed", error="refused")
                             for i in range(gone)]
    main(["scan", *ARGS, "--snapshot", str(sample_copy(workdir, "gone.json", lose)), "-q"])
    document = latest(workdir)
    (rule,) = [r for r in document["rules"] if r["id"] == "VS-SUP-001"]
    assert rule["reason"] == f"sources failed: {named}", rule["reason"]
    assert sum(s["id"].startswith("vc-gone-") for s in document["snapshot"]["sources"]) == gone


def test_many_failed_sources_print_twenty_lines_and_count_the_rest(workdir, capsys):
    """100,000 stale snapshots printed 100,000 error lines and a summary line naming each."""
    def lose(snapshot: Snapshot) -> None:
        snapshot.sources += [Source(f"vc-gone-{i}", "vsphere", "vcenter", status="failed",
                                    error=f"vc-gone-{i}: connection refused") for i in range(22)]
    assert main(["scan", *ARGS, "--snapshot", str(sample_copy(workdir, "gone.json", lose)), "-q"]) == 3
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("auditor: error: ")]
    assert errors[:20] == [f"auditor: error: vc-gone-{i}: connection refused" for i in range(20)]
    assert errors[20:] == ["auditor: error: 2 more sources failed; the report's sources list each"]
    assert any(line.startswith("auditor: collection incomplete: vc-gone-0, vc-gone-1, vc-gone-2, vc-gone-3, "
                               "vc-gone-4 and 17 more failed;") for line in err), err


def test_every_snapshot_too_old_is_said_so(workdir, capsys):
    """Not "no source could be collected": each was read, and each is older than --max-age."""
    def age(snapshot: Snapshot) -> None:
        snapshot.collected_at = "2026-01-01T00:00:00Z"
    assert main(["scan", *ARGS, "--snapshot", str(sample_copy(workdir, "old.json", age)), "--max-age", "1d"]) == 3
    err = capsys.readouterr().err
    assert "auditor: collection failed: every snapshot is older than --max-age (" in err, err
