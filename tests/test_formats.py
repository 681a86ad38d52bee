"""SARIF, JUnit, JSON and HTML output checked as documents (browser tests: test_html_browser)."""

from __future__ import annotations

import copy
import gzip
import json
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.errors import InputError
from auditor.findings import Finding
from auditor.formats.findings_json import FindingsJson
from auditor.formats.html import HtmlReport, script_json
from auditor.formats.junit import JUnitReport
from auditor.formats.sarif import SarifReport, gzipped_size
from tests.conftest import FIXTURES, ROOT

SCHEMA = FIXTURES / "sarif" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def sarif_validator():
    from jsonschema import Draft4Validator
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def test_sarif_validates_against_the_oasis_schema(sample_report, sarif_validator):
    document = json.loads(SarifReport().render(sample_report))
    errors = sorted(sarif_validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_sarif_has_one_run_per_category_and_github_required_fields(sample_report):
    document = json.loads(SarifReport().render(sample_report))
    categories = [run["automationDetails"]["id"] for run in document["runs"]]
    assert categories == ["vsphere/vc-dc1.corp.example/", "vsphere/vc-dc2.corp.example/",
                          "vsphere/vc-lab.corp.example/", "vsphere/vc.4f2a9c1e.westeurope.avs.azure.com/", "azure/7c1d3a52-5b0e-4c43-9f0d-2b7e8a4f1c90/"]
    total = 0
    for run in document["runs"]:
        rules = run["tool"]["driver"]["rules"]
        assert len(rules) == len(sample_report.rules)
        for rule in rules:
            assert rule["shortDescription"]["text"] and rule["help"]["markdown"]
            severity = rule["properties"].get("security-severity")
            assert severity is None or 0.1 <= float(severity) <= 10.0
        for result in run["results"]:
            total += 1
            location = result["locations"][0]
            assert location["physicalLocation"]["artifactLocation"]["uri"].startswith("rules/")
            assert location["physicalLocation"]["region"]["startLine"] >= 1
            assert location["logicalLocations"][0]["kind"] == "resource"
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            assert len(result["partialFingerprints"]["primaryLocationLineHash"]) == 32
    assert total == len(sample_report.findings)


def test_sarif_result_points_at_the_rule_line(sample_report):
    document = json.loads(SarifReport().render(sample_report))
    result = next(r for run in document["runs"] for r in run["results"] if r["ruleId"] == "AZ-NET-001")
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "rules/network-isolation.yaml"
    text = (ROOT / physical["artifactLocation"]["uri"]).read_text().splitlines()
    assert text[physical["region"]["startLine"] - 1].strip() == "- id: AZ-NET-001"


def test_sarif_limits_keep_the_most_severe(sample_report):
    document = json.loads(SarifReport(max_results=5).render(sample_report))
    for run in document["runs"]:
        assert len(run["results"]) <= 5
    dc1 = document["runs"][0]
    assert dc1["properties"]["truncated"]["kept"] == 5
    kept = {r["properties"]["severity"] for r in dc1["results"]}
    assert kept <= {"critical", "high"}
    assert sum(dc1["properties"]["truncated"]["omittedBySeverity"].values()) == dc1["properties"]["truncated"]["omitted"]


def test_sarif_size_limit_shrinks_until_it_fits(sample_report):
    empty = copy.copy(sample_report)
    empty.findings = []
    floor = gzipped_size(SarifReport().render(empty))
    full = gzipped_size(SarifReport().render(sample_report))
    cap = (floor + full) // 2
    payload = SarifReport(max_gzipped_bytes=cap).render(sample_report)
    assert gzipped_size(payload) <= cap and len(gzip.compress(payload, compresslevel=9)) <= cap
    runs = json.loads(payload)["runs"]
    assert any("truncated" in run["properties"] for run in runs)
    assert 0 < sum(len(run["results"]) for run in runs) < len(sample_report.findings)
    with pytest.raises(InputError, match="even without results"):
        SarifReport(max_gzipped_bytes=floor // 2).render(sample_report)


def test_sarif_leaves_absent_results_out_of_the_upload(sample_report):
    report = copy.copy(sample_report)
    report.findings = [copy.copy(f) for f in sample_report.findings[:3]]
    report.findings[0].state = "absent"
    report.findings[1].state = "new"
    results = [r for run in json.loads(SarifReport().render(report))["runs"] for r in run["results"]]
    assert len(results) == 2 and "new" in [r.get("baselineState") for r in results]


def test_a_source_with_no_findings_still_gets_a_run(sample_report):
    report = copy.copy(sample_report)
    report.findings = []
    runs = json.loads(SarifReport().render(report))["runs"]
    assert len(runs) == 5 and all(run["results"] == [] for run in runs)


def test_junit_has_a_testcase_per_rule_and_a_failure_per_finding(sample_report):
    root = ET.fromstring(JUnitReport().render(sample_report))
    cases = root.findall(".//testcase")
    assert len(cases) == len(sample_report.rules)
    failures = root.findall(".//failure")
    # what the provider acts on (the AVS host) fails no test, as it fails no gate by default
    customers = [f for f in sample_report.findings if f.responsibility == "customer"]
    assert len(failures) == len(customers) < len(sample_report.findings)
    assert int(root.get("failures")) == len({f.rule_id for f in customers})
    assert "the provider's (not counted)" in ET.tostring(root, encoding="unicode")


def test_findings_json_summary_matches_findings(sample_report):
    document = json.loads(FindingsJson().render(sample_report))
    assert document["schema"] == "auditor.findings" and document["schema_version"] == 1
    assert sum(document["summary"]["by_severity"].values()) == len(document["findings"])
    assert document["snapshot"]["resource_count"] == 344


def test_script_json_cannot_close_the_script_element():
    text = script_json({"name": "</script><script>alert(1)</script><!--", "x": "\u2028"})
    assert "<" not in text and ">" not in text and "\u2028" not in text
    assert json.loads(text)["name"] == "</script><script>alert(1)</script><!--"


def test_html_is_self_contained_and_escapes_names(sample_report):
    page = HtmlReport().render(sample_report).decode("utf-8")
    assert "<img src=x onerror=alert(1)>" not in page
    assert "src=\"http" not in page and "href=\"http" not in page and "@import" not in page
    assert page.count("<script") == 2 and "Content-Security-Policy" in page
    report = copy.copy(sample_report)
    report.sources = [dict(s, error="<b>boom</b>", status="failed") if i == 0 else s
                      for i, s in enumerate(sample_report.sources)]
    page = HtmlReport().render(report).decode("utf-8")
    assert "&lt;b&gt;boom&lt;/b&gt;" in page and "<b>boom</b>" not in page


def _html_payload(page: bytes) -> dict:
    text = page.decode("utf-8")
    start = text.index('<script type="application/json" id="report-data">')
    return json.loads(text[text.index(">", start) + 1:text.index("</script>", start)])


def _tricky_report(sample_report):
    """The sample with findings that defeat each shortcut of the compact form."""
    report = copy.copy(sample_report)
    findings = [copy.copy(f) for f in sample_report.findings]
    findings[0].title = "a title its rule does not have"
    findings[1].category = "elsewhere"
    findings[2].rule_id = "NOT-IN-THE-REPORT"
    findings[3].rule_id = "constructor"  # an Object.prototype name, not a rule
    findings[4].evidence = [{"path": "a", "op": "eq", "actual": 1, "expected": True}]
    findings[5].evidence = [{"path": "a", "op": "eq", "actual": True, "expected": 1}]
    findings[6].evidence = [{"path": "a", "op": "eq", "actual": "1", "expected": "true"}]
    findings[7].suppression = {"owner": "ops", "expires": "2027-01-01", "reason": "r", "file": "w.yaml", "line": 3}
    findings[7].state, findings[7].first_seen = "absent", "2026-01-01T00:00:00Z"
    findings[8].item_key = ""
    findings[9].resource_name = "</script><img src=x onerror=alert(1)>\u2028"
    findings[10].responsibility = "provider"
    report.findings = findings
    return report


def _expected_rows(report):
    from auditor.formats.html import FIELDS
    from auditor.jsonio import to_json
    return json.loads(to_json([[getattr(f, name) for name in FIELDS] for f in report.findings]))


def test_html_payload_decodes_to_every_field_of_every_finding(sample_report):
    from auditor.formats.html import FIELDS, decode_findings
    empty = copy.copy(sample_report)
    empty.findings = []
    for report in (sample_report, _tricky_report(sample_report), empty):
        payload = _html_payload(HtmlReport().render(report))
        assert payload["fields"] == list(FIELDS)
        assert decode_findings(payload["findings"], payload["rules"]) == _expected_rows(report)
    # titles and categories come from the rules: only the findings that differ carry theirs
    columns = _html_payload(HtmlReport().render(_tricky_report(sample_report)))["findings"]["columns"]
    assert [row for row, _ in columns["title"]["except"]] == [0, 2, 3]
    assert [row for row, _ in columns["category"]["except"]] == [1, 2, 3]


@pytest.mark.peer
def test_the_pages_decoder_gives_the_same_rows_in_chromium(sample_report):
    import re

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, need_peer
    need_peer(CHROMIUM.exists(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    report = _tricky_report(sample_report)
    page_bytes = HtmlReport().render(report)
    source = re.search(r"function decodeReport\(data\) \{.*?\n  \}\n", page_bytes.decode("utf-8"), re.S).group()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            rows = browser.new_page().evaluate(
                "(data) => { " + source + " return decodeReport(data).findings; }", _html_payload(page_bytes))
        finally:
            browser.close()
    assert rows == _expected_rows(report)


def _repeated_report(sample_report, count):
    """`count` findings: the sample's, repeated, each with its own fingerprint (as bench/html.py)."""
    report = copy.copy(sample_report)
    base = sample_report.findings
    report.findings = []
    for index in range(count):
        finding = copy.copy(base[index % len(base)])
        finding.fingerprint = f"{index:032x}"
        report.findings.append(finding)
    return report


def test_html_page_grows_linearly_and_compactly_with_findings(sample_report):
    sizes = {n: len(HtmlReport().render(_repeated_report(sample_report, n))) for n in (2_000, 4_000, 8_000)}
    first, second = (sizes[4_000] - sizes[2_000]) / 2_000, (sizes[8_000] - sizes[4_000]) / 4_000
    assert first < 300 and second < 300, sizes
    assert abs(second - first) < 0.25 * first, sizes  # linear: no per-finding cost creeping up
    title = next(rule.title for rule in sample_report.rules if rule.id == sample_report.findings[0].rule_id)
    counts = {n: HtmlReport().render(_repeated_report(sample_report, n)).decode().count(title) for n in (200, 2_000)}
    assert 1 <= counts[200] == counts[2_000], counts  # rule text is not repeated per finding


def test_finding_round_trips_through_dict():
    finding = Finding(rule_id="A", fingerprint="f", severity="high", category="other", title="t",
                      message="m", resource_id="r", resource_name="n", resource_type="x", cloud="azure",
                      source="s", item_key="k", evidence=[{"path": "a"}], state="new")
    assert Finding.from_dict(finding.as_dict() | {"future_field": 1}) == finding


def test_format_names_match_the_registered_formats():
    from auditor.formats import formats
    from auditor.options import REPORT_FORMATS
    assert tuple(formats()) == REPORT_FORMATS
    assert len({fmt.filename for fmt in formats().values()}) == len(REPORT_FORMATS)


def test_trend_axis_ticks_are_round_and_cover_the_tallest_bar():
    from auditor.formats.html import _ticks
    assert _ticks(1) == [0, 1]
    assert _ticks(26) == [0, 10, 20, 30]
    assert _ticks(4999) == [0, 1000, 2000, 3000, 4000, 5000]
    for largest in (1, 7, 11, 99, 123, 100_000):
        ticks = _ticks(largest)
        assert ticks[0] == 0 and ticks[-1] >= largest and len(ticks) <= 6


# --- SARIF written in pieces (issue #17) -----------------------------------------------------

def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def _with_hostile_evidence(sample_report):
    """The sample with evidence that orjson refuses and to_json turns into text: an integer
    past 64 bits, nesting past orjson's limit only when counted from the log's top, and
    nesting within orjson's limit that to_json cuts only because another part needed it."""
    report = copy.copy(sample_report)
    report.findings = [copy.copy(f) for f in sample_report.findings]
    report.findings[3].evidence = [{"path": "a", "op": "eq", "actual": 2 ** 70}]
    # a result's evidence value sits 8 deep: this is 256 deep in the log, 248 alone
    report.findings[5].evidence = [{"path": "b", "op": "eq", "actual": _nested(248)}]
    report.findings[6].evidence = [{"path": "c", "op": "eq", "actual": _nested(220)}]
    return report


@pytest.mark.parametrize("variant", ["sample", "truncated", "compared", "hostile"])
def test_sarif_written_in_pieces_is_the_document_to_json_writes(sample_report, variant):
    from auditor.jsonio import to_json
    report = _with_hostile_evidence(sample_report) if variant == "hostile" else sample_report
    if variant == "compared":
        report = copy.copy(sample_report)
        report.findings = [copy.copy(f) for f in sample_report.findings]
        for index, finding in enumerate(report.findings):
            finding.state = ("new", "unchanged", "updated", "absent", "unknown")[index % 5]
        report.sources = [dict(s, status="failed", error="refused") if i in (1, 4) else s
                          for i, s in enumerate(sample_report.sources)]
    payload = SarifReport(max_results=7 if variant == "truncated" else 25_000).render(report)
    # what the writer that built the whole document and called to_json once wrote
    assert payload == to_json(json.loads(payload)) + b"\n"
    if variant == "hostile":
        assert b'"actual":"1180591620717411303424"' in payload
        results = {r["partialFingerprints"]["primaryLocationLineHash"]: r
                   for run in json.loads(payload)["runs"] for r in run["results"]}
        for finding in report.findings[5:7]:  # both cut 200 deep, where to_json cuts
            evidence = json.dumps(results[finding.fingerprint]["properties"]["evidence"])
            assert evidence.count("[") == 200 - 8 + 1 and '"\\u2026"' in evidence


def test_sarif_with_more_categories_than_runs_allowed_merges_them(sample_report):
    document = json.loads(SarifReport(max_runs=3).render(sample_report))
    runs = document["runs"]
    assert 1 <= len(runs) <= 2 and all(run["automationDetails"]["id"].endswith("-of-2/") for run in runs)
    names = [name for run in runs for name in run["properties"]["merged"]["categories"]]
    assert sorted(names) == sorted({"vsphere/vc-dc1.corp.example/", "vsphere/vc-dc2.corp.example/",
                                    "vsphere/vc-lab.corp.example/", "vsphere/vc.4f2a9c1e.westeurope.avs.azure.com/",
                                    "azure/7c1d3a52-5b0e-4c43-9f0d-2b7e8a4f1c90/"})
    results = [r for run in runs for r in run["results"]]
    assert len(results) == len(sample_report.findings)
    for run in runs:  # a run says which rules did not judge any cloud it holds
        clouds = {name.split("/", 1)[0] for name in run["properties"]["merged"]["categories"]}
        assert {r["properties"]["cloud"] for r in run["results"]} <= clouds
    with pytest.raises(ValueError):
        SarifReport(max_runs=1)


def test_sarif_writer_holds_the_compressed_log_not_the_text(sample_report, tmp_path):
    import tracemalloc
    big = copy.copy(sample_report)
    big.findings = []
    for copy_number in range(12):  # ~9,000 findings: a log of about 12 MB
        for finding in sample_report.findings:
            twin = copy.copy(finding)
            twin.fingerprint = f"{copy_number:04x}{finding.fingerprint[4:]}"
            big.findings.append(twin)
    path = tmp_path / "results.sarif"
    tracemalloc.start()
    try:
        with path.open("wb") as stream:
            SarifReport().write(big, stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > 10_000_000
    assert peak < size / 3, f"peak {peak:,} bytes for a {size:,}-byte log"
    assert json.loads(path.read_bytes())["runs"][0]["results"]


def test_only_the_unsafe_characters_are_escaped():
    """jsonio.escape_unsafe looks for lead bytes C2 and E2 before the pattern: text with other
    non-ASCII characters, or with C2/E2 characters that are safe, comes out as it went in."""
    from auditor.jsonio import escape_unsafe, to_json

    for safe in ("plain", "café Zürich", "naïve – dash “quotes” €", "no\u00a0break°"):
        assert to_json(safe) == b'"' + safe.encode() + b'"'
    assert escape_unsafe("a\u0085b\u2028c\u202ed\u2066".encode()) == b"a\\u0085b\\u2028c\\u202ed\\u2066"
    assert to_json({"name": "vm\u2029"}) == b'{"name":"vm\\u2029"}'


# --- formats written side by side -----------------------------------------------------------

ALL_FORMATS = ["json", "sarif", "html", "junit", "csv"]


def test_formats_written_by_several_processes_are_the_bytes_one_process_writes(sample_report, tmp_path):
    from auditor.output import write_run_folder

    alone = write_run_folder(sample_report, tmp_path / "alone", ALL_FORMATS, processes=1)
    shared = write_run_folder(sample_report, tmp_path / "shared", ALL_FORMATS, processes=3)
    written = sorted(path.name for path in alone.iterdir())
    assert written == sorted(path.name for path in shared.iterdir()) and len(written) == 5
    for name in written:
        assert (shared / name).read_bytes() == (alone / name).read_bytes(), name


def _failing_sarif(monkeypatch, failure):
    from auditor.formats.sarif import SarifReport

    def write(self, report, stream):
        stream.write(b"{partial")
        failure()
    monkeypatch.setattr(SarifReport, "write", write)


def _only_earlier_runs(out):
    return sorted(path.name for path in out.iterdir())


@pytest.mark.parametrize("failure, expected", [
    (lambda: (_ for _ in ()).throw(InputError("the log cannot fit", where="results.sarif")),
     (InputError, "results.sarif: the log cannot fit")),
    (lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")),
     (InputError, "cannot write results.sarif: No space left on device")),
    (lambda: 1 / 0, (ZeroDivisionError, "division by zero")),  # a bug: its traceback a note
])
def test_a_writer_process_that_fails_fails_the_run_with_its_error_and_writes_nothing(
        sample_report, tmp_path, monkeypatch, failure, expected):
    from auditor.output import write_run_folder

    out = tmp_path / "out"
    write_run_folder(sample_report, out, ["json"], processes=1)
    before = _only_earlier_runs(out)
    _failing_sarif(monkeypatch, failure)
    kind, words = expected
    with pytest.raises(kind, match=words) as caught:  # json is this process's, sarif the forked one's
        write_run_folder(sample_report, out, ["json", "sarif"], processes=2)
    assert _only_earlier_runs(out) == before  # no run folder, no staging folder left
    notes = getattr(caught.value, "__notes__", [])
    if kind is ZeroDivisionError:
        assert "in the process writing sarif" in notes[0] and "Traceback" in notes[0]
    else:
        assert not notes  # an input or system error is the user's, without a traceback


def test_a_writer_process_killed_fails_the_run_as_an_internal_error(sample_report, tmp_path, monkeypatch):
    import os
    import signal

    from auditor.output import FormatWriterLost, write_run_folder

    out = tmp_path / "out"
    _failing_sarif(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(FormatWriterLost, match="the process writing sarif ended without finishing") as caught:
        write_run_folder(sample_report, out, ["json", "sarif"], processes=2)
    assert caught.value.exit_code == 70
    assert _only_earlier_runs(out) == []


def test_this_processs_error_stops_the_forked_writers(sample_report, tmp_path, monkeypatch):
    import time

    from auditor.formats.findings_json import FindingsJson
    from auditor.formats.sarif import SarifReport
    from auditor.output import write_run_folder

    def stalled(self, report, stream):
        time.sleep(60)
    monkeypatch.setattr(SarifReport, "write", stalled)

    def broken(self, report, stream):
        raise InputError("json went wrong")
    monkeypatch.setattr(FindingsJson, "write", broken)
    started = time.monotonic()
    with pytest.raises(InputError, match="json went wrong"):
        write_run_folder(sample_report, tmp_path / "out", ["json", "sarif"], processes=2)
    assert time.monotonic() - started < 30  # the stalled writer was ended, not waited for
    assert _only_earlier_runs(tmp_path / "out") == []


def test_a_sigterm_while_the_formats_are_written_leaves_nothing(tmp_path, monkeypatch, capsys):
    import os
    import signal

    from auditor.cli import main
    from auditor.formats.findings_json import FindingsJson

    def terminated(self, report, stream):
        stream.write(b"{partial")
        os.kill(os.getpid(), signal.SIGTERM)  # as a Kubernetes stop sends, at the worst moment
        stream.write(b"more")
    monkeypatch.setattr(FindingsJson, "write", terminated)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        main(["scan", "--out", str(out), "--format", "json,sarif", "--workers", "1", "-q", "--no-history"])
    assert caught.value.code == 143
    assert "terminated; the history and `latest` are as they were" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # no run folder, no staging folder, no latest


def test_findings_that_tie_on_rule_resource_and_item_are_ordered_by_cloud_source_and_fingerprint(sample_report):
    """A vSphere VM and an Azure VM can share an id (the vSphere key keeps its capitals):
    their findings of one rule must not come out in whatever order shards finished."""
    from dataclasses import replace

    finding = sample_report.findings[0]
    azure = replace(finding, cloud="azure", source="sub-1", fingerprint="f2")
    vsphere = replace(finding, cloud="vsphere", source="vc-1", fingerprint="f1")
    other = replace(finding, cloud="vsphere", source="vc-0", fingerprint="f3")
    for arrived in ([vsphere, azure, other], [other, azure, vsphere], [azure, other, vsphere]):
        assert sorted(arrived, key=lambda f: f.sort_key()) == [azure, other, vsphere]
    # the near-miss: severity, rule and resource still come first
    later = replace(finding, resource_id=finding.resource_id + "z", cloud="azure")
    assert sorted([later, vsphere], key=lambda f: f.sort_key()) == [vsphere, later]


@pytest.mark.parametrize("at", ["claimed", "latest"])
def test_a_sigterm_after_the_run_folder_is_claimed(tmp_path, at):
    """Once the run folder is in place: while the history is written, a SIGTERM ends the scan
    as Ctrl-C does (no row, `latest` as it was, said so) and never waits on the history's
    lock; while `latest` moves (two system calls), it ends the scan once `latest` has."""
    import sqlite3
    import subprocess
    import sys

    patched = ("import auditor.output as output\n"
               "claim = output._claim\n"
               "def claimed(staging, out):\n"
               "    run = claim(staging, out)\n"
               "    os.kill(os.getpid(), signal.SIGTERM)\n"
               "    return run\n"
               "output._claim = claimed\n") if at == "claimed" else (
               "import auditor.output as output\n"
               "point = output.point_latest\n"
               "def pointing(out, run):\n"
               "    os.kill(os.getpid(), signal.SIGTERM)\n"
               "    return point(out, run)\n"
               "output.point_latest = pointing\n")
    driver = ("import os, signal, sys\n" + patched + "from auditor.cli import main\n"
              "sys.exit(main(['scan', '--out', sys.argv[1], '--format', 'json,sarif', '--workers', '2', '-q']))\n")
    out = tmp_path / "out"
    scan = subprocess.run([sys.executable, "-c", driver, str(out)], capture_output=True, text=True)
    runs = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1 and sorted(p.name for p in runs[0].iterdir()) == ["findings.json", "results.sarif"]
    recorded = sqlite3.connect(out / "history.db").execute("select count(*) from scans").fetchone()[0]
    if at == "claimed":
        assert scan.returncode == 143, scan.stderr
        assert "terminated; the history and `latest` are as they were" in scan.stderr
        assert not (out / "latest").exists() and recorded == 0
    else:
        assert scan.returncode == -15, scan.stderr  # ended by the SIGTERM, once `latest` moved
        assert (out / "latest").resolve() == runs[0].resolve() and recorded == 1


_FIELD_TEXT = st.text(alphabet=st.sampled_from(["\x00", "\x01", "\x02", "a", "b", "é", "\ud7ff", "😀"]), max_size=4)


@settings(max_examples=400, deadline=None)
@given(findings=st.lists(st.tuples(st.sampled_from(["critical", "high", "info", "bogus"]), _FIELD_TEXT,
                                   _FIELD_TEXT, st.one_of(st.none(), _FIELD_TEXT), _FIELD_TEXT, _FIELD_TEXT,
                                   _FIELD_TEXT), min_size=2, max_size=8))
def test_findings_sort_as_the_tuple_of_their_fields_whatever_the_characters(findings):
    """The sort key is one text (fast to compare); it must order findings exactly as the tuple
    (severity rank, rule, resource, item, cloud, source, fingerprint), NUL and \\x01 in ids too."""
    from auditor.findings import SEVERITY_RANK

    made = [Finding(rule_id=rule, fingerprint=print_, severity=severity, category="c", title="t", message="m",
                    resource_id=resource, resource_name="n", resource_type="t", cloud=cloud, source=source,
                    item_key=item)
            for severity, rule, resource, item, cloud, source, print_ in findings]

    def as_tuple(finding: Finding) -> tuple:
        return (SEVERITY_RANK.get(finding.severity, 9), finding.rule_id, finding.resource_id,
                finding.item_key or "", finding.cloud, finding.source, finding.fingerprint)
    for first in made:
        for second in made:
            assert (first.sort_key() < second.sort_key()) == (as_tuple(first) < as_tuple(second))
            assert (first.sort_key() == second.sort_key()) == (as_tuple(first) == as_tuple(second))
