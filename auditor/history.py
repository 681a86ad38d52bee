"""Scan history in an embedded SQLite database (default `reports/history.db`).

Each scan adds a row to `scans` (when, sources, counts by severity, its run folder) and
updates `findings` (fingerprint -> first seen, last seen), so reports can show the trend of
open findings over the last scans and how old each finding is.

A scan reads the history before it writes its report (`prepare`: first-seen dates and the
trend go into the report) and adds its row only once the report is complete (`record`), in
one transaction: a scan killed at any point leaves no row without a report. Concurrent scans
wait for each other's transaction (a busy timeout) rather than fail on a locked database.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from .errors import InputError
from .findings import NOT_CURRENT, SEVERITY_RANK, Finding, ScanReport

# `scans.run` came later without a version bump: a nullable column that older auditors,
# which name the columns they insert and read, pass over
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scanned_at TEXT NOT NULL, as_of TEXT NOT NULL,
    collected_at TEXT NOT NULL, sources TEXT NOT NULL, resource_count INTEGER NOT NULL,
    incomplete INTEGER NOT NULL, total INTEGER NOT NULL, suppressed INTEGER NOT NULL,
    critical INTEGER NOT NULL, high INTEGER NOT NULL, medium INTEGER NOT NULL, low INTEGER NOT NULL,
    info INTEGER NOT NULL, run TEXT);
CREATE TABLE IF NOT EXISTS findings (
    fingerprint TEXT PRIMARY KEY, rule_id TEXT NOT NULL, resource_id TEXT NOT NULL,
    severity TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    last_scan INTEGER NOT NULL REFERENCES scans(id));
"""
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another scan's transaction, which takes milliseconds
_CHUNK = 500  # bound parameters per query: old SQLite builds allow 999


def _open(path: Path, write: bool = True) -> sqlite3.Connection:
    """Open (creating or, to `write`, upgrading) the history database."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit: transactions are opened explicitly (BEGIN IMMEDIATE), so a writer takes
        # the write lock up front and waits for it, rather than failing on an upgrade
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        connection.executescript(_SCHEMA)
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            # OR IGNORE: two first scans may create the database at once
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            connection.close()
            raise InputError(f"history schema {row[0]} is newer than this auditor reads; upgrade auditor",
                             where=str(path))
        if write and "run" not in {column[1] for column in connection.execute("PRAGMA table_info(scans)")}:
            try:
                connection.execute("ALTER TABLE scans ADD COLUMN run TEXT")  # a database of an older auditor
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another scan added it first
                    raise
        return connection
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a usable history database ({exc}); pass --history with another path "
                         "or --no-history", where=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot open history database: {exc.strerror}", where=str(path)) from None


def _counts(report: ScanReport) -> tuple[list[Finding], dict[str, int]]:
    """The findings still present (unknown ones too: still believed open, their sighting
    carries on), and the open ones by severity: current and unwaived, so that a scan whose
    source failed does not count what it could not look at as open."""
    live = [f for f in report.findings if f.state != "absent"]
    counts = {severity: 0 for severity in SEVERITY_RANK}
    for finding in live:
        if finding.suppression is None and finding.state not in NOT_CURRENT:
            counts[finding.severity] += 1
    return live, counts


def prepare(path: Path, report: ScanReport, trend_scans: int = 20) -> None:
    """Fill each finding's first_seen and the report's trend from the history, before the
    report is written; `record` adds the scan once the report is complete.

    The trend ends with this scan, whose point has no id yet. Opening the database here also
    stops a scan with an unusable one before any report is written.
    """
    live, counts = _counts(report)
    with closing(_open(path)) as db:
        try:
            recorded = [dict(zip(("id", "scanned_at", *SEVERITY_RANK, "total"), row, strict=True))
                        for row in db.execute(
                            "SELECT id, scanned_at, critical, high, medium, low, info, total FROM scans"
                            " ORDER BY id DESC LIMIT ?", (max(trend_scans - 1, 0),))][::-1]
            fingerprints = sorted({f.fingerprint for f in live})
            first_seen: dict[str, str] = {}
            for start in range(0, len(fingerprints), _CHUNK):
                chunk = fingerprints[start:start + _CHUNK]
                first_seen.update(db.execute(
                    f"SELECT fingerprint, first_seen FROM findings WHERE fingerprint IN ({','.join('?' * len(chunk))})",
                    chunk))
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot read history ({exc})", where=str(path)) from None
    for scan in recorded:  # a database edited by hand must not break the report's trend chart
        if not isinstance(scan["scanned_at"], str) or not all(
                isinstance(scan[key], int) and not isinstance(scan[key], bool) for key in (*SEVERITY_RANK, "total")):
            raise InputError(f"scan {scan['id']} of the history has counts that are not numbers (edited by "
                             "hand?); pass --history with another database", where=str(path))
    report.history = [*recorded, {"id": None, "scanned_at": report.scanned_at, **counts, "total": sum(counts.values())}]
    for finding in live:
        finding.first_seen = first_seen.get(finding.fingerprint, report.scanned_at)


def record(path: Path, report: ScanReport, run: Path | None = None) -> int:
    """Add this scan to the history in one transaction and return its id: a row in `scans`
    (naming the run folder, when there is one) and each finding's last sighting.

    Call it once the report is complete (the run folder in place): a scan killed before
    leaves no row, one killed during leaves the history as it was.
    """
    live, counts = _counts(report)
    with closing(_open(path)) as db:
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock now, waiting up to BUSY_TIMEOUT for it
            try:
                cursor = db.execute(
                    "INSERT INTO scans (scanned_at, as_of, collected_at, sources, resource_count, incomplete, total,"
                    " suppressed, critical, high, medium, low, info, run) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (report.scanned_at, report.as_of, report.collected_at,
                     json.dumps([{"id": s["id"], "status": s.get("status", "ok")} for s in report.sources]),
                     report.resource_count, int(report.incomplete), sum(counts.values()),
                     sum(1 for f in live if f.suppression), *counts.values(),
                     None if run is None else run_name(path, run)))
                scan_id = cursor.lastrowid
                db.executemany(
                    "INSERT INTO findings (fingerprint, rule_id, resource_id, severity, first_seen, last_seen,"
                    " last_scan) VALUES (?,?,?,?,?,?,?) ON CONFLICT(fingerprint) DO UPDATE SET"
                    " last_seen = excluded.last_seen, last_scan = excluded.last_scan, severity = excluded.severity",
                    [(f.fingerprint, f.rule_id, f.resource_id, f.severity, report.scanned_at, report.scanned_at,
                      scan_id) for f in live])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot write history ({exc})", where=str(path)) from None
    assert scan_id is not None
    return scan_id


def run_name(path: Path, run: Path) -> str:
    """How the history at `path` names a run folder: relative to the database's folder when
    it is inside it (the default `OUTPUT/history.db`), so the pair can move together; else
    absolute."""
    run = run.resolve()
    try:
        return run.relative_to(path.resolve().parent).as_posix()
    except ValueError:
        return str(run)


def scans(path: Path, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent scans, newest first."""
    if not path.exists():
        raise InputError("no history database here yet (scans create it)", where=str(path))
    with closing(_open(path, write=False)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM scans ORDER BY id DESC LIMIT ?", (limit,))]
