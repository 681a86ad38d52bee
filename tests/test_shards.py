"""The sharded scan of JSON Lines snapshots: the same reports, byte for byte, as the scan
that reads the whole estate into one process, and the same refusals of bad input."""

from __future__ import annotations

import gzip
import re
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from auditor import shards
from auditor.cli import main
from auditor.errors import SnapshotError
from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
from auditor.sample.generate import build_sample_estate
from auditor.shards import AZURE_SHARD, BATCH_RESOURCES, Shard, pack, route
from auditor.snapshot import Snapshot, load_snapshot, save_snapshot

FORMATS = "json,sarif,html,junit,csv"
FILES = ("findings.json", "results.sarif", "report.html", "junit.xml", "findings.csv")
# what differs between two runs of the same scan: when it ran (also each finding's first
# sighting, which is this scan without a history), the run folder's name, and how old a
# stale snapshot was then
_VARYING = re.compile(rb"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ|20\d\d\d\d\d\dT\d\d\d\d\d\dZ|(?<=\"age_seconds\": )\d+"
                      rb"|(?<=snapshot is )\d+ d \d+ h")


def _steady(match: re.Match[bytes]) -> bytes:
    return b"0" if match.group().isdigit() else b"<time>"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def scan(snapshots: list[Path], out: Path, workers: int, *extra: str) -> tuple[int, dict[str, bytes]]:
    argv = ["scan", "--out", str(out), "--format", FORMATS, "--as-of", "2026-11-25", "--no-history", "-q",
            "--workers", str(workers), *extra]
    for snapshot in snapshots:
        argv += ["--snapshot", str(snapshot)]
    code = main(argv)
    return code, {name: _VARYING.sub(_steady, (out / "latest" / name).read_bytes()) for name in FILES
                  if (out / "latest" / name).exists()}


def assert_same_reports(snapshots: list[Path], tmp: Path, *extra: str) -> dict[str, bytes]:
    whole_code, whole = scan(snapshots, tmp / "whole", 1, *extra)
    sharded_code, sharded = scan(snapshots, tmp / "sharded", 2, *extra)
    assert sorted(whole) == sorted(FILES)
    for name in FILES:
        assert sharded[name] == whole[name], f"{name} differs between the sharded and the in-memory scan"
    assert sharded_code == whole_code
    return whole


def test_sample_estate_as_json_lines_gives_the_same_reports_sharded(workdir, capsys):
    lines = workdir / "sample.jsonl.gz"
    save_snapshot(load_snapshot(SAMPLE_SNAPSHOT), lines)
    reports = assert_same_reports([lines], workdir, "--baseline", str(SAMPLE_BASELINE))
    document = orjson.loads(reports["findings.json"])
    assert document["snapshot"]["resource_count"] == 344
    assert len(document["findings"]) > 700
    # the private cloud joined to its vCenter across shards (Azure's and the vCenter's)
    joined = [s for s in document["snapshot"]["sources"] if s.get("azure_vmware_solution")]
    assert [s["id"] for s in joined] == ["vc.4f2a9c1e.westeurope.avs.azure.com"]
    assert any(f["responsibility"] == "provider" for f in document["findings"])


@pytest.mark.parametrize("max_age, stale", [("1d", True), ("30d", False)])
def test_a_source_the_snapshot_does_not_list_is_judged_by_max_age_as_a_listed_one(workdir, capsys, max_age, stale):
    """Its resources name it, its sources list leaves it out: --max-age, which judges
    sources, would otherwise never find its resources stale (in either scan)."""
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    vcenter = "vc-dc1.corp.example"
    snapshot.sources = [source for source in snapshot.sources if source.id != vcenter]
    snapshot.collected_at = "2026-11-15T00:00:00Z"  # ten days before --as-of
    for kind, path in (("JSON Lines", workdir / "unlisted.jsonl"), ("one document", workdir / "unlisted.json")):
        save_snapshot(snapshot, path)
        reports = assert_same_reports([path], workdir / kind.replace(" ", "-"), "--baseline", str(SAMPLE_BASELINE),
                                      "--max-age", max_age)
        document = orjson.loads(reports["findings.json"])
        (added,) = [source for source in document["snapshot"]["sources"] if source["id"] == vcenter]
        assert added["cloud"] == "vsphere" and added["details"]["listed"] is False
        from_it = [f for f in document["findings"] if f["source"] == vcenter]
        if stale:  # a failed source: its resources dropped, its error naming its age
            assert added["status"] == "failed" and "older than --max-age 24 h" in added["error"]
            assert not from_it
        else:
            assert added["status"] == "ok" and added["resource_count"] > 50 and from_it


def test_a_source_in_two_files_is_refused_alike(workdir, capsys):
    """Listed in a fresh file, its resources in a stale one that does not list it: one
    source's age and resources would belong to neither. Each scan refuses it, naming both."""
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    vcenter = "vc-dc1.corp.example"
    fresh = replace(snapshot, resources=[r for r in snapshot.resources if r["source"] != vcenter])
    stale = replace(snapshot, sources=[], resources=[r for r in snapshot.resources if r["source"] == vcenter],
                    collected_at="2026-09-01T00:00:00Z")
    save_snapshot(fresh, workdir / "fresh.jsonl")
    save_snapshot(stale, workdir / "stale.jsonl")
    for workers in ("1", "2"):
        code = main(["scan", "--snapshot", "fresh.jsonl", "--snapshot", "stale.jsonl", "--max-age", "30d",
                     "--workers", workers, "--out", str(workdir / "out"), "-q"])
        err = capsys.readouterr().err
        assert code == 2 and f"stale.jsonl: source {vcenter} is also in fresh.jsonl; pass each source's snapshot " \
                              "once (its newest)" in err, err
        assert not (workdir / "out" / "latest").exists()


def test_generated_estate_split_in_two_files_gives_the_same_reports_sharded(workdir, capsys, monkeypatch):
    """Several vCenters and the tenant in separate files, and a Windows Server Standard
    entitlement, whose Azure claims depend on the guests of every vSphere host; the vCenters
    are split into parts of 300 VMs, whose Windows guests the scan sums across parts."""
    monkeypatch.setattr(shards, "VM_PART", 300)
    estate = build_sample_estate(vms_per_vcenter=(1200, 800), azure_vm_scale=12)
    vsphere = [r for r in estate.resources if r["cloud"] == "vsphere"]
    azure = [r for r in estate.resources if r["cloud"] == "azure"]
    first, second = workdir / "vsphere.jsonl", workdir / "azure.jsonl.gz"
    save_snapshot(Snapshot(estate.collected_at, [s for s in estate.sources if s.cloud == "vsphere"], vsphere), first)
    save_snapshot(Snapshot(estate.collected_at, [s for s in estate.sources if s.cloud == "azure"], azure), second)
    baseline = workdir / "standard.yaml"
    text = SAMPLE_BASELINE.read_text()
    assert "Windows_Server: {edition: datacenter, cores: 64}" in text
    baseline.write_text(text.replace("Windows_Server: {edition: datacenter, cores: 64}",
                                     "Windows_Server: {edition: standard, cores: 20000}"))
    reports = assert_same_reports([first, second], workdir, "--baseline", str(baseline))
    findings = orjson.loads(reports["findings.json"])["findings"]
    # the near-miss the ordering guards: with the on-premises guests counted, Standard
    # cores run out, so some claims are not covered (and some are, before they run out)
    covered = [f for f in findings if f["rule_id"] == "AZ-LIC-004"]
    assert covered and any("usable" in f["message"] for f in covered)


def test_json_lines_layout_round_trips_and_puts_routing_keys_first(tmp_path):
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    path = tmp_path / "estate.jsonl"
    save_snapshot(snapshot, path)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1 + len(snapshot.resources)
    assert orjson.loads(lines[0])["layout"] == "lines"
    assert all(line.startswith(b'{"source":') for line in lines[1:])
    again = load_snapshot(path)
    assert again.resources == snapshot.resources
    assert [s.as_dict() for s in again.sources] == [s.as_dict() for s in snapshot.sources]


def _write_lines(path: Path, header: dict, rows: list[bytes]) -> Path:
    path.write_bytes(b"\n".join([orjson.dumps(header), *rows]) + b"\n")
    return path


HEADER = {"kind": "auditor.snapshot", "schema_version": 1, "layout": "lines", "collected_at": "2026-11-20T06:00:00Z",
          "sources": [{"id": 'vc"x\\",cloud:"azure', "cloud": "vsphere", "kind": "vcenter"}]}


def _host(source: str, id_: str, version: str = "6.7.0", **extra) -> dict:
    return {"source": source, "cloud": "vsphere", "type": "HostSystem", "id": id_, "name": id_, "tags": {},
            "summary": {"config": {"product": {"version": version, "build": "1"}}}, **extra}


def test_hostile_names_and_hand_written_key_order_are_routed_by_their_json(workdir, capsys):
    source = HEADER["sources"][0]["id"]
    written = orjson.dumps(_host(source, 'esx"01'))
    hand_written = orjson.dumps({"name": "esx02", "id": "esx02", "type": "HostSystem", "cloud": "vsphere",
                                 "source": source, "summary": {"config": {"product": {"version": "6.7.0"}}}})
    path = _write_lines(workdir / "hostile.jsonl", HEADER, [written, hand_written])
    reports = assert_same_reports([path], workdir)
    findings = orjson.loads(reports["findings.json"])["findings"]
    assert {f["resource_id"] for f in findings if f["rule_id"] == "VS-SUP-001"} == {'esx"01', "esx02"}
    assert all(f["source"] == source for f in findings)


@pytest.mark.parametrize("rows, expected", [
    ([b'{"source":"vc","cloud":"vsphere","type":"HostSystem","id":"esx01","name":"esx01"'],
     r"hostile\.jsonl:2: not a snapshot: invalid JSON"),
    ([b'{"source":"vc","cloud":"vsphere","type":"HostSystem","id":"esx01","name":"esx01"}', b"{}"],
     r"hostile\.jsonl:3: resources\[1\] has no text field 'id'"),
    ([b'{"source":"vc","cloud":"gcp","type":"HostSystem","id":"esx01","name":"esx01"}'],
     r"hostile\.jsonl:2: resources\[0\] \(esx01\): cloud must be one of vsphere, azure"),
    ([b'{"source":"vc","cloud":"vsphere","type":"HostSystem","id":"esx01","name":"a"}',
      b'{"source":"vc","cloud":"vsphere","type":"HostSystem","id":"esx01","name":"b"}'],
     r"hostile\.jsonl:3: resource esx01 is also at .*hostile\.jsonl:2"),
    ([b'[1, 2]'], r"hostile\.jsonl:2: resources\[0\] is not an object"),
    # routed by the first "source", read with the last: it would sit in another vCenter's shard
    ([b'{"source":"vc","cloud":"vsphere","type":"HostSystem","id":"esx01","name":"a","source":"vc2"}'],
     r"hostile\.jsonl:2: resources\[0\] gives one of source, cloud, type, id twice"),
    # each report names failed sources: a megabyte-long name would be written again in each
    ([b'{"source":"' + b"v" * 1025 + b'","cloud":"vsphere","type":"HostSystem","id":"esx01","name":"a"}'],
     r"hostile\.jsonl:2: resources\[0\] \(esx01\): its source is longer than 1024 characters"),
])
def test_bad_lines_fail_with_the_file_and_line_and_write_nothing(workdir, capsys, rows, expected):
    header = {**HEADER, "sources": [{"id": "vc", "cloud": "vsphere", "kind": "vcenter"}]}
    path = _write_lines(workdir / "hostile.jsonl", header, rows)
    for workers in ("2", "1"):  # sharded, and read whole: refused alike (its own words when whole)
        code = main(["scan", "--snapshot", str(path), "--out", str(workdir / "out"), "--workers", workers, "-q"])
        assert code == 2
        err = capsys.readouterr().err
        assert re.search(expected if workers == "2" else r"hostile\.jsonl(:\d+)?: (resources|not a snapshot)", err), err
        assert len(err.strip().splitlines()) == 1
        assert not (workdir / "out" / "latest").exists()


def test_a_truncated_gzip_snapshot_fails_sharded_as_in_memory(workdir, capsys):
    path = workdir / "estate.jsonl.gz"
    save_snapshot(load_snapshot(SAMPLE_SNAPSHOT), path)
    path.write_bytes(path.read_bytes()[:-4000])
    for workers in ("1", "2"):
        code = main(["scan", "--snapshot", str(path), "--out", str(workdir / "out"), "--workers", workers, "-q"])
        err = capsys.readouterr().err
        assert code == 2 and "estate.jsonl.gz" in err and "gzip" in err, err


def test_the_input_limit_holds_line_by_line(workdir, capsys):
    path = workdir / "estate.jsonl"
    save_snapshot(load_snapshot(SAMPLE_SNAPSHOT), path)
    code = main(["scan", "--snapshot", str(path), "--out", str(workdir / "out"), "--workers", "2", "-q",
                 "--max-input-size", "100K"])
    err = capsys.readouterr().err
    assert code == 2 and "larger than the limit of 100 KiB" in err and "--max-input-size" in err, err


def test_batches_keep_large_shards_and_azure_alone(tmp_path):
    shards = [Shard("vc-big", "vsphere", tmp_path, 3 * BATCH_RESOURCES), Shard(AZURE_SHARD, "azure", tmp_path, 5),
              *(Shard(f"vc-{n}", "vsphere", tmp_path, BATCH_RESOURCES * 9 // 20) for n in range(3)),
              Shard("vc-tiny", "vsphere", tmp_path, 1)]
    batches = pack(sorted(shards, key=lambda shard: -shard.resources))
    assert [[s.key for s in batch] for batch in batches] == [
        ["vc-big"], ["vc-0", "vc-1", "vc-2"], [AZURE_SHARD], ["vc-tiny"]]


def test_a_large_vcenter_is_split_into_parts_that_read_its_inventory(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "VM_PART", 3)
    estate = build_sample_estate(vms_per_vcenter=(8, 2), azure_vm_scale=1)  # vc-dc1: 13 VMs
    lines = tmp_path / "estate.jsonl"
    save_snapshot(estate, lines)
    spill = tmp_path / "spill"
    spill.mkdir()
    routed = route([lines], 1 << 30, spill)
    big = sorted((s for s in routed.shards if s.key == "vsphere/vc-dc1.corp.example"), key=lambda s: s.part)
    own = [r for r in estate.resources if r["source"] == "vc-dc1.corp.example"]
    others = [r for r in own if r["type"] != "VirtualMachine"]
    vms = len(own) - len(others)
    assert vms == 13
    # the hosts and the rest, after the VMs; then parts of 3 VMs, the first in the same file
    assert [(s.part, s.resources, s.lines, s.after_vms) for s in big] == [
        (0, len(others), shards._OTHER, True), (1, 3, shards._VM, False), (2, 3, None, False),
        (3, 3, None, False), (4, 3, None, False), (5, 1, None, False)]
    assert [s.inventory for s in big] == [None] + [big[0].path] * 5
    assert big[1].path == big[0].path
    # a vCenter without more VMs than a part stays whole
    small = [s for s in routed.shards if s.key == "vsphere/vc-lab.corp.example"]
    assert [(s.part, s.inventory, s.lines, s.after_vms) for s in small] == [(0, None, None, False)]
    job = shards._Job(None, routed.header.sources, routed.context, routed.files, None, frozenset())
    inventory = shards._read_spill(big[0].path, job, shards._OTHER)
    assert sorted(r["id"] for r in inventory) == sorted(r["id"] for r in others)
    assert {r["type"] for r in shards._read_spill(big[0].path, job, shards._VM)} == {"VirtualMachine"}
    assert {r["type"] for r in shards._read_spill(big[2].path, job)} == {"VirtualMachine"}
    # the hosts' shard goes after every VM part, packed with its kind only
    batches = pack(routed.shards)
    assert all(batch[0].after_vms == batch[-1].after_vms for batch in batches)
    assert [batch[0].after_vms for batch in batches][-1] is True


def test_a_hosts_windows_guests_are_counted_over_every_part_of_its_vcenter(workdir, capsys, monkeypatch):
    """facts.windows_server on a host counts its Windows guests in every part, not only in
    the part that holds the host: a rule reading it says the same sharded as in memory."""
    monkeypatch.setattr(shards, "VM_PART", 20)
    estate = build_sample_estate(vms_per_vcenter=(600, 40), azure_vm_scale=1)
    lines = workdir / "estate.jsonl.gz"
    save_snapshot(estate, lines)
    rule = workdir / "hosts.yaml"
    rule.write_text("""rules:
  - id: HOST-WIN-001
    title: Host with Windows guests
    severity: low
    category: licensing
    resource: vsphere:HostSystem
    description: d
    remediation: r
    match: {path: facts.windows_server.vms, op: gt, value: 0}
    message: "{name}: {facts.windows_server.vms} Windows guests, {facts.windows_server.standard_cores} cores"
""")
    reports = assert_same_reports([lines], workdir, "--baseline", str(SAMPLE_BASELINE), "--rules", str(rule))
    found = [f for f in orjson.loads(reports["findings.json"])["findings"] if f["rule_id"] == "HOST-WIN-001"]
    counts = [int(f["message"].split(": ")[1].split()[0]) for f in found]
    # the near-miss the wait guards: a host with more Windows guests than one part holds VMs
    assert found and max(counts) > 20, counts


def test_gzip_lines_file_is_one_gzip_stream_readable_by_zcat(tmp_path):
    path = tmp_path / "estate.jsonl.gz"
    save_snapshot(load_snapshot(SAMPLE_SNAPSHOT), path)
    assert len(gzip.decompress(path.read_bytes()).splitlines()) == 345


# --- findings.json written in pieces ---------------------------------------------------------

def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("evidence", [
    None,  # as scanned
    [{"actual": 2 ** 70}],  # orjson cannot write it: the whole document is written another way
    [{"actual": _nested(252)}],  # past orjson's depth only where the document puts it
    [{"actual": "a\ud800b\u0085c\u2028"}],  # a lone surrogate, C1 and line separator characters
])
def test_findings_json_written_in_pieces_is_the_rendered_document(monkeypatch, evidence):
    import io
    from datetime import date

    import auditor.formats.findings_json as findings_json
    from auditor.scan import evaluate_snapshot, load_rule_context

    as_of = date(2026, 11, 25)
    report, _ = evaluate_snapshot(load_snapshot(SAMPLE_SNAPSHOT), load_rule_context(None, [SAMPLE_BASELINE], as_of),
                                  as_of)
    if evidence is not None:
        report.findings[3].evidence = evidence
        report.findings[5].evidence = [{"actual": _nested(240)}]  # writable alone, cut when the document is not
    monkeypatch.setattr(findings_json, "_PIECE", 7)
    written = io.BytesIO()
    findings_json.FindingsJson().write(report, written)
    assert written.getvalue() == findings_json.FindingsJson().render(report)
    report.findings = []
    written = io.BytesIO()
    findings_json.FindingsJson().write(report, written)
    assert written.getvalue() == findings_json.FindingsJson().render(report)


def test_a_stale_site_fails_alike_sharded_and_in_memory(workdir, capsys):
    """--max-age: the vCenters' file is fresh, the tenant's two weeks old; both scans drop the
    tenant's resources, name it and exit 3."""
    from auditor.snapshot import now_utc

    estate = load_snapshot(SAMPLE_SNAPSHOT)
    fresh, stale = workdir / "vsphere.jsonl", workdir / "azure.jsonl.gz"
    save_snapshot(Snapshot(now_utc(), [s for s in estate.sources if s.cloud == "vsphere"],
                           [r for r in estate.resources if r["cloud"] == "vsphere"]), fresh)
    save_snapshot(Snapshot("2026-11-20T06:00:00Z", [s for s in estate.sources if s.cloud == "azure"],
                           [r for r in estate.resources if r["cloud"] == "azure"]), stale)
    reports = assert_same_reports([fresh, stale], workdir, "--baseline", str(SAMPLE_BASELINE), "--max-age", "2d")
    document = orjson.loads(reports["findings.json"])
    failed = {s["id"]: s["error"] for s in document["snapshot"]["sources"] if s["status"] == "failed"}
    assert set(failed) == {s.id for s in estate.sources if s.cloud == "azure"}
    assert all("older than --max-age" in error for error in failed.values())
    assert {f["cloud"] for f in document["findings"]} == {"vsphere"}
    assert main(["scan", "--snapshot", str(fresh), "--snapshot", str(stale), "--out", str(workdir / "again"),
                 "--workers", "2", "--max-age", "2d", "-q", "--baseline", str(SAMPLE_BASELINE)]) == 3


# --- workers that die, scans that are stopped ---------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.fixture(scope="module")
def large_estate(tmp_path_factory) -> Path:
    """Enough resources that each worker is busy for seconds."""
    path = tmp_path_factory.mktemp("large") / "estate.jsonl.gz"
    save_snapshot(build_sample_estate(vms_per_vcenter=(12000, 9000), azure_vm_scale=30), path)
    return path


def _start_scan(estate: Path, tmp_path: Path):
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    scan = subprocess.Popen([sys.executable, "-m", "auditor", "scan", "--snapshot", str(estate), "--out",
                             str(tmp_path / "out"), "--workers", "2", "-q", "--no-history"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_children(scan.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _children(scan.pid)
    assert len(workers) >= 2, "the scan never started its workers"
    return scan, workers


def test_a_killed_worker_fails_the_scan_at_once_and_writes_nothing(large_estate, tmp_path):
    import os
    import signal
    import time

    scan, workers = _start_scan(large_estate, tmp_path)
    time.sleep(0.3)  # into the evaluation: a part of 5,000 VMs takes about half a second
    os.kill(workers[0], signal.SIGKILL)
    _, err = scan.communicate(timeout=60)  # before: the pool waited for ever for the lost batch
    assert scan.returncode == 70, err
    assert "a worker evaluating a shard ended without its result" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "latest").exists()
    assert not list((tmp_path / "tmp").iterdir())  # the spill files are gone


def test_sigterm_ends_the_workers_and_removes_the_spill_files(large_estate, tmp_path):
    import os
    import signal
    import time

    scan, workers = _start_scan(large_estate, tmp_path)
    time.sleep(0.3)  # into the evaluation: a part of 5,000 VMs takes about half a second
    os.kill(scan.pid, signal.SIGTERM)
    scan.communicate(timeout=60)
    assert scan.returncode == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a worker outlived the scan"
    assert not list((tmp_path / "tmp").iterdir())
    assert not (tmp_path / "out" / "latest").exists()


def test_a_vcenter_named_like_the_azure_shard_gets_its_own(workdir, capsys):
    """A source id is the estate's to choose: `azure` must not merge a vCenter into the
    tenant's shard (whose Windows Standard claims would then not wait for its guests)."""
    estate = build_sample_estate(vms_per_vcenter=(1200, 800), azure_vm_scale=12)
    for source in estate.sources:
        if source.id == "vc-dc1.corp.example":
            source.id = "azure"
    for resource in estate.resources:
        if resource["source"] == "vc-dc1.corp.example":
            resource["source"] = "azure"
    path = workdir / "named.jsonl"
    save_snapshot(estate, path)
    baseline = workdir / "standard.yaml"
    baseline.write_text(SAMPLE_BASELINE.read_text().replace("Windows_Server: {edition: datacenter, cores: 64}",
                                                            "Windows_Server: {edition: standard, cores: 20000}"))
    reports = assert_same_reports([path], workdir, "--baseline", str(baseline))
    assert any(f["source"] == "azure" and f["cloud"] == "vsphere"
               for f in orjson.loads(reports["findings.json"])["findings"])


def test_a_header_alone_is_an_empty_estate_either_way(workdir, capsys):
    path = workdir / "empty.jsonl"
    save_snapshot(Snapshot("2026-11-20T06:00:00Z", [], []), path)
    for workers in ("1", "2"):
        code = main(["scan", "--snapshot", str(path), "--out", str(workdir / f"out{workers}"), "--workers", workers,
                     "-q", "--no-history"])
        assert code == 0, capsys.readouterr().err
        document = orjson.loads((workdir / f"out{workers}" / "latest" / "findings.json").read_bytes())
        assert document["snapshot"]["resource_count"] == 0 and document["findings"] == []


def test_a_dense_line_is_refused_before_it_is_parsed(workdir, capsys):
    """200,000 empty lists would take hundreds of MB in a worker: refused as the
    one-document reader refuses such a file."""
    line = b'{"source":"vc","cloud":"vsphere","type":"HostSystem","id":"esx01","name":"a","x":[' + \
        b",".join([b"[]"] * 200_000) + b"]}"
    path = _write_lines(workdir / "dense.jsonl", {**HEADER, "sources": []}, [line])
    for workers in ("2", "1"):
        code = main(["scan", "--snapshot", str(path), "--out", str(workdir / "out"), "--workers", workers, "-q"])
        err = capsys.readouterr().err
        assert code == 2 and "far denser than any inventory" in err, err


def test_a_snapshot_dated_in_the_future_is_not_fresh(workdir, capsys):
    estate = load_snapshot(SAMPLE_SNAPSHOT)
    path = workdir / "future.jsonl"
    save_snapshot(Snapshot("2099-01-01T00:00:00Z", estate.sources, estate.resources), path)
    code = main(["scan", "--snapshot", str(path), "--out", str(workdir / "out"), "--workers", "2", "-q",
                 "--max-age", "2h", "--baseline", str(SAMPLE_BASELINE)])
    err = capsys.readouterr().err
    assert code == 3 and "in the future" in err, err


class Label(str):
    """A text subclass, as a fact's value may be."""


def test_a_workers_findings_come_back_as_they_were():
    """A worker's outcome crosses to the scan as marshal data where every value allows it,
    else through pickle: either way the findings come back equal, their values of the same
    types (a date stays a date, a text subclass its class)."""
    import datetime
    import pickle

    from auditor.findings import Finding
    from auditor.shards import ShardOutcome

    def outcome(evidence_value) -> ShardOutcome:
        finding = Finding(rule_id="r", fingerprint="f", severity="high", category="c", title="t", message="m",
                          resource_id="id", resource_name="n", resource_type="VirtualMachine", cloud="vsphere",
                          source="vc", item_key="k", evidence=[{"path": "a.b", "actual": evidence_value,
                                                               "result": True}])
        return ShardOutcome(findings=[finding], counts={"vsphere:VirtualMachine": 1}, resources=1)

    plain = outcome([1, 2.5, None, 2 ** 70, {"x": (1, "y")}])
    assert pickle.dumps(plain).count(b"marshal") == 1  # taken by marshal
    for original in (plain, outcome(datetime.date(2026, 1, 1)), outcome(Label("zone"))):
        back = pickle.loads(pickle.dumps(original))
        assert back == original
        value, expected = back.findings[0].evidence[0]["actual"], original.findings[0].evidence[0]["actual"]
        assert type(value) is type(expected)


def _spilled(routed) -> list[bytes]:
    return [shard.path.read_bytes() for shard in sorted(routed.shards, key=lambda s: (s.key, s.part))]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_lines_across_read_ahead_chunks_are_routed_as_whole_lines(tmp_path, monkeypatch, ending):
    """Chunks of 7 bytes cut every line, many times; with or without a last newline."""
    lines = tmp_path / "sample.jsonl"
    save_snapshot(load_snapshot(SAMPLE_SNAPSHOT), lines)
    text = lines.read_bytes().replace(b"\n", ending or b"\n")
    lines.write_bytes(text if ending else text.rstrip(b"\n"))
    (tmp_path / "big").mkdir()
    whole = _spilled(route([lines], 1 << 30, tmp_path / "big"))
    monkeypatch.setattr(shards, "_READ_AHEAD", 7)
    (tmp_path / "small").mkdir()
    assert _spilled(route([lines], 1 << 30, tmp_path / "small")) == whole
    assert sum(spill.count(b"\n") for spill in whole) == 344


def test_a_failed_routing_stops_its_read_ahead_thread(tmp_path, monkeypatch):
    import threading

    monkeypatch.setattr(shards, "_READ_AHEAD", 64)  # the reader stays ahead, its queue full
    lines = tmp_path / "sample.jsonl"
    save_snapshot(load_snapshot(SAMPLE_SNAPSHOT), lines)
    rows = lines.read_bytes().split(b"\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join([*rows[:3], b"[1, 2]", *rows[3:]]))
    (tmp_path / "spill").mkdir()
    with pytest.raises(SnapshotError, match=r"broken\.jsonl:4: "):
        route([broken], 1 << 30, tmp_path / "spill")
    assert not [thread for thread in threading.enumerate() if thread.name == "snapshot-reader"]


def test_a_bug_in_a_worker_is_raised_as_itself_with_the_workers_traceback_as_a_note(workdir, monkeypatch):
    lines = workdir / "sample.jsonl"
    save_snapshot(load_snapshot(SAMPLE_SNAPSHOT), lines)

    def broken(*args):
        return 1 / 0
    monkeypatch.setattr(shards, "evaluate_rules", broken)  # the workers are forked: they have it too
    with pytest.raises(RuntimeError) as caught:
        main(["scan", "--snapshot", str(lines), "--out", str(workdir / "out"), "--workers", "2", "-q"])
    assert str(caught.value) == "a shard worker failed: ZeroDivisionError: division by zero"
    # the one line the CLI prints is the message; the traceback is there for AUDITOR_TRACEBACK=1
    assert "Traceback" in caught.value.__notes__[0] and "broken" in caught.value.__notes__[0]
    assert not (workdir / "out" / "latest").exists()


def _branch_offices(path: Path, sites: int) -> int:
    """A snapshot of `sites` small vCenters (the sample's lab vCenter and host, four VMs
    each); returns how many resources each site has."""
    sample = load_snapshot(SAMPLE_SNAPSHOT)
    lab = [r for r in sample.resources if r["source"] == "vc-lab.corp.example"]
    guests = [r for r in sample.resources if r["source"] == "vc-dc1.corp.example" and r["type"] == "VirtualMachine"][:4]
    host = next(r for r in lab if r["type"] == "HostSystem")
    template = next(s for s in sample.sources if s.id == "vc-lab.corp.example")
    sources, resources = [], []
    for site in range(sites):
        name = f"vc-site{site}.corp.example"
        sources.append(replace(template, id=name))
        for resource in lab + guests:
            copy = orjson.loads(orjson.dumps(resource))
            copy["source"], copy["id"] = name, f"{name}/{resource['id']}"
            if copy["type"] == "VirtualMachine":
                copy.setdefault("runtime", {})["host"] = host.get("moref")
            resources.append(copy)
    save_snapshot(Snapshot(sample.collected_at, sources, resources), path)
    return len(lab) + len(guests)


def test_many_small_vcenters_packed_into_batches_give_the_same_reports(workdir, capsys):
    """Branch-office vCenters, packed many to a batch and evaluated as one estate there."""
    lines = workdir / "branches.jsonl"
    each = _branch_offices(lines, 300)
    reports = assert_same_reports([lines], workdir, "--baseline", str(SAMPLE_BASELINE))
    document = orjson.loads(reports["findings.json"])
    assert document["snapshot"]["resource_count"] == 300 * each
    assert len({f["source"] for f in document["findings"]}) == 300


@pytest.mark.parametrize("hard, code", [(4096, 0), (48, 2)])
def test_a_spill_file_per_vcenter_past_the_open_file_limit(workdir, hard, code):
    """The soft limit is raised to the hard one; past the hard one, an input error naming
    the spill folder (it was an internal error)."""
    import resource
    import subprocess
    import sys

    lines = workdir / "branches.jsonl"
    _branch_offices(lines, 80)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, hard))
    scan = subprocess.run([sys.executable, "-m", "auditor", "scan", "--snapshot", str(lines), "--out",
                           str(workdir / "out"), "--workers", "2", "-q", "--no-history", "--fail-on", "never"],
                          capture_output=True, text=True, preexec_fn=limited)
    assert scan.returncode == code, scan.stderr
    if code:
        assert "cannot write the scan's spill files: Too many open files" in scan.stderr
        assert len(scan.stderr.strip().splitlines()) == 1


def test_a_corrupt_gzip_block_and_a_dense_or_blank_file_are_refused_alike_sharded_and_in_memory(workdir, capsys):
    save_snapshot(load_snapshot(SAMPLE_SNAPSHOT), workdir / "sample.jsonl")
    plain = (workdir / "sample.jsonl").read_bytes()
    packed = bytearray(gzip.compress(plain))
    packed[12] ^= 0xFF  # the first deflate block: zlib.error, which is no OSError
    (workdir / "corrupt.jsonl.gz").write_bytes(bytes(packed))
    (workdir / "blank.jsonl").write_bytes(plain + b"\n" * 10_001)
    head, rest = plain.split(b"\n", 1)
    dense = b'{"source":"vc-lab.corp.example","cloud":"vsphere","type":"Note","id":"dense-%d","name":"x","x":[%s]}'
    (workdir / "dense.jsonl").write_bytes(head + b"\n" + rest + b"\n".join(
        dense % (n, b",".join([b"[]"] * 12_000)) for n in range(20)) + b"\n")
    for name, expected in (("corrupt.jsonl.gz", "broken gzip data"), ("blank.jsonl", "more than 10,000 blank lines"),
                           ("dense.jsonl", "is far denser than any inventory")):
        errors = []
        for workers in ("1", "2"):
            code = main(["scan", "--snapshot", str(workdir / name), "--out", str(workdir / "out"), "--workers",
                         workers, "-q", "--no-history"])
            err = capsys.readouterr().err
            assert code == 2 and expected in err, (name, workers, err)
            errors.append(err)
        assert errors[0] == errors[1], name
    assert not (workdir / "out" / "latest").exists()


def test_the_spill_folders_of_killed_scans_are_swept_and_live_ones_kept(tmp_path):
    import fcntl
    import os

    from auditor.shards import sweep_spill_folders

    dead = tmp_path / "auditor-shards-dead0000"  # its scan was killed: nobody holds its lock
    dead.mkdir()
    (dead / ".lock").touch()
    (dead / "shard-0.jsonl").write_bytes(b"0 2 v {}\n")
    live = tmp_path / "auditor-shards-live0000"
    live.mkdir()
    (live / ".lock").touch()
    held = os.open(live / ".lock", os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    starting = tmp_path / "auditor-shards-starting"  # no lock file yet: being created
    starting.mkdir()
    (starting / ".lock-new").touch()
    abandoned = tmp_path / "auditor-shards-abandone"  # killed while it was created, an hour ago
    abandoned.mkdir()
    (abandoned / ".lock-new").touch()
    os.utime(abandoned, (time.time() - 3600, time.time() - 3600))
    lookalike = tmp_path / "auditor-shards-notes"  # named like a spill folder, not one of ours
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("mine")
    (lookalike / ".lock").touch()  # which nobody holds
    os.utime(lookalike, (time.time() - 3600, time.time() - 3600))
    unlockable = tmp_path / "auditor-shards-unlockab"  # a scan where flock failed: its spill files
    unlockable.mkdir()
    (unlockable / ".lock-new").touch()
    (unlockable / "shard-0.jsonl").write_bytes(b"0 2 v {}\n")
    os.utime(unlockable, (time.time() - 3600, time.time() - 3600))
    piped = tmp_path / "auditor-shards-fifo0000"  # opening a FIFO to read would wait for a writer
    piped.mkdir()
    os.mkfifo(piped / ".lock")
    other = tmp_path / "other"
    other.mkdir()
    (other / ".lock").touch()
    (tmp_path / "auditor-shards-link0000").symlink_to(other)
    try:
        sweep_spill_folders(tmp_path)
    finally:
        os.close(held)
    assert not dead.exists() and not abandoned.exists()
    assert live.exists() and starting.exists() and unlockable.exists() and lookalike.exists() and piped.exists() and (other / ".lock").exists()
    assert (tmp_path / "auditor-shards-link0000").is_symlink()


def test_a_scan_killed_outright_leaves_spill_files_the_next_scan_removes(large_estate, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    scan, workers = _start_scan(large_estate, tmp_path)
    time.sleep(0.3)
    os.kill(scan.pid, signal.SIGKILL)  # the OOM killer: no handler runs
    scan.communicate(timeout=60)
    for worker in workers:  # they end with their parent
        for _ in range(100):
            if not os.path.exists(f"/proc/{worker}"):
                break
            time.sleep(0.05)
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("auditor-shards-")]
    again = subprocess.run([sys.executable, "-m", "auditor", "scan", "--snapshot", str(large_estate), "--out",
                            str(tmp_path / "again"), "--workers", "2", "-q", "--no-history"],
                           env={**os.environ, "TMPDIR": str(tmp_path / "tmp")}, capture_output=True, text=True)
    assert again.returncode in (0, 1), again.stderr
    assert not list((tmp_path / "tmp").iterdir())
