"""Snapshots and reports in Azure Blob Storage, against Microsoft's Azurite emulator.

The real azure-storage-blob client talks to Azurite (tests/azurite.py) with the emulator's
development account; the collector for `collect azure` is the local Resource Manager replay
(tests/arm_replay.py). Nothing in auditor is patched: the interrupted upload is a real
uploader process killed mid-upload, or a transport that drops the connection.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor.blob import BlobLocation, StorageError, parse_location, source_label, upload_snapshot
from auditor.cli import main
from auditor.errors import EXIT_INCOMPLETE, EXIT_INPUT_ERROR, EXIT_OK
from auditor.sample import SAMPLE_SNAPSHOT
from auditor.snapshot import Snapshot, load_snapshot, save_snapshot
from tests.arm_replay import CLIENT_SECRET, ArmReplay
from tests.azurite import ACCOUNT, KEY, Container, new_container
from tests.conftest import AS_OF, ROOT
from tests.test_azure import replay_fixture  # noqa: F401 (fixture: the ARM replay server, signed in)

SITE_A = "vc-dc1.corp.example"
SITE_B = "vc-dc2.corp.example"
PCI = "9f2c4e1a-7b3d-4c5e-8f60-a1b2c3d4e5f6"  # a subscription of the replayed tenant
SCAN = ["scan", "--as-of", AS_OF.isoformat(), "--no-history", "-q"]
STORAGE_VARIABLES = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY",
                     "AZURE_STORAGE_ACCOUNT")


@pytest.fixture
def storage(azurite, monkeypatch, tmp_path) -> Container:
    """A fresh container of the emulator, and the environment set to reach it by the account's
    connection string."""
    container = new_container(azurite)
    for variable in STORAGE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
    monkeypatch.chdir(tmp_path)
    return container


def stamp(age: timedelta) -> str:
    return (datetime.now(UTC) - age).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def site(vcenter: str, age: timedelta, drop: int = 0) -> Snapshot:
    """The sample estate's vCenter `vcenter` alone, as its site's collector would have stored it
    `age` ago (`drop`: that many resources fewer, to tell an older snapshot from a newer one)."""
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    snapshot.sources = [s for s in snapshot.sources if s.id == vcenter]
    snapshot.resources = [r for r in snapshot.resources if r["source"] == vcenter][drop:]
    snapshot.collected_at = stamp(age)
    return snapshot


def store(storage: Container, snapshot: Snapshot, prefix: str = "site-snapshots/") -> BlobLocation:
    return upload_snapshot(snapshot, parse_location(storage.at(prefix)), source_label("vsphere", [snapshot.sources[0].id]))


def report(workdir: Path, folder: str = "reports") -> dict:
    return json.loads((workdir / folder / "latest" / "findings.json").read_text())


def one_error_line(err: str) -> str:
    """stderr of a command that failed on its input: one line, no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# --- locations -----------------------------------------------------------------------------

def test_locations_in_every_form():
    az = parse_location("az://site-data/site-snapshots/")
    assert (az.container, az.path, az.account, az.is_prefix) == ("site-data", "site-snapshots/", None, True)
    assert str(az) == "az://site-data/site-snapshots/"
    blob = parse_location("https://contoso.blob.core.windows.net/site-data/paris/vc1/20261120T080000Z.json.gz")
    assert (blob.account, blob.endpoint, blob.container) == ("contoso", "https://contoso.blob.core.windows.net",
                                                             "site-data")
    assert blob.path == "paris/vc1/20261120T080000Z.json.gz" and not blob.is_prefix
    emulator = parse_location("http://127.0.0.1:10000/devstoreaccount1/reports/")
    assert (emulator.account, emulator.endpoint, emulator.container, emulator.path) == (
        "devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1", "reports", "")
    # a run under a prefix is named like a run folder: `run/` and `run.parent / "latest"`
    run = parse_location("az://c1c/reports/") / "20261120T080000Z"
    assert str(run) == "az://c1c/reports/20261120T080000Z" and str(run.parent / "latest") == "az://c1c/reports/latest"


@pytest.mark.parametrize(("location", "message"), [
    ("https://contoso.blob.core.windows.net/c1c/x/?sv=2024-11-04&sp=rwl&sig=TopSecretSignature%3D",
     "does not belong on the command line"),
    ("http://contoso.blob.core.windows.net/c1c/x/", "plain http:// is only for a local emulator"),
    ("az://Bad_Container/x/", "is not a container name"),
    ("az:///x/", "names no container"),
    ("https://user:TopSecretSignature@contoso.blob.core.windows.net/c1c/", "credentials do not belong"),
])
def test_a_bad_location_is_a_usage_error_that_repeats_no_secret(location, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:  # argparse refuses the value
        main([*SCAN, "--snapshot", location])
    assert exited.value.code == EXIT_INPUT_ERROR
    out, err = capsys.readouterr()
    assert message in err and "TopSecretSignature" not in out + err


def test_source_labels_are_stable_and_short():
    assert source_label("vsphere", ["vc2.corp.example", "vc1.corp.example:443"]) == \
        "vsphere-vc1.corp.example-443+vc2.corp.example"
    assert source_label("azure", []) == "azure-all"
    many = source_label("azure", [str(uuid.UUID(int=n)) for n in range(40)])
    assert len(many) < 100 and many.startswith("azure-00000000-0000-0000-0000-000000000000-and-39-more-")


# --- collect and scan through storage ------------------------------------------------------

def collect_azure(replay: ArmReplay, output: str) -> list[str]:
    return ["collect", "azure", "--arm-endpoint", replay.url, "--authority", replay.url, "--ca-bundle",
            str(replay.cert), "--subscription", PCI, "--out", output]


def test_collect_to_a_prefix_adds_a_blob_per_run_and_scan_reads_the_newest(storage, replay, tmp_path, capsys):
    assert main(collect_azure(replay, storage.at("site-snapshots/"))) == EXIT_OK
    assert main(collect_azure(replay, storage.at("site-snapshots/"))) == EXIT_OK
    assert f"to {storage.at('site-snapshots/')}" in capsys.readouterr().out
    names = storage.names()
    # the older snapshot stays: a run of the same second gets `-2`, and nothing is overwritten
    assert len(names) == 2 and all(name.startswith(f"site-snapshots/azure-{PCI}/") for name in names)
    document = json.loads(gzip.decompress(storage.read(names[0])))
    assert document["kind"] == "auditor.snapshot" and [s["id"] for s in document["sources"]] == [PCI]
    assert CLIENT_SECRET.encode() not in storage.read(names[0])
    assert main([*SCAN, "--snapshot", storage.at("site-snapshots/")]) == EXIT_OK
    scanned = report(tmp_path)
    assert [s["id"] for s in scanned["snapshot"]["sources"]] == [PCI]  # one snapshot read, not both merged
    assert scanned["snapshot"]["resource_count"] == len(document["resources"])


def test_collect_to_a_full_blob_name_replaces_that_blob(storage, replay):
    assert main(collect_azure(replay, storage.at("pci/azure.json"))) == EXIT_OK
    assert main(collect_azure(replay, storage.at("pci/azure.json"))) == EXIT_OK
    assert storage.names() == ["pci/azure.json"]
    assert json.loads(storage.read("pci/azure.json"))["kind"] == "auditor.snapshot"  # not compressed: no .gz


def test_collect_into_a_missing_container_fails_before_collecting(storage, replay, capsys):
    code = main(collect_azure(replay, "az://no-such-container/site-snapshots/"))
    line = one_error_line(capsys.readouterr().err)
    assert code == EXIT_INPUT_ERROR
    assert line == ("auditor: error: az://no-such-container/: container 'no-such-container' not found in storage "
                    f"account {ACCOUNT} (create it, or correct the name)")
    assert replay.requests["resources"] == 0  # minutes of collection are not spent on a snapshot with nowhere to go


def test_collect_with_a_refused_key_fails_before_collecting(storage, replay, monkeypatch, capsys):
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", storage.azurite.connection_string(key=wrong))
    assert main(collect_azure(replay, storage.at("site-snapshots/"))) == EXIT_INCOMPLETE
    line = one_error_line(capsys.readouterr().err)
    assert "refused the account key of AZURE_STORAGE_CONNECTION_STRING while checking the container" in line
    assert wrong not in line and replay.requests["resources"] == 0


def test_a_site_with_a_write_only_sas_can_store_but_not_read(storage, replay, monkeypatch, capsys):
    write_only = storage.sas("cw")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", write_only)
    assert main(collect_azure(replay, storage.url("site-snapshots/"))) == EXIT_OK
    [name] = storage.names()
    assert name.startswith(f"site-snapshots/azure-{PCI}/")
    assert main([*SCAN, "--snapshot", storage.url("site-snapshots/")]) == EXIT_INCOMPLETE  # listing is refused
    out, err = capsys.readouterr()
    assert "refused the SAS token of AZURE_STORAGE_SAS_TOKEN while listing snapshots" in err
    assert write_only not in out + err


def test_the_newest_snapshot_of_each_source_is_read_and_merged(storage, tmp_path):
    newest_a, newest_b = site(SITE_A, timedelta(hours=2)), site(SITE_B, timedelta(hours=1))
    for snapshot in (site(SITE_A, timedelta(hours=30), drop=5), newest_a, site(SITE_B, timedelta(hours=50), drop=3),
                     newest_b):
        store(storage, snapshot)
    # blobs that are no snapshot of `collect` (reports, notes) are passed over in a prefix
    storage.client.upload_blob("site-snapshots/README.txt", b"site snapshots, one folder per collector")
    assert main([*SCAN, "--snapshot", storage.at("site-snapshots/")]) == EXIT_OK
    scanned = report(tmp_path)
    assert {s["id"] for s in scanned["snapshot"]["sources"]} == {SITE_A, SITE_B}
    assert scanned["snapshot"]["resource_count"] == len(newest_a.resources) + len(newest_b.resources)
    assert scanned["snapshot"]["collected_at"] == newest_b.collected_at


def test_a_source_older_than_max_age_fails_the_scan_by_name(storage, tmp_path, capsys):
    stale = store(storage, site(SITE_A, timedelta(days=3, hours=2)))
    store(storage, site(SITE_B, timedelta(hours=1)))
    code = main([*SCAN, "--snapshot", storage.at("site-snapshots/"), "--max-age", "36h"])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE
    assert f"auditor: error: {SITE_A}: newest snapshot is 3 d 2 h old (collected " in err
    assert f"{stale}), older than --max-age 36 h" in err
    assert f"collection incomplete: {SITE_A} failed" in err
    scanned = report(tmp_path)
    sources = {s["id"]: s for s in scanned["snapshot"]["sources"]}
    assert sources[SITE_A]["status"] == "failed" and sources[SITE_B]["status"] == "ok"
    assert sources[SITE_A]["details"]["stale_snapshot"]["max_age_seconds"] == 36 * 3600
    # its resources are not reported as if current: the stale site's findings are not there
    assert not any(f["source"] == SITE_A for f in scanned["findings"])
    assert scanned["snapshot"]["resource_count"] == len(site(SITE_B, timedelta(0)).resources)
    # within the age, both count
    assert main([*SCAN, "--snapshot", storage.at("site-snapshots/"), "--max-age", "4d"]) == EXIT_OK


def test_max_age_means_the_same_for_local_snapshot_files(tmp_path, monkeypatch, capsys):
    save_snapshot(site(SITE_A, timedelta(hours=40)), tmp_path / "a.json.gz")
    save_snapshot(site(SITE_B, timedelta(minutes=30)), tmp_path / "b.json")
    monkeypatch.chdir(tmp_path)
    code = main([*SCAN, "--snapshot", "a.json.gz", "b.json", "--max-age", "1d"])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE
    assert f"{SITE_A}: newest snapshot is 40 h old (collected " in err and "a.json.gz), older than --max-age 24 h" in err
    assert SITE_B not in err.replace(f"collection incomplete: {SITE_A}", "")


@pytest.mark.parametrize(("args", "message"), [
    (["--max-age", "36x", "--snapshot", "a.json"], "is not a duration"),
    (["--max-age", "0h", "--snapshot", "a.json"], "more than nothing"),
    (["--max-age", "36h"], "--max-age needs --snapshot"),
    (["--storage-timeout", "5", "--snapshot", "a.json"], "--storage-timeout needs a --snapshot or --output in "
                                                         "Azure Blob Storage"),
])
def test_max_age_and_storage_timeout_misuse_is_a_usage_error(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        code = main([*SCAN, *args])
    except SystemExit as exited:  # a value argparse refuses
        code = exited.code
    assert code == EXIT_INPUT_ERROR
    assert message in capsys.readouterr().err


# --- interrupted uploads -------------------------------------------------------------------

UPLOADER = textwrap.dedent("""
    import sys, time
    from azure.core.pipeline.transport import RequestsTransport
    from auditor.blob import parse_location, upload_snapshot
    from auditor.snapshot import load_snapshot

    send = RequestsTransport.send
    def slowly(self, request, **kwargs):  # a slow link: each block takes a while
        if "comp=block&" in request.url or request.url.endswith("comp=block"):
            time.sleep(0.4)
        return send(self, request, **kwargs)
    RequestsTransport.send = slowly
    upload_snapshot(load_snapshot(sys.argv[1]), parse_location(sys.argv[2]), sys.argv[3], block_size=4096)
    print("committed", flush=True)
""")


def test_an_uploader_killed_mid_upload_leaves_the_old_snapshot_newest(storage, tmp_path, capsys):
    old = store(storage, site(SITE_A, timedelta(hours=3)))
    newer = site(SITE_A, timedelta(minutes=1))
    save_snapshot(newer, tmp_path / "newer.json")
    label = source_label("vsphere", [SITE_A])
    wanted = f"site-snapshots/{label}/{newer.collected_at.replace('-', '').replace(':', '')}.json.gz"
    uploader = subprocess.Popen([sys.executable, "-c", UPLOADER, str(tmp_path / "newer.json"),
                                 storage.at("site-snapshots/"), label], cwd=ROOT, env=os.environ.copy(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    blob = storage.client.get_blob_client(wanted)
    staged: list = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and uploader.poll() is None:
            try:
                staged = blob.get_block_list("uncommitted")[1]
            except Exception:  # no block staged yet: the blob is not known at all
                staged = []
            if len(staged) >= 2:
                break
            time.sleep(0.05)
        assert len(staged) >= 2, uploader.communicate()
        os.kill(uploader.pid, signal.SIGKILL)
    finally:
        uploader.kill()
        out, _ = uploader.communicate(timeout=30)
    assert "committed" not in out
    # blocks reached the service, but no blob was committed: readers see only the old snapshot
    assert storage.names() == [old.path]
    code = main([*SCAN, "--snapshot", storage.at("site-snapshots/"), "--max-age", "2h"])
    assert code == EXIT_INCOMPLETE
    assert f"{SITE_A}: newest snapshot is 3 h old" in capsys.readouterr().err


def test_an_upload_whose_link_stalls_after_some_blocks_commits_nothing(storage, monkeypatch):
    from azure.core.exceptions import ServiceResponseTimeoutError
    from azure.core.pipeline.transport import RequestsTransport

    old = store(storage, site(SITE_A, timedelta(hours=3)))
    send, requests = RequestsTransport.send, []

    def stalling(self, request, **kwargs):  # the link goes silent after two blocks reached the service
        requests.append(request.url)
        if len(requests) > 2:
            raise ServiceResponseTimeoutError("Read timed out. (read timeout=60)")
        return send(self, request, **kwargs)

    monkeypatch.setattr(RequestsTransport, "send", stalling)
    with pytest.raises(StorageError) as failure:
        upload_snapshot(site(SITE_A, timedelta(minutes=1)), parse_location(storage.at("site-snapshots/")),
                        source_label("vsphere", [SITE_A]), block_size=8192)
    monkeypatch.undo()
    assert all("comp=block" in url for url in requests[:2]) and len(requests) == 3  # a timeout is not retried
    assert failure.value.exit_code == EXIT_INCOMPLETE
    assert failure.value.one_line() == (f"{storage.at('site-snapshots/')}: storage account {ACCOUNT} at "
                                        f"{storage.azurite.endpoint} timed out after 60 s (uploading the snapshot)")
    assert storage.names() == [old.path]


# --- reports -------------------------------------------------------------------------------

def test_reports_are_uploaded_as_a_run_folder_and_latest(storage, tmp_path, capsys):
    store(storage, site(SITE_A, timedelta(hours=1)))
    code = main(["scan", "--as-of", AS_OF.isoformat(), "--snapshot", storage.at("site-snapshots/"),
                 "--output", storage.at("reports/"), "-f", "json,sarif,html"])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    runs = {name.split("/")[1] for name in storage.names("reports/")} - {"latest"}
    [run] = runs
    assert f"Reports: {storage.at('reports/' + run)}/ (findings.json, results.sarif, report.html); latest: " \
           f"{storage.at('reports/latest')}" in out
    for name in ("findings.json", "results.sarif", "report.html"):
        assert storage.read(f"reports/{run}/{name}") == storage.read(f"reports/latest/{name}")
    assert storage.client.get_blob_client(f"reports/{run}/report.html").get_blob_properties() \
        .content_settings.content_type.startswith("text/html")
    assert not (tmp_path / "reports").exists() and not (tmp_path / "history.db").exists()  # nothing local
    # the next run compares with latest in storage, and latest holds only what that run wrote
    code = main(["scan", "--as-of", AS_OF.isoformat(), "--snapshot", storage.at("site-snapshots/"),
                 "--output", storage.at("reports/"), "-f", "json", "--compare", "latest", "-q"])
    assert code == EXIT_OK
    assert storage.names("reports/latest/") == ["reports/latest/findings.json"]
    latest = json.loads(storage.read("reports/latest/findings.json"))
    assert latest["compared_with"] == storage.at("reports/latest/findings.json")
    assert latest["summary"]["by_state"].get("new", 0) == 0 and latest["summary"]["by_state"]["unchanged"] > 0
    assert len({name.split("/")[1] for name in storage.names("reports/")} - {"latest"}) == 2


def test_a_history_named_beside_reports_in_storage_names_their_run_by_url(storage, tmp_path):
    import sqlite3

    store(storage, site(SITE_A, timedelta(hours=1)))
    assert main(["scan", "--as-of", AS_OF.isoformat(), "--snapshot", storage.at("site-snapshots/"), "-q",
                 "--output", storage.at("reports/"), "-f", "json", "--history", "history.db"]) == EXIT_OK
    [run] = {name.split("/")[1] for name in storage.names("reports/")} - {"latest"}
    with sqlite3.connect(tmp_path / "history.db") as database:
        assert database.execute("SELECT run FROM scans").fetchall() == [(storage.at(f"reports/{run}"),)]


# --- errors ---------------------------------------------------------------------------------

def test_a_missing_container_or_blob_is_one_line_with_exit_2(storage, capsys):
    assert main([*SCAN, "--snapshot", "az://no-such-container/site-snapshots/"]) == EXIT_INPUT_ERROR
    assert one_error_line(capsys.readouterr().err) == (
        "auditor: error: az://no-such-container/site-snapshots/: container 'no-such-container' not found in "
        f"storage account {ACCOUNT} (create it, or correct the name)")
    assert main([*SCAN, "--snapshot", storage.at("site-snapshots/x.json.gz")]) == EXIT_INPUT_ERROR
    assert "no such blob" in one_error_line(capsys.readouterr().err)
    assert main([*SCAN, "--snapshot", storage.at("empty/")]) == EXIT_INPUT_ERROR
    assert f"{storage.at('empty/')}: no snapshot under this prefix" in one_error_line(capsys.readouterr().err)


def test_a_blob_that_is_no_snapshot_is_named_with_exit_2(storage, capsys):
    storage.client.upload_blob("notes/page.json", b"<html>not json</html>")
    assert main([*SCAN, "--snapshot", storage.at("notes/page.json")]) == EXIT_INPUT_ERROR
    assert one_error_line(capsys.readouterr().err).startswith(
        f"auditor: error: {storage.at('notes/page.json')}:1: not a snapshot: invalid JSON")
    storage.client.upload_blob("other/x/20261120T060000Z.json.gz", gzip.compress(b'{"kind": "something else"}'))
    assert main([*SCAN, "--snapshot", storage.at("other/")]) == EXIT_INPUT_ERROR
    assert one_error_line(capsys.readouterr().err) == (
        f"auditor: error: {storage.at('other/x/20261120T060000Z.json.gz')}: not an auditor snapshot (expected "
        '"kind": "auditor.snapshot")')


def test_a_wrong_account_key_is_refused_in_one_line_without_the_key(storage, monkeypatch, capsys):
    store(storage, site(SITE_A, timedelta(hours=1)))
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="  # base64, as a real key, but not this account's
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", storage.azurite.connection_string(key=wrong))
    code = main([*SCAN, "--snapshot", storage.at("site-snapshots/"), "--log-level", "debug"])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE and wrong not in err and KEY not in err
    line = [line for line in err.splitlines() if "error" in line][-1]
    assert line.startswith(f"auditor: error: {storage.at('site-snapshots/')}: storage account {ACCOUNT} refused the "
                           "account key of AZURE_STORAGE_CONNECTION_STRING while listing snapshots (HTTP 403")
    # a key that is not even base64 is bad input: no request could be signed with it
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", storage.azurite.connection_string(key="not-base64!"))
    assert main([*SCAN, "--snapshot", storage.at("site-snapshots/")]) == EXIT_INPUT_ERROR
    assert "cannot sign requests with the account key of AZURE_STORAGE_CONNECTION_STRING" in capsys.readouterr().err


def test_a_sas_token_works_and_is_never_printed(storage, monkeypatch, capsys):
    store(storage, site(SITE_A, timedelta(hours=1)))
    read_only = storage.sas("rl")
    signature = dict(part.split("=", 1) for part in read_only.split("&"))["sig"]
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", read_only)
    # the account's URL form: the SAS comes from the environment, the place from the command line
    assert main([*SCAN, "--snapshot", storage.url("site-snapshots/"), "-o", "local"]) == EXIT_OK
    # may read, may not write: the report upload is refused, in one line without the SAS
    code = main([*SCAN, "--snapshot", storage.url("site-snapshots/"), "-o", storage.url("reports/"),
                 "--log-level", "debug"])
    out, err = capsys.readouterr()
    assert code == EXIT_INCOMPLETE
    assert f"storage account {ACCOUNT} refused the SAS token of AZURE_STORAGE_SAS_TOKEN while uploading the " \
           "reports (HTTP 403" in err
    assert signature not in out + err and read_only not in out + err
    expired = storage.sas("rl", timedelta(hours=-1))
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", expired)
    assert main([*SCAN, "--snapshot", storage.url("site-snapshots/")]) == EXIT_INCOMPLETE
    out, err = capsys.readouterr()
    assert "refused the SAS token of AZURE_STORAGE_SAS_TOKEN" in err
    assert dict(p.split("=", 1) for p in expired.split("&"))["sig"] not in out + err


def test_az_locations_need_an_account_from_the_environment(storage, monkeypatch, capsys):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    assert main([*SCAN, "--snapshot", storage.at("site-snapshots/")]) == EXIT_INPUT_ERROR
    assert "no storage account for az://: set AZURE_STORAGE_ACCOUNT" in one_error_line(capsys.readouterr().err)
    # plain http to the emulator never carries an Azure token: a key or SAS is needed
    assert main([*SCAN, "--snapshot", storage.url("site-snapshots/")]) == EXIT_INPUT_ERROR
    assert "an Azure token is never sent unencrypted" in one_error_line(capsys.readouterr().err)


def test_an_unreachable_account_is_one_line_with_exit_3_without_the_sas(storage, monkeypatch, capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # the SDK's connection errors quote the request URL, which carries the SAS
    sas = "sv=2024-11-04&ss=b&srt=co&sp=rl&se=2099-01-01T00:00:00Z&sig=UnreachableSignature0123456789%3D"
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    location = f"http://127.0.0.1:{port}/{ACCOUNT}/{storage.name}/site-snapshots/"
    assert main([*SCAN, "--snapshot", location]) == EXIT_INCOMPLETE
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"auditor: error: {location}: cannot reach storage account {ACCOUNT} at "
                           f"http://127.0.0.1:{port}/{ACCOUNT} while listing snapshots: ")
    assert "UnreachableSignature" not in line and "Connection refused" in line


def test_a_stalled_account_times_out(storage, capsys):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = silent.getsockname()[1]
    location = f"http://127.0.0.1:{port}/{ACCOUNT}/{storage.name}/site-snapshots/"
    try:
        started = time.monotonic()
        code = main([*SCAN, "--snapshot", location, "--storage-timeout", "1"])
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        silent.close()
    assert code == EXIT_INCOMPLETE and elapsed < 20
    assert one_error_line(capsys.readouterr().err) == (
        f"auditor: error: {location}: storage account {ACCOUNT} at http://127.0.0.1:{port}/{ACCOUNT} timed out "
        "after 1 s (listing snapshots)")


def test_a_sas_pasted_onto_an_az_location_is_refused_unechoed(capsys):
    with pytest.raises(ValueError) as refused:
        parse_location("az://site-data/x.json.gz?sv=2024&sig=SUPERSECRETSIG123")
    assert "SUPERSECRETSIG123" not in str(refused.value) and "query string" in str(refused.value)


def test_a_name_dated_in_the_future_or_in_a_sub_folder_does_not_shadow_the_newest(storage, tmp_path):
    """A site's create-and-write SAS may add a blob to another site's folder: one named for
    9999 would otherwise be that site's newest for ever; an archive folder is no site."""
    from auditor.snapshot import save_snapshot as save

    real = store(storage, site(SITE_A, timedelta(hours=1)))
    folder = real.path.rpartition("/")[0]
    forged = site(SITE_A, timedelta(minutes=1), drop=50)
    save(forged, tmp_path / "forged.json.gz")
    storage.client.upload_blob(f"{folder}/99991231T235959Z.json.gz", (tmp_path / "forged.json.gz").read_bytes())
    storage.client.upload_blob(f"{folder}/archive/20261101T000000Z.json.gz",
                               (tmp_path / "forged.json.gz").read_bytes())
    assert main([*SCAN, "--snapshot", storage.at("site-snapshots/")]) == EXIT_OK
    assert report(tmp_path)["snapshot"]["resource_count"] == len(site(SITE_A, timedelta(hours=1)).resources)


def test_a_timeout_while_the_body_is_read_is_not_tried_again():
    """requests hands a timeout during the body to azure-core as a connection error, with the
    timeout behind it: not tried again, as a timeout before the answer is not. The near miss:
    a connection reset is."""
    import requests
    import urllib3
    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.pipeline.transport import HttpRequest

    from auditor.blob import _retry_policy_class

    policy = _retry_policy_class()(initial_backoff=1, increment_base=2, retry_total=3)
    request = PipelineRequest(HttpRequest("GET", "https://account.blob.core.windows.net/c?restype=container"),
                              PipelineContext(None))
    read_timeout = urllib3.exceptions.ReadTimeoutError(None, None, "Read timed out.")
    read_timeout.__cause__ = TimeoutError("timed out")
    wrapped = requests.exceptions.ConnectionError(read_timeout)
    timed_out = ServiceRequestError(wrapped, error=wrapped)
    assert policy.increment(policy.configure_retries(request), request.http_request, error=timed_out) is False
    reset = ServiceRequestError("connection reset", error=ConnectionResetError())
    assert policy.increment(policy.configure_retries(request), request.http_request, error=reset) is True
