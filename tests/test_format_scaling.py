"""Every format's write time is proportional to its work (issue #17: the SARIF writer took
111 s for 260 copies of the sample where 130 took 7.8 s), and an estate past GitHub's limits
still gets one SARIF within them, in one pass.

Times are CPU times of this process (time.process_time), the best of several repeats,
and compared as ratios between an input and one twice as large, so the speed of the
machine cancels out; a ratio is measured again, longer, before it fails the test.
"""

from __future__ import annotations

import copy
import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from auditor.findings import SEVERITY_RANK, ScanReport
from auditor.formats import formats
from auditor.formats import sarif as sarif_module
from auditor.formats.sarif import MAX_GZIPPED_BYTES, MAX_RESULTS_PER_RUN, SarifReport, category, gzipped_size

# twice the input may cost twice the time; 25% more is what a shared machine adds
NOISE = 1.25
MAX_RATIO = 2.0 * NOISE


def repeated_estate(sample: ScanReport, copies: int, per_copy: int) -> ScanReport:
    """The sample scan as `copies` estates side by side, as issue #17's 260 copies: each
    copy has a vCenter and an Azure tenant of its own (two SARIF categories) and `per_copy`
    findings taken in turn from the sample's, each with a resource id and a fingerprint of
    its own."""
    report = copy.copy(sample)
    vcenter = next(s for s in sample.sources if s["cloud"] == "vsphere")
    subscription = next(s for s in sample.sources if s["cloud"] == "azure")
    report.sources, report.findings = [], []
    for number in range(copies):
        tag = f"{number:04d}"
        vcenter_id, subscription_id = f"vc-{tag}.corp.example", f"{subscription['id'][:-4]}{tag}"
        report.sources += [dict(vcenter, id=vcenter_id),
                           dict(subscription, id=subscription_id,
                                details=dict(subscription["details"], tenant_id=f"tenant-{tag}"))]
        for index in range(per_copy):
            finding = copy.copy(sample.findings[index % len(sample.findings)])
            finding.source = vcenter_id if finding.cloud == "vsphere" else subscription_id
            finding.resource_id = f"{finding.resource_id}/{tag}/{index}"
            finding.fingerprint = f"{number:08x}{index:024x}"
            report.findings.append(finding)
    report.resource_count = sample.resource_count * copies
    return report


# (copies, findings per copy) of each input, and the pairs compared: the second of each is
# twice the first in findings, in sources (with the same findings), or in both (the whole
# estate). Findings double twice: a cost that grows faster than the work shows more the
# larger the input, and 4x the base is where a quadratic writer stands out.
SHAPES = {"base": (4, 400), "findings": (4, 800), "findings again": (4, 1_600), "sources": (8, 200),
          "estate": (8, 400)}
PAIRS = {"findings": ("base", "findings"), "findings again": ("findings", "findings again"),
         "sources": ("base", "sources"), "estate": ("base", "estate")}


@pytest.fixture(scope="module")
def estates(sample_report) -> dict[str, ScanReport]:
    return {name: repeated_estate(sample_report, *shape) for name, shape in SHAPES.items()}


def best_time(render: Callable[[], Any], repeats: int) -> float:
    """The least CPU time of `repeats` calls: what the work costs without the interruptions."""
    fastest = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        render()
        fastest = min(fastest, time.process_time() - started)
    return fastest


def test_the_inputs_grow_as_their_names_say(estates):
    for small, large in PAIRS.values():
        sources = len(estates[large].sources) / len(estates[small].sources)
        findings = len(estates[large].findings) / len(estates[small].findings)
        assert (sources, findings) in ((1, 2), (2, 1), (2, 2)), (small, large)


@pytest.mark.parametrize("fmt_name", list(formats()))
def test_twice_the_input_at_most_doubles_the_write_time(estates, fmt_name):
    fmt = formats()[fmt_name]
    fmt.render(estates["base"])  # templates and imports load on first use: not part of the cost

    def ratios(repeats: int) -> dict[str, float]:
        times = {name: best_time(lambda report=report: fmt.render(report), repeats)
                 for name, report in estates.items()}
        return {pair: times[large] / times[small] for pair, (small, large) in PAIRS.items()}

    measured = ratios(repeats=3)
    if max(measured.values()) > MAX_RATIO:  # a busy moment, or the format: longer measurements tell
        measured = ratios(repeats=9)
    slow = {pair: round(ratio, 2) for pair, ratio in measured.items() if ratio > MAX_RATIO}
    assert not slow, f"{fmt_name}: twice the input took this many times as long: {slow}"


# --- an estate past GitHub's limits: issue #17's estate, scaled down ---------------------

def results_built(monkeypatch) -> list[int]:
    """A counter of the SARIF results the writer builds (one call per result)."""
    calls = [0]
    build = sarif_module.sarif_result

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls[0] += 1
        return build(*args, **kwargs)
    monkeypatch.setattr(sarif_module, "sarif_result", counting)
    return calls


@pytest.fixture(scope="module")
def past_the_run_limit(sample_report) -> ScanReport:
    """60 categories (GitHub takes 20 runs) and 3,000 findings."""
    return repeated_estate(sample_report, copies=30, per_copy=100)


def within_github_limits(payload: bytes) -> dict[str, Any]:
    assert len(gzip.compress(payload, compresslevel=1)) <= MAX_GZIPPED_BYTES
    document = json.loads(payload)
    runs = document["runs"]
    assert len(runs) <= 20
    ids = [run["automationDetails"]["id"] for run in runs]
    assert len(set(ids)) == len(ids), "one run per category"
    assert all(len(run["results"]) <= MAX_RESULTS_PER_RUN for run in runs)
    return document


def test_an_estate_of_more_categories_than_runs_fits_in_one_pass(past_the_run_limit, monkeypatch):
    report = past_the_run_limit
    built = results_built(monkeypatch)
    document = within_github_limits(SarifReport().render(report))
    assert built[0] == len(report.findings), "each result built once"
    runs = document["runs"]
    assert 15 <= len(runs) <= 19  # 60 categories hashed into 19 runs: a run may get none
    assert all(run["automationDetails"]["id"].startswith("auditor/merged-") for run in runs)
    # every category is in exactly one run, which holds its sources and all its findings
    merged = [name for run in runs for name in run["properties"]["merged"]["categories"]]
    assert sorted(merged) == sorted({category(source) for source in report.sources})
    run_of = {name: run for run in runs for name in run["properties"]["merged"]["categories"]}
    for source in report.sources:
        assert source["id"] in {s["id"] for s in run_of[category(source)]["properties"]["sources"]}
    fingerprints = [r["partialFingerprints"]["primaryLocationLineHash"] for run in runs for r in run["results"]]
    assert sorted(fingerprints) == sorted(f.fingerprint for f in report.findings)
    for run in runs:
        sources = {s["id"] for s in run["properties"]["sources"]}
        assert {r["properties"]["source"] for r in run["results"]} <= sources
        ranks = [SEVERITY_RANK[r["properties"]["severity"]] for r in run["results"]]
        assert ranks == sorted(ranks), "most severe first"


def test_a_category_stays_in_its_run_whatever_else_the_estate_holds(sample_report, past_the_run_limit):
    def runs_of(report: ScanReport) -> dict[str, str]:
        document = json.loads(SarifReport().render(report))
        return {name: run["automationDetails"]["id"] for run in document["runs"]
                for name in run["properties"]["merged"]["categories"]}
    smaller = runs_of(repeated_estate(sample_report, copies=11, per_copy=5))  # 22 categories: still merged
    larger = runs_of(past_the_run_limit)
    assert smaller and all(larger[name] == run for name, run in smaller.items())


def test_twenty_categories_keep_a_run_each(sample_report):
    document = within_github_limits(SarifReport().render(repeated_estate(sample_report, copies=10, per_copy=5)))
    assert len(document["runs"]) == 20
    assert all("merged" not in run["properties"] for run in document["runs"])


def test_past_the_results_limit_too_it_is_still_one_pass(past_the_run_limit, monkeypatch):
    report = past_the_run_limit
    built = results_built(monkeypatch)
    document = json.loads(SarifReport(max_results=120).render(report))
    kept = [len(run["results"]) for run in document["runs"]]
    assert max(kept) == 120 and sum(kept) < len(report.findings)
    assert built[0] == sum(kept), "each kept result built once, none built for nothing"
    for run in document["runs"]:
        truncated = run["properties"].get("truncated")
        assert truncated is None or truncated["kept"] == len(run["results"]) == 120


def test_past_the_size_limit_it_keeps_at_least_what_the_earlier_writer_did(past_the_run_limit, monkeypatch):
    report = past_the_run_limit
    empty = copy.copy(report)
    empty.findings = []
    floor, full = gzipped_size(SarifReport().render(empty)), gzipped_size(SarifReport().render(report))
    cap = (floor + full) // 2
    built = results_built(monkeypatch)
    payload = SarifReport(max_gzipped_bytes=cap).render(report)
    assert gzipped_size(payload) <= cap
    runs = json.loads(payload)["runs"]
    kept = max(len(run["results"]) for run in runs)
    total = sum(len(run["results"]) for run in runs)
    assert 0 < total < len(report.findings)
    # every finding measured once, those written before the log was known not to fit once
    # more for the gauge (a log that fits is not gauged), then the kept ones built again:
    # once for what the estimate puts safely under the limit, once more for what the
    # corrected estimate adds
    assert len(report.findings) + total < built[0] <= 2 * len(report.findings) + 2 * total
    assert all(len(run["results"]) == kept or "truncated" not in run["properties"] for run in runs)
    # at least what the earlier writer kept: it tried max_results, then 3/4 of it each time,
    # and kept the first that fitted; the first of those above what is kept here does not fit
    steps = [MAX_RESULTS_PER_RUN]
    while steps[-1] > kept:
        steps.append(steps[-1] * 3 // 4)
    larger = next(step for step in reversed(steps) if step > kept)
    assert gzipped_size(SarifReport(max_results=larger, max_gzipped_bytes=10 ** 12).render(report)) > cap
    # and close to the most that fits: 10% more results would not
    more = SarifReport(max_results=kept + max(1, kept // 10), max_gzipped_bytes=10 ** 12).render(report)
    assert gzipped_size(more) > cap


@pytest.mark.parametrize("share", [0.3, 0.5, 0.97, 1.0])
def test_a_gauge_started_late_measures_what_one_started_at_the_first_result_would(past_the_run_limit, share):
    """The gauge starts only once the log is known not to fit, fed the results written so
    far: its record must be the one a gauge fed from the first result keeps, or the
    estimates (and so what is kept) would depend on when the log went over."""
    report = past_the_run_limit
    empty = copy.copy(report)
    empty.findings = []
    floor, full = gzipped_size(SarifReport().render(empty)), gzipped_size(SarifReport().render(report))
    # at 1.0 a byte short: only the last bytes, after every result, put the log over
    fmt = SarifReport(max_gzipped_bytes=int(floor + (full - floor) * share) - 1)
    writer = sarif_module._LogWriter(fmt, report, strict=True)
    assert not writer.measure().fits
    reference = sarif_module._Gauge()
    offsets = []
    for run in writer.runs:
        run_offsets = [reference.raw]
        for position, finding in enumerate(run.findings[:fmt.max_results]):
            reference.add(writer._piece(finding, position))
            run_offsets.append(reference.raw)
        offsets.append(run_offsets)
    reference.close()
    assert [list(o) for o in writer.offsets] == offsets
    assert (list(writer.gauge.raw_at), list(writer.gauge.packed_at)) == (list(reference.raw_at), list(reference.packed_at))
    assert writer.tails == [len(run.tail(min(fmt.max_results, len(run.findings)), writer.reason, True))
                            for run in writer.runs]


def test_a_log_that_fits_is_not_gauged(past_the_run_limit):
    writer = sarif_module._LogWriter(SarifReport(), past_the_run_limit, strict=True)
    assert writer.measure().fits
    assert writer.gauge.raw == 0 and writer.offsets == []  # its compressor never ran


def test_a_merged_run_with_a_failed_source_is_held_back_and_said_so(past_the_run_limit):
    report = copy.copy(past_the_run_limit)
    failed = report.sources[4]["id"]
    report.sources = [dict(s, status="failed", error="connection refused") if s["id"] == failed else s
                      for s in report.sources]
    runs = within_github_limits(SarifReport().render(report))["runs"]
    collection = runs[-1]
    assert collection["automationDetails"]["id"] == "auditor/collection/"
    assert [s["id"] for s in collection["properties"]["sources"]] == [failed]
    # the categories that share the failed source's run: none has a run, each is named
    held = collection["properties"]["withheld"]
    assert held and not set(held) & {name for run in runs[:-1] for name in run["properties"]["merged"]["categories"]}
    notes = [n["message"]["text"] for n in collection["invocations"][0]["toolExecutionNotifications"]]
    assert all(any(note.startswith(name) and "held back" in note for note in notes) for name in held)
    shares = {run["automationDetails"]["id"] for run in within_github_limits(SarifReport().render(
        past_the_run_limit))["runs"]}
    assert len(runs) == len(shares)  # one merged run fewer, and the collection run


def test_the_log_streams_what_render_returns(past_the_run_limit, tmp_path):
    path = tmp_path / "results.sarif"
    with path.open("wb") as stream:
        SarifReport(max_results=50).write(past_the_run_limit, stream)
    assert path.read_bytes() == SarifReport(max_results=50).render(past_the_run_limit)
