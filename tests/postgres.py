"""A real PostgreSQL server for the tests, and history databases of both kinds.

Debian's PostgreSQL (`apt-get install postgresql`, which .ci/run does) is started once per
test session on a free port of 127.0.0.1, in a temporary folder, and stopped at the end:
initdb refuses to run as root, so as root the cluster belongs to the `postgres` user and
its commands run through `runuser`. Local (unix socket) connections are trusted, for the
tests' own administration; TCP connections, the ones auditor makes, need the password of
the `auditor` role (SCRAM), which the tests hand over as PGPASSWORD, as a user would.

A server that cannot start fails the tests that need it, in CI and elsewhere: a history
backend that is never exercised must not pass for a tested one.

`history_db` is the fixture the history tests take: parametrized over `sqlite` and
`postgresql`, it gives the `--history` value, and runs SQL on the database for assertions.
A test module takes the fixtures by importing their functions (`*_fixture`, so that the
fixture's name, as a test's argument, shadows no import):

    from tests.postgres import history_db_fixture  # noqa: F401 (the history_db fixture)
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROLE = "auditor"
STARTUP_SECONDS = 60


def postgres_bin() -> Path:
    """The bin folder of the newest PostgreSQL installed the Debian way."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0)
    if not found:
        raise RuntimeError("no PostgreSQL under /usr/lib/postgresql: apt-get install postgresql (.ci/run does)")
    return found[-1].parent


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A running cluster: its folder (data, socket, log), TCP port and the `auditor` role's password."""

    root: Path
    port: int
    password: str
    _databases = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def admin(self, dbname: str = "postgres") -> Any:
        """A superuser connection over the unix socket (trusted), in autocommit."""
        import psycopg

        return psycopg.connect(host=str(self.root), port=self.port, user="postgres", dbname=dbname,
                               autocommit=True, connect_timeout=10)

    def url(self, dbname: str, *, user: str = ROLE, port: int | None = None) -> str:
        """How a user names a database of this server for auditor: TCP, no password."""
        return f"postgresql://{user}@127.0.0.1:{port or self.port}/{dbname}"

    def new_database(self) -> str:
        """A fresh database owned by the `auditor` role; its name."""
        name = f"history_{os.getpid()}_{next(self._databases)}"
        with closing(self.admin()) as db:
            db.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return name

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and remove its folder."""
        if self.data.exists():
            as_owner([str(postgres_bin() / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"],
                     check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def as_owner(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL command as the owner of the cluster: `postgres` when we are root."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=STARTUP_SECONDS, cwd="/")
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip() or result.stdout}")
    return result


def start_postgres() -> PostgresServer:
    """initdb a new cluster in a temporary folder, start it on a free port, create the role."""
    binaries = postgres_bin()
    # under /tmp itself: pytest's own temporary folders are private to root, and the server,
    # running as postgres, must reach its data folder and socket
    root = Path(tempfile.mkdtemp(prefix="auditor-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(root=root, port=free_port(), password=secrets.token_urlsafe(18))
    try:
        as_owner([str(binaries / "initdb"), "-D", str(server.data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        as_owner([str(binaries / "pg_ctl"), "start", "-w", "-t", str(STARTUP_SECONDS), "-D", str(server.data),
                  "-l", str(server.log),
                  "-o", f"-k {root} -p {server.port} -c listen_addresses=127.0.0.1 -c fsync=off"])
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        log = server.log.read_text(errors="replace") if server.log.exists() else "(no server log)"
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {exc}\n{log}") from None
    with closing(server.admin()) as db:
        db.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{server.password}'")
    return server


_server: PostgresServer | None = None


def shared_server(config: pytest.Config) -> PostgresServer:
    """The session's server, started on first use and stopped when the session ends: test
    modules that import the fixtures each get their own fixture definitions, yet there must
    be one server, also for the history_db fixture, which starts it only for its
    postgresql cases."""
    global _server
    if _server is None:
        try:
            _server = start_postgres()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        config.add_cleanup(_stop_shared)
    return _server


def _stop_shared() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def fresh_database(server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty database for one test, as --history names it; the password goes into
    PGPASSWORD (for the test's own process and the commands it starts), and the libpq
    variables of whoever runs the tests are put aside."""
    monkeypatch.setenv("PGPASSWORD", server.password)
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGOPTIONS", "PGCONNECT_TIMEOUT",
                 "PGPASSFILE", "PGSSLMODE"):
        monkeypatch.delenv(name, raising=False)
    return server.url(server.new_database())


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture(request: pytest.FixtureRequest) -> PostgresServer:
    """The PostgreSQL server of this test session (fails, never skips, when it cannot start)."""
    return shared_server(request.config)


@pytest.fixture(name="postgres_url")
def postgres_url_fixture(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty database to pass to --history; its password is in PGPASSWORD."""
    return fresh_database(postgres, monkeypatch)


@dataclass
class HistoryDatabase:
    """A history database of either kind, as the tests use it."""

    kind: str  # "sqlite" or "postgresql"
    location: str  # the --history value
    server: PostgresServer | None = None

    @property
    def flags(self) -> list[str]:
        return ["--history", self.location]

    @property
    def local_files(self) -> list[Path]:
        """The files the history keeps on this machine."""
        return [] if self.server else [Path(self.location)]

    @property
    def env(self) -> dict[str, str]:
        """What a command run in its own process needs beside the flags: the password."""
        return {"PGPASSWORD": self.server.password} if self.server else {}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run SQL (no parameters, the same text on both kinds) and return its rows."""
        if self.server is None:
            with closing(sqlite3.connect(self.location)) as db, db:
                return db.execute(sql).fetchall()
        with closing(self.server.admin(self.location.rsplit("/", 1)[1])) as db:
            cursor = db.execute(sql)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture(params=["sqlite", "postgresql"], name="history_db")
def history_db_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> HistoryDatabase:
    """The scan history in SQLite (a file under the test's folder) and in PostgreSQL."""
    if request.param == "sqlite":
        return HistoryDatabase("sqlite", str(tmp_path / "reports" / "history.db"))
    # only the postgresql cases start (or reuse) the server
    server = shared_server(request.config)
    return HistoryDatabase("postgresql", fresh_database(server, request.getfixturevalue("monkeypatch")), server)
