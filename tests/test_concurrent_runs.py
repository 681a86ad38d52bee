"""Scans that share an output folder: concurrent runs, `kill -9` at any point, leftovers swept.

Real processes (`python -m auditor scan` of the bundled sample), because what is under test
is what the kernel and SQLite do between processes. Each test prints its random seed.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import AS_OF, ROOT
from tests.postgres import history_db_fixture  # noqa: F401 (the history_db fixture: SQLite and PostgreSQL)

OUTPUTS = {"findings.json", "results.sarif", "report.html", "junit.xml"}
SCAN = [sys.executable, "-m", "auditor", "scan", "-q", "--as-of", AS_OF.isoformat()]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
ROUNDS = 10


def start(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*SCAN, "--output", str(out), *extra], cwd=out.parent, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[str]) -> None:
    """Wait for a scan that must end as a normal sample scan does: exit 0, no traceback."""
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err, err


def timed_scan(out: Path) -> float:
    began = time.perf_counter()
    finish(start(out))
    return time.perf_counter() - began


def seeded() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"random seed {seed}")  # shown when the test fails
    return random.Random(seed)


def complete(run: Path) -> bool:
    """Every output of a run is there, and whole (findings.json parses)."""
    if not run.is_dir() or {p.name for p in run.iterdir()} != OUTPUTS:
        return False
    json.loads((run / "findings.json").read_text(encoding="utf-8"))
    return True


def run_folders(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")}


def history_runs(out: Path) -> list[str | None]:
    with closing(sqlite3.connect(out / "history.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return [row[0] for row in db.execute("SELECT run FROM scans ORDER BY id")]


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def check_consistent(out: Path) -> tuple[set[str], list[str | None]]:
    """Every run folder is complete, every history row names one, `latest` is a complete run
    with a history row; returns the run folders and the history's runs."""
    folders = run_folders(out)
    rows = history_runs(out)
    assert all(complete(out / name) for name in folders), folders
    assert set(rows) <= folders, (rows, folders)
    latest = out / "latest"
    if latest.exists() or latest.is_symlink():
        assert latest.is_symlink() and os.readlink(latest) in rows and complete(latest), os.readlink(latest)
    return folders, rows


def test_concurrent_scans_into_one_folder_all_succeed(tmp_path):
    out = tmp_path / "reports"
    rng = seeded()
    for done in range(2, 2 * ROUNDS + 1, 2):
        first = start(out)
        if done % 4 == 0:  # every other pair staggered: one starts (and sweeps) while the other writes
            time.sleep(rng.uniform(0.0, 0.4))
        second = start(out)
        finish(first)
        finish(second)
        folders, rows = check_consistent(out)
        assert len(folders) == len(rows) == done and set(rows) == folders
        assert leftovers(out) == []


def test_scans_killed_at_random_points_leave_only_a_staging_folder_the_next_scan_removes(tmp_path):
    out = tmp_path / "reports"
    rng = seeded()
    finish(start(out))  # the first run creates the folder and the history: slower than the rest
    duration = min(timed_scan(out) for _ in range(2))  # of a whole run, on this machine now
    killed = staged = 0
    for _ in range(ROUNDS):
        before = set(os.listdir(out))
        latest = os.readlink(out / "latest")
        # two at once, each killed at its own point: one anywhere in the run, one in its second
        # half, where the history is read, the reports written, the run claimed, `latest` moved
        delays = sorted([rng.uniform(0.0, duration), rng.uniform(duration / 2, duration)])
        victims = [start(out) for _ in delays]
        began = time.perf_counter()
        for victim, delay in zip(victims, delays, strict=True):
            time.sleep(max(0.0, delay - (time.perf_counter() - began)))
            victim.kill()
        for victim in victims:
            victim.communicate(timeout=60)
            assert victim.returncode in (0, -signal.SIGKILL), victim.returncode
            killed += victim.returncode == -signal.SIGKILL
        folders, rows = check_consistent(out)
        for name in set(os.listdir(out)) - before:
            # traces allowed: a staging folder; the temporary link of a `latest` swap it was
            # killed in; a run the victim finished; SQLite's journal of a transaction it was
            # killed in (the next connection rolls it back). The next scan removes them all.
            assert (name.startswith((".auditor-staging.", ".auditor-latest.")) or name in folders
                    or name == "history.db-journal"), name
            staged += name.startswith(".auditor-staging.")
        if os.readlink(out / "latest") != latest:
            assert os.readlink(out / "latest") in rows
    print(f"{killed} scans killed before they ended, {staged} of them left a staging folder")
    assert killed >= ROUNDS, f"only {killed} scans were killed before they ended"
    finish(start(out))
    check_consistent(out)
    assert leftovers(out) == []


def caught_writing(out: Path) -> tuple[subprocess.Popen[str], Path]:
    """A scan stopped (SIGSTOP) while its staging folder is there and the output folder's
    own lock is free, so that other scans do not wait for it."""
    for _ in range(50):
        scan = start(out)
        staging = None
        while staging is None and scan.poll() is None:
            staging = next((out / name for name in os.listdir(out) if name.startswith(".")
                            and (out / name).is_dir()), None)
        if staging is not None:
            scan.send_signal(signal.SIGSTOP)
            fd = os.open(out, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                free = True
            except BlockingIOError:
                free = False
            finally:
                os.close(fd)
            if free and staging.is_dir():
                return scan, staging
            scan.send_signal(signal.SIGCONT)
        finish(scan)
    pytest.fail("never caught a scan while it wrote its staging folder")


def test_a_running_scans_staging_folder_stays_and_a_killed_ones_goes(tmp_path):
    out = tmp_path / "reports"
    finish(start(out))
    stopped, staging = caught_writing(out)  # the tries before this one finished normally
    runs_before = len(run_folders(out))
    try:
        finish(start(out))  # starts, sweeps and finishes while the stopped scan is mid-write
        assert staging.is_dir()
    finally:
        stopped.send_signal(signal.SIGCONT)
    finish(stopped)
    folders, rows = check_consistent(out)
    assert len(folders) == len(rows) == runs_before + 2 and leftovers(out) == []

    stopped, staging = caught_writing(out)
    runs_before = len(run_folders(out))
    stopped.kill()
    stopped.communicate(timeout=60)
    assert staging.is_dir()
    finish(start(out))
    assert not staging.exists() and leftovers(out) == []
    folders, rows = check_consistent(out)
    assert len(folders) == len(rows) == runs_before + 1


def test_leftovers_of_older_versions_go_once_an_hour_old(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    old = time.time() - 2 * 3600
    for name in (".20260101T000000Z.abcd_123", ".20260101T000000Z-2.x1y2z3w4", ".latest.k9z_ab12"):
        (out / name).mkdir()
        (out / name / "findings.json").write_text("{")
        os.utime(out / name, (old, old))
    os.symlink("20260101T000000Z", out / ".latest.4242")
    os.utime(out / ".latest.4242", (old, old), follow_symlinks=False)
    (out / ".latest.txt").write_text("a user's file")  # not a name auditor ever made
    os.utime(out / ".latest.txt", (old, old))
    (out / ".20260102T000000Z.recent12").mkdir()  # could still be an older auditor, writing
    finish(start(out))
    assert leftovers(out) == [".20260102T000000Z.recent12", ".latest.txt"]


def test_a_history_database_of_an_older_auditor_stays_readable(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    with closing(sqlite3.connect(out / "history.db")) as db, db:  # the schema before `scans.run`
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE scans (
                id INTEGER PRIMARY KEY AUTOINCREMENT, scanned_at TEXT NOT NULL, as_of TEXT NOT NULL,
                collected_at TEXT NOT NULL, sources TEXT NOT NULL, resource_count INTEGER NOT NULL,
                incomplete INTEGER NOT NULL, total INTEGER NOT NULL, suppressed INTEGER NOT NULL,
                critical INTEGER NOT NULL, high INTEGER NOT NULL, medium INTEGER NOT NULL, low INTEGER NOT NULL,
                info INTEGER NOT NULL);
            CREATE TABLE findings (
                fingerprint TEXT PRIMARY KEY, rule_id TEXT NOT NULL, resource_id TEXT NOT NULL,
                severity TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
                last_scan INTEGER NOT NULL REFERENCES scans(id));
            INSERT INTO meta VALUES ('schema_version', '1');
            INSERT INTO scans VALUES (1, '2026-11-01T00:00:00Z', '2026-11-01', '2026-11-01T00:00:00Z', '[]', 1,
                                      0, 3, 0, 0, 1, 1, 1, 0);
        """)
    listed = subprocess.run([sys.executable, "-m", "auditor", "history", "--history", str(out / "history.db")],
                            cwd=tmp_path, env=ENV, text=True, capture_output=True)
    assert listed.returncode == 0 and "2026-11-01T00:00:00Z" in listed.stdout, listed.stderr
    finish(start(out))
    assert history_runs(out) == [None, os.readlink(out / "latest")]
    document = json.loads((out / "latest" / "findings.json").read_text(encoding="utf-8"))
    assert [scan["id"] for scan in document["history"]] == [1, None]  # this scan's row came after the report
    with closing(sqlite3.connect(out / "history.db")) as db:  # what older auditors check
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)


def test_standard_output_writes_no_folder(tmp_path, history_db):
    result = subprocess.run([*SCAN, "-f", "json", "-o", "-", *history_db.flags], cwd=tmp_path,
                            env={**ENV, **history_db.env}, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schema"] == "auditor.findings"
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == history_db.local_files  # the history's own file
    assert history_db.rows("SELECT run FROM scans") == [(None,)]
