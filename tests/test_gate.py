"""The CI gate (compare, waivers, exit codes), drift between snapshots, and scan history."""

from __future__ import annotations

import copy
import json
import re
import shlex

import pytest

from auditor.cli import build_parser, main
from auditor.drift import diff_snapshots, volatile
from auditor.errors import InputError
from auditor.findings import Finding
from auditor.gate import apply_waivers, compare, decide, load_waivers
from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
from auditor.snapshot import load_snapshot, save_snapshot
from tests.conftest import AS_OF
from tests.postgres import history_db_fixture  # noqa: F401 (the history_db fixture: SQLite and PostgreSQL)

ARGS = ["--as-of", AS_OF.isoformat(), "-q"]
# a drifted copy of the sample is scanned with the sample's zones and entitlements, as the sample is
SAMPLE_ZONES = ["--baseline", str(SAMPLE_BASELINE)]


def finding(fingerprint, severity="high", actual="x", **extra):
    values = dict(rule_id="R-1", fingerprint=fingerprint, severity=severity, category="other", title="t",
                  message="m", resource_id=f"/r/{fingerprint}", resource_name=fingerprint, resource_type="t",
                  cloud="azure", source="s", evidence=[{"path": "a", "actual": actual}])
    values.update(extra)
    return Finding(**values)


def test_compare_marks_states_and_appends_absent():
    previous = [finding("same"), finding("changed", actual="old"), finding("raised", severity="low"), finding("gone")]
    current = [finding("same", message="renamed resource"), finding("changed", actual="new"), finding("raised"),
               finding("fresh")]
    states = {f.fingerprint: f.state for f in compare(current, previous)}
    assert states == {"same": "unchanged", "changed": "updated", "raised": "updated", "fresh": "new",
                      "gone": "absent"}


def waivers_file(tmp_path, body):
    path = tmp_path / "waivers.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_waivers_active_expired_stale(tmp_path):
    path = waivers_file(tmp_path, """\
waivers:
  - {rule: "R-*", resource: "/R/A*", reason: legacy app, owner: team-a, expires: 2027-01-31, ticket: SEC-1}
  - {rule: R-1, resource: b, reason: pending decommission, owner: team-b, expires: 2026-10-01}
  - {rule: R-9, resource: "*", reason: nothing matches, owner: team-c, expires: 2027-01-31}
""")
    waivers = load_waivers(path)
    findings = [finding("a1"), finding("b"), finding("c")]
    for f in findings:
        f.state = "unchanged"
    statuses = apply_waivers(findings, waivers, AS_OF)
    assert [s["status"] for s in statuses] == ["active", "expired", "stale"]
    # the finding an expired waiver covers has a state of its own, in every output
    assert [f.state for f in findings] == ["unchanged", "waiver-expired", "unchanged"]
    assert findings[0].suppression["owner"] == "team-a" and findings[0].suppression["ticket"] == "SEC-1"
    assert findings[1].suppression is None and findings[2].suppression is None
    gate = decide(findings, "new", "info")
    assert [f.fingerprint for f in gate.failing] == ["b"]  # not new, but its waiver fell due


def test_every_finding_of_an_expired_waiver_fails_however_many(tmp_path):
    path = waivers_file(tmp_path, "waivers:\n  - {rule: R-1, resource: '*', reason: r, owner: o, expires: 2020-01-01}\n")
    findings = [finding(f"f{index}", state="unchanged") for index in range(2500)]
    statuses = apply_waivers(findings, load_waivers(path), AS_OF)
    assert statuses[0]["matched"] == 2500 and {f.state for f in findings} == {"waiver-expired"}
    assert len(decide(findings, "new", "info").failing) == 2500


def test_an_expired_waiver_never_undoes_an_active_one(tmp_path):
    path = waivers_file(tmp_path, """\
waivers:
  - {rule: R-1, resource: "*", reason: r, owner: o, expires: 2027-01-01}
  - {rule: R-1, resource: "*", reason: r, owner: o, expires: 2020-01-01}
""")
    findings = [finding("a")]
    apply_waivers(findings, load_waivers(path), AS_OF)
    assert findings[0].suppression is not None


@pytest.mark.parametrize("body, expected", [
    ("waivers:\n  - {rule: R-1, resource: x, reason: r, owner: o}\n", "waivers.yaml:2: waiver needs 'expires'"),
    ("waivers:\n  - {rule: R-1, resource: x, reason: r, owner: o, expires: soon}\n",
     "waivers.yaml:2: waiver 'expires' must be an ISO date"),
    ("waivers:\n  - {rule: R-1, resource: x, reason: r, owner: o, expires: 2027-01-01, note: n}\n",
     "waivers.yaml:2: unknown waiver key 'note'"),
    ("waiver: []\n", "waivers.yaml:1: a waivers file needs a top-level 'waivers:' list"),
])
def test_broken_waiver_files(tmp_path, body, expected):
    with pytest.raises(InputError) as caught:
        load_waivers(waivers_file(tmp_path, body))
    name, rest = expected.split(":", 1)
    assert caught.value.one_line().startswith(f"{tmp_path / name}:{rest}"), caught.value.one_line()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def first_scan(workdir):
    assert main(["scan", *ARGS]) == 0
    saved = workdir / "previous.json"
    saved.write_bytes((workdir / "reports" / "latest" / "findings.json").read_bytes())
    return saved


def drifted_sample(workdir):
    """The sample estate with one port group switched to accept forged transmits."""
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    group = next(r for r in snapshot.resources if r["name"] == "pg-pci-db" and r["source"].startswith("vc-dc2"))
    group["config"]["defaultPortConfig"]["securityPolicy"]["forgedTransmits"]["value"] = True
    path = workdir / "drifted.json"
    save_snapshot(snapshot, path)
    return path, group["id"]


def test_rescanning_the_same_estate_gives_no_new_findings(workdir):
    previous = first_scan(workdir)
    assert main(["scan", *ARGS, "--compare", str(previous)]) == 0
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    assert {f["state"] for f in document["findings"]} == {"unchanged"}
    assert document["compared_with"] == str(previous)


def test_one_changed_port_group_gives_exactly_one_new_finding_and_fails(workdir, capsys):
    previous = first_scan(workdir)
    drifted, group_id = drifted_sample(workdir)
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(drifted), "--compare", str(previous)]) == 1
    err = capsys.readouterr().err
    assert "gate failed: 1 new finding at or above" in err and "VS-NET-002" in err
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    new = [f for f in document["findings"] if f["state"] == "new"]
    assert [(f["rule_id"], f["resource_id"]) for f in new] == [("VS-NET-002", group_id)]
    sarif = json.loads((workdir / "reports" / "latest" / "results.sarif").read_text())
    states = [r["baselineState"] for run in sarif["runs"] for r in run["results"]]
    assert states.count("new") == 1 and "absent" not in states
    # below the minimum severity the same change passes
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(drifted), "--compare", str(previous),
                 "--min-severity", "high"]) == 0


def test_fixed_findings_are_absent_and_the_sarif_can_be_the_previous_scan(workdir):
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(drifted_sample(workdir)[0])]) == 0
    previous_sarif = workdir / "previous.sarif"
    previous_sarif.write_bytes((workdir / "reports" / "latest" / "results.sarif").read_bytes())
    assert main(["scan", *ARGS, "--compare", str(previous_sarif)]) == 0
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    absent = [f for f in document["findings"] if f["state"] == "absent"]
    assert [f["rule_id"] for f in absent] == ["VS-NET-002"]
    assert document["summary"]["total"] == len(document["findings"]) - 1


def test_waiver_suppresses_a_new_finding_then_fails_once_expired(workdir, capsys):
    previous = first_scan(workdir)
    drifted, group_id = drifted_sample(workdir)
    waivers = waivers_file(workdir, f"""\
waivers:
  - rule: VS-NET-002
    resource: "{group_id}"
    reason: NLB cluster in unicast mode needs forged transmits until migration
    owner: network-team
    expires: 2027-02-28
    ticket: CHG-4711
""")
    assert main(["scan", *ARGS, *SAMPLE_ZONES, "--snapshot", str(drifted), "--compare", str(previous),
                 "--waivers", str(waivers)]) == 0
    sarif = json.loads((workdir / "reports" / "latest" / "results.sarif").read_text())
    (waived,) = [r for run in sarif["runs"] for r in run["results"] if r.get("suppressions")]
    assert waived["suppressions"][0]["status"] == "accepted" and waived["ruleId"] == "VS-NET-002"
    assert "NLB cluster" in waived["suppressions"][0]["justification"]
    html = (workdir / "reports" / "latest" / "report.html").read_text()
    assert "network-team" in html and "CHG-4711" in html
    capsys.readouterr()
    # the same waiver, past its date: no suppression, the gate fails, the waiver is reported
    assert main(["scan", "--as-of", "2027-03-01", "-q", *SAMPLE_ZONES, "--snapshot", str(drifted), "--compare", str(previous),
                 "--waivers", str(waivers)]) == 1
    err = capsys.readouterr().err
    assert f"{waivers}:2 (VS-NET-002 on {group_id}, owner network-team) expired on 2027-02-28" in err
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    assert [w["status"] for w in document["waivers"]] == ["expired"]


def test_stale_waiver_is_reported(workdir, capsys):
    waivers = waivers_file(workdir, "waivers:\n  - {rule: AZ-NET-001, resource: '*/nsg-gone', reason: r, "
                                    "owner: o, expires: 2027-01-01}\n")
    assert main(["scan", *ARGS, "--waivers", str(waivers)]) == 0
    assert "matches no finding: remove it" in capsys.readouterr().err


def test_gate_input_errors_exit_2(workdir, capsys):
    assert main(["scan", *ARGS, "--fail-on", "new"]) == 2
    assert "--fail-on new needs --compare" in capsys.readouterr().err
    (workdir / "not.json").write_text("{}")
    assert main(["scan", *ARGS, "--compare", str(workdir / "not.json")]) == 2
    assert "must be an auditor findings.json or SARIF" in capsys.readouterr().err
    assert not (workdir / "reports").exists()


def test_history_records_scans_first_seen_and_trend(workdir, capsys, history_db):
    assert main(["scan", *ARGS, *history_db.flags]) == 0
    first = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    assert main(["scan", *ARGS, *history_db.flags, *SAMPLE_ZONES, "--snapshot", str(drifted_sample(workdir)[0])]) == 0
    totals = [row[0] for row in history_db.rows("SELECT total FROM scans ORDER BY id")]
    assert len(totals) == 2 and totals[1] == totals[0] + 1
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    assert len(document["history"]) == 2 and all(f["first_seen"] for f in document["findings"])
    known = {f["fingerprint"] for f in first["findings"]}
    assert {f["first_seen"] for f in document["findings"] if f["fingerprint"] in known} == {first["scanned_at"]}
    assert [f["first_seen"] for f in document["findings"] if f["fingerprint"] not in known] == [document["scanned_at"]]
    assert main(["history", *history_db.flags]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["scan", "scanned"] and len(out.splitlines()) == 3
    html = (workdir / "reports" / "latest" / "report.html").read_text()
    assert 'id="trend"' in html


def test_a_file_that_is_no_history_database_is_refused(workdir, capsys):
    (workdir / "broken.db").write_text("not a database")
    assert main(["scan", *ARGS, "--history", str(workdir / "broken.db")]) == 2
    assert "broken.db: not a usable history database" in capsys.readouterr().err


def test_diff_reports_exactly_the_changed_path(workdir, capsys):
    drifted, group_id = drifted_sample(workdir)
    old = load_snapshot(SAMPLE_SNAPSHOT)
    drift = diff_snapshots(old, load_snapshot(drifted))
    assert not drift.added and not drift.removed
    ((resource),) = drift.changed
    assert resource.id == group_id
    assert [(c.path, c.old, c.new) for c in resource.changes] == [
        ("config.defaultPortConfig.securityPolicy.forgedTransmits.value", False, True)]
    assert main(["diff", str(SAMPLE_SNAPSHOT), str(drifted)]) == 1
    out = capsys.readouterr().out
    assert "0 added, 0 removed, 1 changed" in out and "forgedTransmits.value: false -> true" in out
    assert main(["diff", str(SAMPLE_SNAPSHOT), str(SAMPLE_SNAPSHOT)]) == 0
    assert main(["diff", str(SAMPLE_SNAPSHOT), str(drifted), "--format", "json", "--output", "d.json"]) == 1
    assert json.loads((workdir / "d.json").read_text())["changed"][0]["changes"][0]["new"] is True
    assert main(["diff", str(SAMPLE_SNAPSHOT), str(drifted), "--format", "html", "--output", "d.html"]) == 1
    assert "forgedTransmits" in (workdir / "d.html").read_text()


def test_diff_ignores_volatile_fields_reordering_and_escapes_names(workdir):
    old = load_snapshot(SAMPLE_SNAPSHOT)
    new = copy.deepcopy(old)
    nsg = next(r for r in new.resources if r["name"] == "nsg-web")
    nsg["etag"] = 'W/"changed"'
    nsg["properties"]["securityRules"].reverse()
    for rule in nsg["properties"]["securityRules"]:
        rule["etag"] = 'W/"changed"'
    vm = next(r for r in new.resources if r["type"] == "VirtualMachine")
    vm["name"] = "<script>alert(1)</script>"
    drift = diff_snapshots(old, new)
    assert [(r.type, [c.path for c in r.changes]) for r in drift.changed] == [("VirtualMachine", ["name"])]
    from auditor.formats.drift import render_html, render_text
    assert "<script>alert" not in render_html(drift).decode()
    assert volatile("summary.quickStats.overallCpuUsage") and not volatile("config.lockdownMode")
    assert volatile("properties.timestamp") and not volatile("properties.complianceState")
    assert "\x1b" not in render_text(drift)


def test_examples_parse_and_the_example_waivers_apply_to_the_sample(workdir, capsys):
    import yaml

    from tests.conftest import ROOT
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        text = (ROOT / "examples" / name).read_text()
        assert isinstance(yaml.safe_load(text), dict)
        # every auditor command in the example is one this auditor accepts
        commands = re.findall(r"^\s*(auditor (?:[^\n]*\\\n)*[^\n]*)", text, re.M)
        assert commands, name
        for command in commands:
            words = []
            for word in shlex.split(command.replace("\\\n", " ")):
                if word in ("||", "&&", "|", ";"):
                    break  # the shell's, not auditor's
                if not word.startswith("$"):  # shell variables carry options tested elsewhere
                    words.append(word)
            build_parser().parse_args(words[1:])
    assert main(["scan", *ARGS, "--waivers", str(ROOT / "examples" / "waivers.yaml")]) == 0
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    assert [w["status"] for w in document["waivers"]] == ["active", "active"]
    assert document["summary"]["suppressed"] >= 2
