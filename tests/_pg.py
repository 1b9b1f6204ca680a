"""A real PostgreSQL for the tests, started from Debian's packages (no mock, no container).

Import the fixtures into a test module: ``from _pg import pg_db, pg_server`` and name them
in its ``__all__`` (so the import counts as used).

- ``pg_server`` (session): one server per test run, shared by every xdist worker. The first
  worker that needs it runs ``initdb`` and ``pg_ctl start`` under a file lock in the run's
  shared temporary directory; the last one to finish stops it (``pg_ctl stop -m fast``)
  and removes its data directory. A watchdog stops it if pytest itself dies.
- The server runs as an unprivileged OS user (``postgres`` from the Debian package, or a
  system user ``depository-pg`` created with ``useradd --system`` when we are root and
  neither exists), listens on 127.0.0.1 on a free port and on a Unix socket in its data
  directory. Unix-socket connections are trusted (tests connect as any role without a
  password); TCP connections need a password (SCRAM), so a DSN over TCP is a real login.
- Two roles exist on the server: ``depository_owner`` (owns a store's tables, used once by
  ``init`` to create them) and ``depository_service`` (the role a store runs as: owns
  nothing). Passwords: :data:`OWNER_PASSWORD`, :data:`SERVICE_PASSWORD`.
- ``pg_db`` (function): a fresh database per test, ``CREATE DATABASE ... TEMPLATE``
  the session's empty template, dropped at teardown.
- ``DEPOSITORY_TEST_PG_BINDIR`` names the directory holding ``initdb``/``pg_ctl`` when they
  are elsewhere. Without the binaries the tests are **skipped** with the command that
  installs them (``make test`` installs them: the Makefile's ``PG_PACKAGES``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _shared_server import free_port, shared_server

PACKAGES = "postgresql"
SUPERUSER = "postgres"
OWNER, OWNER_PASSWORD = "depository_owner", "owner-test-password"
SERVICE, SERVICE_PASSWORD = "depository_service", "service-test-password"
TEMPLATE = "depository_template"
OS_USER_FALLBACK = "depository-pg"


def find_bindir() -> Path | None:
    """The directory with ``initdb``, ``pg_ctl`` and ``postgres`` (the newest Debian
    major version first), or None."""
    env = os.environ.get("DEPOSITORY_TEST_PG_BINDIR")
    candidates = [Path(env)] if env else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(Path(which).resolve().parent)
    for d in candidates:
        if all((d / t).is_file() for t in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _os_user() -> str | None:
    """The unprivileged OS user the server runs as (None: run as ourselves, not root)."""
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, OS_USER_FALLBACK):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    OS_USER_FALLBACK], check=True, capture_output=True)
    return OS_USER_FALLBACK


def _run(cmd: list[str], user: str | None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, user=user, capture_output=True, text=True, cwd="/", **kw)


@dataclass(frozen=True)
class PgServer:
    """A running server: where it listens and how to reach it."""

    directory: Path
    port: int
    bindir: Path

    @property
    def socket_dir(self) -> str:
        return str(self.directory)

    def dsn(self, dbname: str = "postgres", *, user: str = SUPERUSER, tcp: bool = False,
            password: str | None = None) -> str:
        """A libpq conninfo: over the Unix socket (trusted) or TCP on 127.0.0.1 (SCRAM)."""
        host = "127.0.0.1" if tcp else self.socket_dir
        out = f"host={host} port={self.port} dbname={dbname} user={user}"
        return out + (f" password={password}" if password else "")

    def connect(self, dbname: str = "postgres", *, user: str = SUPERUSER) -> Any:
        import psycopg

        return psycopg.connect(self.dsn(dbname, user=user), autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with self.connect() as c:
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE} OWNER {OWNER}')
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class PgDatabase:
    """One test's database on the session's server, and the DSNs of its roles."""

    server: PgServer
    name: str

    @property
    def owner_dsn(self) -> str:
        """The role that owns the store's tables (``init --admin-dsn``)."""
        return self.server.dsn(self.name, user=OWNER)

    @property
    def service_dsn(self) -> str:
        """The role a store runs as (``engine.dsn`` / ``init --dsn``): owns nothing."""
        return self.server.dsn(self.name, user=SERVICE)

    @property
    def super_dsn(self) -> str:
        """The server's superuser (the tamper drills)."""
        return self.server.dsn(self.name, user=SUPERUSER)

    def connect(self, *, user: str = SUPERUSER) -> Any:
        return self.server.connect(self.name, user=user)


def start_server(directory: Path, bindir: Path, *, options: str = "") -> dict[str, Any]:
    """initdb + pg_ctl start in ``directory`` as an unprivileged user; returns its state.

    ``options``: more ``-c name=value`` server settings (they override the defaults)."""
    user = _os_user()
    data = directory / "data"
    data.mkdir()
    if user is not None:
        pw = pwd.getpwnam(user)
        for p in (directory, data):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(directory, 0o755)
    os.chmod(data, 0o700)
    t0 = time.monotonic()
    init = _run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-E", "UTF8",
                 "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                 "--data-checksums", "--no-sync"], user, timeout=120)
    if init.returncode != 0:
        pytest.fail(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}",
                    pytrace=False)
    port = free_port()
    # Durability as in production (fsync, synchronous_commit on): a commit is the ack.
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={directory} "
            "-c fsync=on -c synchronous_commit=on -c max_connections=300 "
            f"-c shared_buffers=64MB -c log_min_messages=warning {options}")
    start = _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(directory / "server.log"),
                  "-w", "-t", "60", "-o", opts, "start"], user, timeout=90,
                 start_new_session=True)
    if start.returncode != 0:
        log = (directory / "server.log").read_text(errors="replace") if (
            directory / "server.log").exists() else ""
        pytest.fail(f"pg_ctl start failed ({start.returncode}):\n{start.stdout}\n"
                    f"{start.stderr}\n{log[-3000:]}", pytrace=False)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    server = PgServer(directory, port, bindir)
    with server.connect() as c:
        for role, password in ((OWNER, OWNER_PASSWORD), (SERVICE, SERVICE_PASSWORD)):
            c.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        c.execute(f"CREATE DATABASE {TEMPLATE} OWNER {OWNER}")
        c.execute(f"ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true")
    return {"dir": str(directory), "port": port, "pid": pid, "user": user,
            "bindir": str(bindir), "startup_s": round(time.monotonic() - t0, 2)}


def stop_server(state: dict[str, Any]) -> None:
    """Fast shutdown (rolls back open sessions), then remove the data directory."""
    data = Path(state["dir"]) / "data"
    if data.exists():
        with contextlib.suppress(subprocess.TimeoutExpired):
            _run([str(Path(state["bindir"]) / "pg_ctl"), "-D", str(data), "-m", "fast",
                  "-w", "-t", "30", "stop"], state.get("user"), timeout=40)
    with contextlib.suppress(OSError):
        os.kill(int(state["pid"]), 0)
        os.kill(int(state["pid"]), signal.SIGKILL)  # still there after a fast stop
    with contextlib.suppress(OSError, TypeError, KeyError):
        os.kill(int(state["watchdog"]), signal.SIGTERM)
    shutil.rmtree(state["dir"], ignore_errors=True)


def _watchdog(owner: int, state: dict[str, Any]) -> int:
    """Stop the server if the pytest process that owns it dies without stopping it."""
    data = Path(state["dir"]) / "data"
    pg_ctl = Path(state["bindir"]) / "pg_ctl"
    as_user = f"runuser -u {state['user']} -- " if state.get("user") else ""
    script = (f"while kill -0 {owner} 2>/dev/null; do sleep 2; done; "
              f"cd /; {as_user}{pg_ctl} -D '{data}' -m immediate stop >/dev/null 2>&1; "
              f"kill -9 {state['pid']} 2>/dev/null; rm -rf '{state['dir']}'")
    p = subprocess.Popen(["bash", "-c", script], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p.pid


def _alive(state: dict[str, Any]) -> bool:
    try:
        os.kill(int(state["pid"]), 0)
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """The session's PostgreSQL (started on first use, stopped when the last user ends)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed, so the PostgreSQL engine's "
                    "tests cannot run. Install them (as root): apt-get update && apt-get "
                    f"install -y --no-install-recommends {PACKAGES}   (`make test` does)")

    def start(owner: int) -> dict[str, Any]:
        state = start_server(Path(tempfile.mkdtemp(prefix="depository-pg-")), bindir)
        state["watchdog"] = _watchdog(owner, state)
        return state

    with shared_server(tmp_path_factory, "pg-server", start=start, alive=_alive,
                       stop=stop_server) as state:
        yield PgServer(Path(state["dir"]), int(state["port"]), Path(state["bindir"]))


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A fresh, empty database for one test (owned by ``depository_owner``)."""
    name = pg_server.create_database()
    try:
        yield PgDatabase(pg_server, name)
    finally:
        pg_server.drop_database(name)
