"""Scan history: an embedded SQLite file by default, or a team's PostgreSQL database.

Each scan adds a row to `scans` (when, sources, counts by severity, its run folder) and
updates `findings` (fingerprint -> first seen, last seen), so reports can show the trend of
open findings over the last scans and how old each finding is.

`--history` takes a path (SQLite, `auditor/history_sqlite.py`; the default
`OUTPUT/history.db`) or a libpq connection string, `postgresql://user@host:port/db` or
`host=... dbname=...` (PostgreSQL, `auditor/history_postgres.py`), for scans that run on
ephemeral CI runners or pods, where a file would be lost between runs. A connection string
never carries the password: libpq takes it from PGPASSWORD or ~/.pgpass (PGPASSFILE), and a
password in the string is refused without being echoed, since the value shows in process
lists, shell histories and CI logs.

Both backends share the logic here and differ only in how they store and read:

- `check` (before anything is collected): the database can be opened and its schema is
  one this auditor reads, so a wrong password fails a scan before a long live collection.
- `prepare` (before the report is written): each finding's first-seen date and the trend.
- `record` (once the report is complete): the scan's row and every finding's sighting, in
  one transaction, so a scan killed at any point leaves no row without a report.

Scans that record at once (two sites, one database) are serialized by the database (SQLite's
write lock, a PostgreSQL advisory lock), and the upsert keeps each finding's earliest first
sighting and latest last one whatever order their transactions commit in.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .findings import NOT_CURRENT, SEVERITY_RANK, Finding, ScanReport

# `scans.run` came later without a version bump: a nullable column that older auditors,
# which name the columns they insert and read, pass over
SCHEMA_VERSION = 1
TREND_SCANS = 20  # scans the report's trend chart shows, this one included
SCAN_COLUMNS = ("scanned_at", "as_of", "collected_at", "sources", "resource_count", "incomplete", "total",
                "suppressed", *SEVERITY_RANK, "run")
TREND_COLUMNS = ("id", "scanned_at", *SEVERITY_RANK, "total")
# the ON CONFLICT clause of both backends (CASE rather than min/max: SQLite's scalar max()
# is PostgreSQL's GREATEST). Scans recording at once may commit in either order: the
# earliest first sighting and the latest last sighting win, and the finding's severity and
# last scan are those of its latest sighting
UPSERT_SIGHTING = """ON CONFLICT (fingerprint) DO UPDATE SET
    first_seen = CASE WHEN excluded.first_seen < findings.first_seen THEN excluded.first_seen
                      ELSE findings.first_seen END,
    last_seen = CASE WHEN excluded.last_seen >= findings.last_seen THEN excluded.last_seen
                     ELSE findings.last_seen END,
    last_scan = CASE WHEN excluded.last_seen >= findings.last_seen THEN excluded.last_scan
                     ELSE findings.last_scan END,
    severity = CASE WHEN excluded.last_seen >= findings.last_seen THEN excluded.severity
                    ELSE findings.severity END"""


@dataclass(frozen=True)
class PostgresDatabase:
    """A PostgreSQL history, named by a libpq connection string (URL or key=value) that
    holds no password: `history_location` refuses one."""

    conninfo: str

    def __str__(self) -> str:
        return scrub(self.conninfo)  # messages name the database this way (and could never leak one)


HistoryLocation = Path | PostgresDatabase

_SCHEMES = ("postgresql://", "postgres://")
# libpq's connection keywords (PostgreSQL 16): a value that starts with one of them and `=`
# is a key=value connection string, not a file name (`./host=x.db` names such a file)
_LIBPQ_KEYWORDS = frozenset((
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding", "connect_timeout",
    "client_encoding", "options", "application_name", "fallback_application_name", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode", "sslrootcert", "sslcrl",
    "sslcrldir", "sslsni", "requirepeer", "require_auth", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "krbsrvname", "gsslib", "gssdelegation", "service", "target_session_attrs", "load_balance_hosts"))
_FIRST_KEYWORD = re.compile(r"\s*([A-Za-z_]+)\s*=")
# what could be a password in a connection string: the userinfo of a URL (to its last `@`,
# over-scrubbing rather than under-), and password= or sslpassword= in key=value form or in
# a URL's query
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/?#@\s:]*:)[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&'][^\s&]*)")
MASK = "***"


def _mask_connection_passwords(text: str) -> str:
    """`text` with every password a connection string in it could carry masked."""
    return _KEYWORD_PASSWORD.sub(lambda m: m[1] + MASK, _URL_PASSWORD.sub(lambda m: m[1] + MASK + "@", text))


def scrub(text: str) -> str:
    """`text` with every password a connection string in it could carry masked, and the
    value of PGPASSWORD wherever it appears: for every message and log line that may quote
    a connection string or a driver's error."""
    text = _mask_connection_passwords(text)
    secret = os.environ.get("PGPASSWORD")
    return text.replace(secret, MASK) if secret and len(secret) >= 4 else text


def is_postgres(text: str) -> bool:
    """Whether a --history value is a PostgreSQL connection string rather than a path."""
    if text.strip().lower().startswith(_SCHEMES):
        return True
    keyword = _FIRST_KEYWORD.match(text)
    return keyword is not None and keyword[1].lower() in _LIBPQ_KEYWORDS


def history_location(text: str) -> HistoryLocation:
    """The --history value (flag, AUDITOR_HISTORY or config file): a path of a SQLite file,
    or a PostgreSQL connection string without a password. ValueError (without the password)
    when it is neither."""
    if not text.strip():
        raise ValueError("must not be empty")
    if not is_postgres(text):
        return Path(text)
    if _mask_connection_passwords(text) != text:  # not scrub(): PGPASSWORD may well be "auditor" too
        raise ValueError(f"'{scrub(text)}' carries a password, which would show in process lists, shell "
                         "histories and logs: remove it, and set PGPASSWORD or a ~/.pgpass line instead")
    from .history_postgres import check_conninfo

    return PostgresDatabase(check_conninfo(text.strip()))


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


@dataclass(frozen=True)
class Sighting:
    """What `record` stores of one finding; the backend adds the scan's time and id."""

    fingerprint: str
    rule_id: str
    resource_id: str
    severity: str


def check_version(found: object, where: str) -> None:
    """Refuse a history whose schema a newer auditor wrote (or that is no history of ours)."""
    try:
        version = int(str(found))
    except ValueError:
        raise InputError(f"not a usable history database (schema version {found!r}); pass --history with "
                         "another database or --no-history", where=where) from None
    if version > SCHEMA_VERSION:
        raise InputError(f"history schema {version} is newer than this auditor reads; upgrade auditor",
                         where=where)


class History(ABC):
    """One scan history database. The scan pipeline uses `check`, `prepare` and `record`;
    `auditor history` uses `scans`. A backend implements the abstract methods: checking,
    reading, writing in one transaction, listing, naming a run folder."""

    where: str  # how messages name the database: a path, or a connection string without password

    def prepare(self, report: ScanReport, trend_scans: int = TREND_SCANS) -> None:
        """Fill each finding's first_seen and the report's trend from the history, before the
        report is written; `record` adds the scan once the report is complete.

        The trend ends with this scan, whose point has no id yet. Opening the database here
        also stops a scan with an unusable one before any report is written.
        """
        live, counts = _counts(report)
        recorded, first_seen = self.read(max(trend_scans - 1, 0), sorted({f.fingerprint for f in live}))
        for scan in recorded:  # a database edited by hand must not break the report's trend chart
            if not isinstance(scan["scanned_at"], str) or not all(
                    isinstance(scan[key], int) and not isinstance(scan[key], bool)
                    for key in (*SEVERITY_RANK, "total")):
                raise InputError(f"scan {scan['id']} of the history has counts that are not numbers (edited by "
                                 "hand?); pass --history with another database", where=self.where)
        report.history = [*recorded,
                          {"id": None, "scanned_at": report.scanned_at, **counts, "total": sum(counts.values())}]
        for finding in live:
            finding.first_seen = first_seen.get(finding.fingerprint, report.scanned_at)

    def record(self, report: ScanReport, run: Path | None = None) -> int:
        """Add this scan to the history in one transaction and return its id: a row in
        `scans` (naming the run folder, when there is one) and each finding's sighting.

        Call it once the report is complete (the run folder in place): a scan killed before
        leaves no row, one killed during leaves the history as it was.
        """
        live, counts = _counts(report)
        scan = dict(zip(SCAN_COLUMNS, (
            report.scanned_at, report.as_of, report.collected_at,
            json.dumps([{"id": s["id"], "status": s.get("status", "ok")} for s in report.sources]),
            report.resource_count, int(report.incomplete), sum(counts.values()),
            sum(1 for f in live if f.suppression), *counts.values(),
            None if run is None else self.run_name(run)), strict=True))
        # one sighting per fingerprint, in one order: concurrent writers then take their row
        # locks in the same order, and an upsert never meets its own row twice
        sightings = {f.fingerprint: Sighting(f.fingerprint, f.rule_id, f.resource_id, f.severity) for f in live}
        return self.write(scan, [sightings[key] for key in sorted(sightings)])

    @abstractmethod
    def check(self) -> None:
        """Open the database and check its schema version, writing nothing: an unusable
        history stops a scan before it collects."""

    @abstractmethod
    def read(self, trend_scans: int, fingerprints: list[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The last `trend_scans` scans (TREND_COLUMNS, oldest first) and the first sighting
        of each of `fingerprints` that the history knows."""

    @abstractmethod
    def write(self, scan: dict[str, Any], sightings: list[Sighting]) -> int:
        """In one transaction: insert the scan (SCAN_COLUMNS) and upsert its sightings at
        `scan["scanned_at"]` with UPSERT_SIGHTING; the scan's id."""

    @abstractmethod
    def scans(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent scans, newest first, each with every column of `scans`."""

    @abstractmethod
    def run_name(self, run: Path) -> str:
        """How the history names a run folder."""


def open_history(location: HistoryLocation) -> History:
    """The backend for a --history value."""
    if isinstance(location, PostgresDatabase):
        from .history_postgres import PostgresHistory

        return PostgresHistory(location)
    from .history_sqlite import SqliteHistory

    return SqliteHistory(location)


# --- what the pipeline and the CLI call ----------------------------------------------------

def check(location: HistoryLocation) -> None:
    """Stop early on a history that cannot be used (see `History.check`)."""
    open_history(location).check()


def prepare(location: HistoryLocation, report: ScanReport, trend_scans: int = TREND_SCANS) -> None:
    """First-seen dates and the trend for the report (see `History.prepare`)."""
    open_history(location).prepare(report, trend_scans)


def record(location: HistoryLocation, report: ScanReport, run: Path | None = None) -> int:
    """Record a complete scan; its id (see `History.record`)."""
    return open_history(location).record(report, run)


def scans(location: HistoryLocation, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent scans, newest first."""
    return open_history(location).scans(limit)
