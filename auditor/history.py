"""Scan history in an embedded SQLite database (default `reports/history.db`).

Each scan adds a row to `scans` (when, sources, counts by severity) and updates
`findings` (fingerprint -> first seen, last seen), so reports can show the trend of open
findings over the last scans and how old each finding is. One transaction per scan: an
interrupted scan leaves the history as it was.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from .errors import InputError
from .findings import SEVERITY_RANK, ScanReport

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scanned_at TEXT NOT NULL, as_of TEXT NOT NULL,
    collected_at TEXT NOT NULL, sources TEXT NOT NULL, resource_count INTEGER NOT NULL,
    incomplete INTEGER NOT NULL, total INTEGER NOT NULL, suppressed INTEGER NOT NULL,
    critical INTEGER NOT NULL, high INTEGER NOT NULL, medium INTEGER NOT NULL, low INTEGER NOT NULL,
    info INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS findings (
    fingerprint TEXT PRIMARY KEY, rule_id TEXT NOT NULL, resource_id TEXT NOT NULL,
    severity TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    last_scan INTEGER NOT NULL REFERENCES scans(id));
"""


def _open(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=30)
        connection.executescript(_SCHEMA)
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            connection.commit()
        elif int(row[0]) > SCHEMA_VERSION:
            connection.close()
            raise InputError(f"history schema {row[0]} is newer than this auditor reads; upgrade auditor",
                             where=str(path))
        return connection
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a usable history database ({exc}); pass --history with another path "
                         "or --no-history", where=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot open history database: {exc.strerror}", where=str(path)) from None


def record(path: Path, report: ScanReport, trend_scans: int = 20) -> None:
    """Add this scan to the history; fill each finding's first_seen and the report's trend."""
    live = [f for f in report.findings if f.state != "absent"]
    counts = {severity: 0 for severity in SEVERITY_RANK}
    for finding in live:
        if finding.suppression is None:
            counts[finding.severity] += 1
    with closing(_open(path)) as db:
        try:
            with db:  # one transaction
                cursor = db.execute(
                    "INSERT INTO scans (scanned_at, as_of, collected_at, sources, resource_count, incomplete, total,"
                    " suppressed, critical, high, medium, low, info) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (report.scanned_at, report.as_of, report.collected_at,
                     json.dumps([{"id": s["id"], "status": s.get("status", "ok")} for s in report.sources]),
                     report.resource_count, int(report.incomplete), sum(counts.values()),
                     sum(1 for f in live if f.suppression), *counts.values()))
                scan_id = cursor.lastrowid
                db.executemany(
                    "INSERT INTO findings (fingerprint, rule_id, resource_id, severity, first_seen, last_seen,"
                    " last_scan) VALUES (?,?,?,?,?,?,?) ON CONFLICT(fingerprint) DO UPDATE SET"
                    " last_seen = excluded.last_seen, last_scan = excluded.last_scan, severity = excluded.severity",
                    [(f.fingerprint, f.rule_id, f.resource_id, f.severity, report.scanned_at, report.scanned_at,
                      scan_id) for f in live])
                first_seen = dict(db.execute(
                    "SELECT fingerprint, first_seen FROM findings WHERE last_scan = ?", (scan_id,)))
                report.history = [dict(zip(("id", "scanned_at", *SEVERITY_RANK, "total"), row, strict=True))
                                  for row in db.execute(
                                      "SELECT id, scanned_at, critical, high, medium, low, info, total FROM scans"
                                      " ORDER BY id DESC LIMIT ?", (trend_scans,))][::-1]
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot write history ({exc})", where=str(path)) from None
    for finding in live:
        finding.first_seen = first_seen.get(finding.fingerprint)


def scans(path: Path, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent scans, newest first."""
    if not path.exists():
        raise InputError("no history database here yet (scans create it)", where=str(path))
    with closing(_open(path)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM scans ORDER BY id DESC LIMIT ?", (limit,))]
