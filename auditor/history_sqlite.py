"""The scan history in an embedded SQLite file (the default: `OUTPUT/history.db`).

Concurrent scans on one machine wait for each other's transaction (a busy timeout) rather
than fail on a locked database; a writer takes the write lock up front (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from .errors import InputError
from .history import SCHEMA_VERSION, TREND_COLUMNS, UPSERT_SIGHTING, History, Sighting, check_version, schema

_SCHEMA = schema("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER")
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another scan's transaction, which takes milliseconds
_CHUNK = 500  # bound parameters per query: old SQLite builds allow 999


class SqliteHistory(History):
    """A history file; created, with its folder, by the first scan that prepares it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def _open(self, write: bool = True) -> sqlite3.Connection:
        """Open (creating or, to `write`, upgrading) the history database."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit: transactions are opened explicitly (BEGIN IMMEDIATE), so a writer takes
            # the write lock up front and waits for it, rather than failing on an upgrade
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            try:
                connection.executescript(_SCHEMA)
                row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    # OR IGNORE: two first scans may create the database at once
                    connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                       (str(SCHEMA_VERSION),))
                else:
                    check_version(row[0], self.where)
                if write and "run" not in {column[1] for column in connection.execute("PRAGMA table_info(scans)")}:
                    try:
                        connection.execute("ALTER TABLE scans ADD COLUMN run TEXT")  # a database of an older auditor
                    except sqlite3.OperationalError as exc:
                        if "duplicate column" not in str(exc):  # another scan added it first
                            raise
            except BaseException:
                connection.close()
                raise
            return connection
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from None
        except OSError as exc:
            raise InputError(f"cannot open history database: {exc.strerror}", where=self.where) from None

    def _unusable(self, exc: sqlite3.DatabaseError) -> InputError:
        return InputError(f"not a usable history database ({exc}); pass --history with another path "
                          "or --no-history", where=self.where)

    def check(self) -> None:
        """A history file that is there must be a database of a schema we read; a missing
        one is created by `prepare` (not here: a scan that stops on bad input leaves none)."""
        if not self.path.exists():
            return
        try:
            # read-write without create (mode=rw), so that checking creates nothing yet can roll
            # back the hot journal a scan killed mid-transaction left (read-only cannot);
            # a writer's lock is waited for
            with closing(sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True,
                                         timeout=BUSY_TIMEOUT)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "meta" in tables:
                    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                    if row is not None:
                        check_version(row[0], self.where)
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from None

    def read(self, trend_scans: int, fingerprints: list[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The trend's scans and the known first sightings (see History.read)."""
        with closing(self._open()) as db:
            try:
                recorded = [dict(zip(TREND_COLUMNS, row, strict=True)) for row in db.execute(
                    f"SELECT {', '.join(TREND_COLUMNS)} FROM scans ORDER BY id DESC LIMIT ?", (trend_scans,))][::-1]
                first_seen: dict[str, str] = {}
                for start in range(0, len(fingerprints), _CHUNK):
                    chunk = fingerprints[start:start + _CHUNK]
                    first_seen.update(db.execute(
                        "SELECT fingerprint, first_seen FROM findings WHERE fingerprint IN"
                        f" ({','.join('?' * len(chunk))})", chunk))
            except sqlite3.DatabaseError as exc:
                raise InputError(f"cannot read history ({exc})", where=self.where) from None
        return recorded, first_seen

    def write(self, scan: dict[str, Any], sightings: list[Sighting]) -> int:
        """The scan and its sightings in one IMMEDIATE transaction (see History.write)."""
        with closing(self._open()) as db:
            try:
                db.execute("BEGIN IMMEDIATE")  # the write lock now, waiting up to BUSY_TIMEOUT for it
                try:
                    cursor = db.execute(f"INSERT INTO scans ({', '.join(scan)}) VALUES ({','.join('?' * len(scan))})",
                                        tuple(scan.values()))
                    scan_id = cursor.lastrowid
                    seen = scan["scanned_at"]
                    db.executemany(
                        "INSERT INTO findings (fingerprint, rule_id, resource_id, severity, first_seen, last_seen,"
                        f" last_scan) VALUES (?,?,?,?,?,?,?) {UPSERT_SIGHTING}",
                        [(s.fingerprint, s.rule_id, s.resource_id, s.severity, seen, seen, scan_id)
                         for s in sightings])
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as exc:
                raise InputError(f"cannot write history ({exc})", where=self.where) from None
        assert scan_id is not None
        return scan_id

    def scans(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent scans, newest first (a database of an older auditor, without
        `scans.run`, is read as it is: listing writes nothing)."""
        if not self.path.exists():
            raise InputError("no history database here yet (scans create it)", where=self.where)
        with closing(self._open(write=False)) as db:
            db.row_factory = sqlite3.Row
            try:
                return [dict(row) for row in db.execute("SELECT * FROM scans ORDER BY id DESC LIMIT ?", (limit,))]
            except sqlite3.DatabaseError as exc:
                raise InputError(f"cannot read history ({exc})", where=self.where) from None

    def run_name(self, run: Path) -> str:
        """Relative to the database's folder when the run is inside it (the default
        `OUTPUT/history.db`), so the pair can move together; else absolute."""
        run = run.resolve()
        try:
            return run.relative_to(self.path.resolve().parent).as_posix()
        except ValueError:
            return str(run)
