"""The scan history's two backends, SQLite and PostgreSQL, held to the same behaviour.

The backend tests run on both (`history_db` is parametrized); the PostgreSQL ones run a real
server (tests/postgres.py) and the command as a user runs it, in its own process: a wrong
password, a server that is not there or stalls, a password put where it must not be.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from contextlib import closing
from pathlib import Path

import pytest

from auditor.errors import InputError
from auditor.findings import Finding, ScanReport
from auditor.history import SCHEMA_VERSION, check_version, history_location, is_postgres, open_history, scrub
from tests.conftest import AS_OF, ROOT
from tests.postgres import history_db_fixture, postgres_fixture, postgres_url_fixture  # noqa: F401 (fixtures)

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
SCAN = ["scan", "-q", "--as-of", AS_OF.isoformat()]
GUARD = 60  # seconds: a command still running then hangs
SECRET = "S3cr3t-Pa55-xyz"


def finding(fingerprint: str, severity: str = "high") -> Finding:
    return Finding(rule_id="R-1", fingerprint=fingerprint, severity=severity, category="other", title="t",
                   message="m", resource_id=f"/r/{fingerprint}", resource_name=fingerprint, resource_type="t",
                   cloud="azure", source="s")


def report(scanned_at: str, fingerprints: list[str], severity: str = "high") -> ScanReport:
    return ScanReport(tool_version="0", scanned_at=scanned_at, as_of=scanned_at[:10], collected_at=scanned_at,
                      sources=[{"id": "s", "status": "ok"}], resource_count=len(fingerprints), rules=[],
                      findings=[finding(fp, severity) for fp in fingerprints])


def auditor(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The command in its own process, as a user runs it."""
    try:
        return subprocess.run([sys.executable, "-m", "auditor", *args], capture_output=True, text=True, cwd=cwd,
                              env={**ENV, **(env or {})}, timeout=GUARD)
    except subprocess.TimeoutExpired:
        pytest.fail(f"auditor {' '.join(args[:1])} still running after {GUARD} s", pytrace=False)


def one_error(result: subprocess.CompletedProcess[str], *wanted: str) -> str:
    """Exit 2 with one error line holding each of `wanted`, no traceback; the line."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    for text in wanted:
        assert text in errors[0], errors[0]
    return errors[0]


# -- both backends -------------------------------------------------------------------------


def test_first_sightings_and_the_trend_carry_over(history_db):
    history = open_history(history_location(history_db.location))
    first = report("2026-11-01T08:00:00Z", ["a", "b"])
    history.check()  # a history that is not there yet is no error
    history.prepare(first)
    assert [f.first_seen for f in first.findings] == [first.scanned_at] * 2
    assert first.history == [{"id": None, "scanned_at": first.scanned_at, "critical": 0, "high": 2, "medium": 0,
                              "low": 0, "info": 0, "total": 2}]
    assert history.record(first) == 1

    second = report("2026-11-02T08:00:00Z", ["b", "c"])
    history.prepare(second)
    assert {f.fingerprint: f.first_seen for f in second.findings} == {"b": "2026-11-01T08:00:00Z",
                                                                      "c": "2026-11-02T08:00:00Z"}
    assert [(point["id"], point["total"]) for point in second.history] == [(1, 2), (None, 2)]
    assert history.record(second) == 2
    assert history_db.rows("SELECT fingerprint, first_seen, last_seen, last_scan FROM findings ORDER BY 1") == [
        ("a", "2026-11-01T08:00:00Z", "2026-11-01T08:00:00Z", 1),
        ("b", "2026-11-01T08:00:00Z", "2026-11-02T08:00:00Z", 2),
        ("c", "2026-11-02T08:00:00Z", "2026-11-02T08:00:00Z", 2)]
    listed = history.scans(limit=5)
    assert [scan["id"] for scan in listed] == [2, 1] and listed[0]["scanned_at"] == "2026-11-02T08:00:00Z"
    assert {"sources", "incomplete", "suppressed", "run"} <= set(listed[0])


def test_scans_that_commit_out_of_order_keep_the_earliest_and_latest_sightings(history_db):
    """Two sites scan at 08:00 and 12:00; the 12:00 scan records first."""
    history = open_history(history_location(history_db.location))
    history.record(report("2026-11-02T12:00:00Z", ["shared", "late-only"], severity="high"))
    history.record(report("2026-11-02T08:00:00Z", ["shared", "early-only"], severity="low"))
    rows = history_db.rows("SELECT fingerprint, first_seen, last_seen, severity, last_scan FROM findings ORDER BY 1")
    assert rows == [("early-only", "2026-11-02T08:00:00Z", "2026-11-02T08:00:00Z", "low", 2),
                    ("late-only", "2026-11-02T12:00:00Z", "2026-11-02T12:00:00Z", "high", 1),
                    ("shared", "2026-11-02T08:00:00Z", "2026-11-02T12:00:00Z", "high", 1)]


def _record_rounds(location: str, password: str | None, times: list[str], fingerprints: list[str],
                   severity: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    """One site's scans (a child process): each round starts with the other site's."""
    try:
        if password:
            os.environ["PGPASSWORD"] = password
        history = open_history(history_location(location))
        for scanned_at in times:
            barrier.wait(timeout=GUARD)
            history.record(report(scanned_at, fingerprints, severity))
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def test_two_sites_recording_at_once_lose_nothing(history_db):
    rounds, shared = 6, [f"shared-{n:04}" for n in range(1500)]
    # site A scans at noon, site B at 08:00 on the same days: whichever commits first, a
    # shared finding was first seen at B's first scan and last seen at A's last
    a_times = [f"2026-11-{10 + day}T12:00:00Z" for day in range(rounds)]
    b_times = [f"2026-11-{10 + day}T08:00:00Z" for day in range(rounds)]
    a_only, b_only = [f"a-{n:04}" for n in range(300)], [f"b-{n:04}" for n in range(300)]
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    password = history_db.server.password if history_db.server else None
    sites = [context.Process(target=_record_rounds, args=(history_db.location, password, times, fingerprints,
                                                          severity, barrier))
             for times, fingerprints, severity in ((a_times, shared + a_only, "high"), (b_times, b_only + shared, "low"))]
    for site in sites:
        site.start()
    for site in sites:
        site.join(GUARD * 2)
        assert site.exitcode == 0, "a site's recording failed (its traceback is above)"
    recorded = history_db.rows("SELECT scanned_at, total FROM scans ORDER BY scanned_at")
    assert sorted(recorded) == sorted([(t, 1800) for t in a_times + b_times])
    findings = {row[0]: row[1:] for row in history_db.rows(
        "SELECT f.fingerprint, f.first_seen, f.last_seen, f.severity, s.scanned_at FROM findings f"
        " JOIN scans s ON s.id = f.last_scan")}
    assert len(findings) == 1500 + 300 + 300
    for fingerprint in shared:
        assert findings[fingerprint] == (b_times[0], a_times[-1], "high", a_times[-1]), fingerprint
    for fingerprint in a_only:
        assert findings[fingerprint] == (a_times[0], a_times[-1], "high", a_times[-1]), fingerprint
    for fingerprint in b_only:
        assert findings[fingerprint] == (b_times[0], b_times[-1], "low", b_times[-1]), fingerprint


def test_a_history_of_a_newer_schema_is_refused(history_db):
    history = open_history(history_location(history_db.location))
    history.record(report("2026-11-01T08:00:00Z", ["a"]))
    history_db.rows(f"UPDATE meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'")
    for step in (history.check, lambda: history.prepare(report("2026-11-02T08:00:00Z", ["a"])),
                 lambda: history.record(report("2026-11-02T08:00:00Z", ["a"])), history.scans):
        with pytest.raises(InputError, match=f"history schema {SCHEMA_VERSION + 1} is newer than this auditor reads"):
            step()
    assert history_db.rows("SELECT count(*) FROM scans") == [(1,)]
    result = auditor(*SCAN, *history_db.flags, "-o", "-", "-f", "json", env=history_db.env)
    one_error(result, history_db.location, "upgrade auditor")


def test_a_sqlite_history_left_mid_transaction_is_checked_and_read(tmp_path):
    """A scan killed while it recorded leaves a hot journal; the next scan's check must roll
    it back (a read-only look could not), not call the history unusable."""
    path = tmp_path / "history.db"
    history = open_history(history_location(str(path)))
    history.record(report("2026-11-01T08:00:00Z", ["a"]))
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sqlite3\n"
        f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "db.execute('PRAGMA cache_size = 1')  # spill pages to the file before the commit\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "db.executemany('INSERT INTO meta VALUES (?, ?)', [(str(n), 'x' * 2000) for n in range(3000)])\n"
        "os._exit(0)\n")], timeout=GUARD)
    assert killed.returncode == 0 and (tmp_path / "history.db-journal").exists()
    history.check()
    second = report("2026-11-02T08:00:00Z", ["a"])
    history.prepare(second)
    assert second.findings[0].first_seen == "2026-11-01T08:00:00Z"
    assert not (tmp_path / "history.db-journal").exists()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM meta").fetchone() == (1,)


def test_the_schema_version_must_be_a_number():
    with pytest.raises(InputError, match="not a usable history database"):
        check_version("one", "h.db")
    check_version(str(SCHEMA_VERSION), "h.db")


# -- what --history accepts ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["postgresql://auditor@db.corp.example:5432/history", "postgres://db/history",
                                  "host=db.corp.example dbname=history user=auditor",
                                  "service=auditor-history", "  dbname = history"])
def test_connection_strings_name_postgresql(text):
    assert is_postgres(text)
    assert str(history_location(text)) == text.strip()


def test_a_pgpassword_that_also_names_something_in_the_url_is_no_password_in_it(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "history")
    database = history_location("postgresql://auditor@db/history")
    assert database.conninfo == "postgresql://auditor@db/history"
    assert str(database) == "postgresql://auditor@db/***"  # messages still never show the password


@pytest.mark.parametrize("text", ["reports/history.db", "history.db", "./host=x.db", "C:/db/history.db",
                                  "postgresql.db", "my=file.db"])
def test_everything_else_is_a_path(text):
    assert history_location(text) == Path(text)


@pytest.mark.parametrize("text", [
    f"postgresql://auditor:{SECRET}@db/history",
    f"postgres://auditor:{SECRET}@db:5432/history?sslmode=require",
    f"postgresql://auditor@db/history?password={SECRET}",
    f"postgresql://auditor@db/history?sslmode=verify-full&password={SECRET}&application_name=x",
    f"host=db password={SECRET} dbname=history",
    f"host=db password = '{SECRET}' dbname=history",
    f"password={SECRET}",
    f"host=db sslpassword={SECRET}",
    f"postgresql://auditor:{SECRET}/x@db/history",  # not %-encoded: libpq would misread it, we still hide it
])
def test_a_password_in_the_connection_string_is_refused_unechoed(text):
    with pytest.raises(ValueError, match="carries a password") as refused:
        history_location(text)
    assert SECRET not in str(refused.value)


def test_scrub_masks_passwords_in_messages(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "env-secret-123")
    assert scrub(f'could not connect to postgresql://a:{SECRET}@h/db: no') == "could not connect to postgresql://a:***@h/db: no"
    assert scrub(f"after \"x\" in password='{SECRET} x' port=1") == "after \"x\" in password=*** port=1"
    assert scrub(f"password={SECRET}&sslmode=require") == "password=***&sslmode=require"
    assert scrub("echoed env-secret-123 by a driver") == "echoed *** by a driver"
    assert scrub('password authentication failed for user "auditor"') == 'password authentication failed for user "auditor"'
    assert scrub("postgresql://auditor@h:5432/db") == "postgresql://auditor@h:5432/db"


def test_a_malformed_connection_string_is_one_line_without_its_password():
    with pytest.raises(ValueError, match="is not a PostgreSQL connection string"):
        history_location("POSTGRESQL://db/history")  # libpq's schemes are lower case; never a file of that name
    with pytest.raises(ValueError, match="is not a PostgreSQL connection string") as refused:
        history_location("postgresql://db/history?bogus=1")
    assert "invalid URI query parameter" in str(refused.value)
    with pytest.raises(ValueError) as refused:
        history_location(f"host=db password='{SECRET}")  # unterminated: libpq quotes the rest
    assert SECRET not in str(refused.value)


# -- PostgreSQL, as a user runs it -----------------------------------------------------------


def test_scanning_twice_carries_first_sightings_over(postgres, postgres_url, tmp_path):
    out = tmp_path / "reports"
    env = {"PGPASSWORD": postgres.password}
    first = auditor(*SCAN, "--history", postgres_url, "--output", str(out), "--log-level", "debug", env=env)
    assert first.returncode == 0, first.stderr
    assert postgres.password not in first.stderr + first.stdout
    first_run = (out / "latest").resolve()
    first_doc = json.loads((first_run / "findings.json").read_text())
    time.sleep(1.1)  # scan times have whole seconds
    second = auditor(*SCAN, "--history", postgres_url, "--output", str(out), env=env)
    assert second.returncode == 0, second.stderr
    second_doc = json.loads((out / "latest" / "findings.json").read_text())
    assert second_doc["scanned_at"] > first_doc["scanned_at"]
    assert {f["first_seen"] for f in first_doc["findings"]} == {first_doc["scanned_at"]}
    assert {f["first_seen"] for f in second_doc["findings"]} == {first_doc["scanned_at"]}
    assert [point["id"] for point in second_doc["history"]] == [1, None]
    listed = auditor("history", "--history", postgres_url, env=env)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3, listed.stderr
    with closing(postgres.admin(postgres_url.rsplit("/", 1)[1])) as db:
        runs = [row[0] for row in db.execute("SELECT run FROM scans ORDER BY id")]
    assert runs == [str(first_run), str((out / "latest").resolve())]


def test_a_wrong_password(postgres, postgres_url):
    line = one_error(auditor(*SCAN, "--history", postgres_url, "-o", "-", "-f", "json",
                             env={"PGPASSWORD": SECRET}),
                     postgres_url, 'password authentication failed for user "auditor"', "PGPASSWORD")
    assert SECRET not in line


def test_no_password_at_all(postgres, postgres_url, tmp_path):
    one_error(auditor("history", "--history", postgres_url,
                      env={"PGPASSWORD": "", "PGPASSFILE": str(tmp_path / "none")}),
              postgres_url, "no password supplied", "PGPASSWORD")


def test_the_password_from_a_pgpass_file(postgres, postgres_url, tmp_path):
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:auditor:{postgres.password}\n")
    passfile.chmod(0o600)
    result = auditor(*SCAN, "--history", postgres_url, "-o", "-", "-f", "json",
                     env={"PGPASSWORD": "", "PGPASSFILE": str(passfile)})
    assert result.returncode == 0, result.stderr


def test_a_database_that_does_not_exist(postgres):
    url = postgres.url("no_such_history")
    one_error(auditor("history", "--history", url, env={"PGPASSWORD": postgres.password}),
              url, 'database "no_such_history" does not exist', "createdb")


def test_a_port_nobody_listens_on(postgres):
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused
        url = postgres.url("history", port=port)
        started = time.monotonic()
        one_error(auditor(*SCAN, "--history", url, "-o", "-", "-f", "json", env={"PGPASSWORD": postgres.password}),
                  url, "cannot connect to the history database", "Connection refused")
    assert time.monotonic() - started < 10


def test_no_history_yet_and_tables_of_someone_else(postgres, postgres_url):
    env = {"PGPASSWORD": postgres.password}
    one_error(auditor("history", "--history", postgres_url, env=env), postgres_url, "no history in this database yet")
    with closing(postgres.admin(postgres_url.rsplit("/", 1)[1])) as db:
        db.execute("SET ROLE auditor")  # the tables of another application of the same role
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    one_error(auditor(*SCAN, "--history", postgres_url, "-o", "-", "-f", "json", env=env),
              postgres_url, "not an auditor history")


def test_a_role_that_may_not_record_is_stopped_before_the_scan(postgres, postgres_url, tmp_path):
    name = postgres_url.rsplit("/", 1)[1]
    assert auditor(*SCAN, "--history", postgres_url, "-o", "-", "-f", "json",
                   env={"PGPASSWORD": postgres.password}).returncode == 0
    role = f"reader_{name}"
    with closing(postgres.admin(name)) as db:
        db.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'reader-password'")
        db.execute(f"GRANT SELECT ON meta, scans, findings TO {role}")
    url = postgres.url(name, user=role)
    one_error(auditor(*SCAN, "--history", url, "-o", str(tmp_path / "out"), env={"PGPASSWORD": "reader-password"}),
              url, "the role may not INSERT on scans, INSERT on findings, UPDATE on findings")
    assert not (tmp_path / "out" / "latest").exists()
    empty = postgres.new_database()  # owned by auditor: the reader may not create tables in it
    with closing(postgres.admin(empty)) as db:
        db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    url = postgres.url(empty, user=role)
    one_error(auditor(*SCAN, "--history", url, "-o", "-", "-f", "json", env={"PGPASSWORD": "reader-password"}),
              url, "holds no history yet, and the role may not create its tables in schema 'public'")


@pytest.mark.parametrize("how", ["flag", "environment", "config file"])
def test_a_password_in_any_layer_is_refused_and_never_shown(postgres, tmp_path, how):
    url = f"postgresql://auditor:{SECRET}@127.0.0.1:{postgres.port}/history"
    args, env = [*SCAN, "-o", "-", "-f", "json"], {"PGPASSWORD": postgres.password}
    if how == "flag":
        args += ["--history", url]
    elif how == "environment":
        env["AUDITOR_HISTORY"] = url
    else:
        (tmp_path / "auditor.yaml").write_text(f"scan:\n  history: {url}\n")
    result = auditor(*args, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "carries a password" in result.stderr and "PGPASSWORD" in result.stderr
    assert SECRET not in result.stderr + result.stdout and "Traceback" not in result.stderr


# -- PostgreSQL that stalls -------------------------------------------------------------------


class HoldingProxy:
    """A TCP proxy on 127.0.0.1 in front of the server that forwards both ways until the
    client sends `trigger`, then holds that connection: nothing more reaches either side,
    as when a server or the network between goes silent mid-session. `trigger=None` never
    forwards at all: a peer that accepts connections and never answers."""

    def __init__(self, upstream_port: int, trigger: bytes | None) -> None:
        self.upstream_port, self.trigger = upstream_port, trigger
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.held = threading.Event()
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.sockets.append(client)
            if self.trigger is None:
                continue  # accepted, never answered
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets.append(server)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        assert self.trigger is not None
        tail = b""  # the end of the previous chunk: the trigger may straddle two
        try:
            while data := source.recv(65536):
                if from_client and self.trigger in tail + data:
                    self.held.set()
                tail = data[-len(self.trigger):]
                if not self.held.is_set():
                    sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.stopped.set()
        for sock in [self.listener, *self.sockets]:
            sock.close()


@pytest.fixture
def proxy(request):
    made: list[HoldingProxy] = []

    def make(upstream_port: int, trigger: bytes | None) -> HoldingProxy:
        made.append(HoldingProxy(upstream_port, trigger))
        return made[-1]
    yield make
    for each in made:
        each.close()


def test_a_server_that_accepts_and_never_answers(postgres, proxy):
    silent = proxy(postgres.port, None)
    url = postgres.url("history", port=silent.port)
    started = time.monotonic()
    one_error(auditor(*SCAN, "--history", url, "-o", "-", "-f", "json",
                      env={"PGPASSWORD": postgres.password, "PGCONNECT_TIMEOUT": "2"}),
              url, "did not answer within 2 s (connect_timeout)")
    assert time.monotonic() - started < 2 + 8


def test_a_server_that_goes_silent_while_the_scan_records(postgres, postgres_url, proxy, tmp_path):
    name = postgres_url.rsplit("/", 1)[1]
    holding = proxy(postgres.port, b"INSERT INTO scans")
    url = postgres.url(name, port=holding.port) + "?sslmode=disable"
    started = time.monotonic()
    one_error(auditor(*SCAN, "--history", url, "-o", str(tmp_path / "out"),
                      env={"PGPASSWORD": postgres.password, "PGOPTIONS": "-c statement_timeout=1000"}),
              url, "stopped answering while recording the scan (no answer within 2 s)")
    assert holding.held.is_set()
    assert time.monotonic() - started < 2 + 8
    holding.close()  # the server sees the session end and rolls its transaction back
    with closing(postgres.admin(name)) as db:
        assert db.execute("SELECT count(*) FROM scans").fetchone() == (0,)
    assert not (tmp_path / "out" / "latest").exists()  # `latest` moves only after the history row


def test_a_lock_held_elsewhere_times_out(postgres, postgres_url):
    env = {"PGPASSWORD": postgres.password}
    assert auditor(*SCAN, "--history", postgres_url, "-o", "-", "-f", "json", env=env).returncode == 0
    with closing(postgres.admin(postgres_url.rsplit("/", 1)[1])) as db:
        db.execute("BEGIN")
        db.execute("LOCK TABLE scans IN ACCESS EXCLUSIVE MODE")  # a migration, a backup, a hung session
        started = time.monotonic()
        one_error(auditor(*SCAN, "--history", postgres_url, "-o", "-", "-f", "json",
                          env={**env, "PGOPTIONS": "-c statement_timeout=1000"}),
                  postgres_url, "reading the history timed out after 1 s (statement_timeout)")
        assert time.monotonic() - started < 1 + 8
        db.execute("ROLLBACK")
