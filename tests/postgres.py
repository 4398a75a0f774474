"""The database engine of the tests, and a throwaway PostgreSQL to run them on.

``TOTE_TEST_ENGINE`` is ``sqlite`` (the default) or ``postgresql``; the harnesses ask
this module for their database (``server_database``, ``open_test_database``) and get an
in-memory SQLite or a fresh PostgreSQL database accordingly.

The PostgreSQL server is Debian's ``postgresql`` package (the newest version under
/usr/lib/postgresql): ``initdb`` in a private temporary directory (as the ``postgres``
user through ``runuser`` when we are root, since PostgreSQL refuses to run as root; as
ourselves otherwise), listening on a free loopback port and on a socket in that
directory only, with a random password. ``fsync=off`` and ``synchronous_commit=off``:
the tests crash tote, never the machine, so PostgreSQL's own durability is not under
test and only costs time. One template database holds tote's schema; each test's
database is a ``CREATE DATABASE … TEMPLATE`` copy of it (a file copy: fast), dropped
after the test. The server is stopped (``-m immediate``) and its directory removed at
the end of the session, also on Ctrl-C, and by a watcher process of its own when the
session is killed.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from storage.database import Database, open_database

ENGINES = ("sqlite", "postgresql")
#: Where Debian installs the server binaries, one directory per major version.
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
TEMPLATE = "tote_template"
SUPERUSER = "tote"
#: Ports taken between our probe and the server's bind: tried again on a new port.
PORT_ATTEMPTS = 3


class Unavailable(Exception):
    """PostgreSQL cannot be had here; the message says why in one line."""


def default_engine() -> str:
    """The engine of ``TOTE_TEST_ENGINE``; raises ValueError for an unknown one."""
    engine = os.environ.get("TOTE_TEST_ENGINE") or "sqlite"
    if engine not in ENGINES:
        raise ValueError(f"TOTE_TEST_ENGINE={engine!r}: expected one of {', '.join(ENGINES)}")
    return engine


def must_run() -> bool:
    """In CI, or when PostgreSQL is the engine asked for, a server that cannot start
    fails the tests that need it; elsewhere they are skipped (with the reason)."""
    return bool(os.environ.get("CI")) or default_engine() == "postgresql"


def binaries() -> Path:
    """The bin directory of the newest PostgreSQL installed; Unavailable when none is."""
    found = [d / "bin" for d in DEBIAN_BINARIES.glob("*") if (d / "bin" / "initdb").exists()]
    if not found:
        raise Unavailable(
            f"no PostgreSQL server: {DEBIAN_BINARIES}/<version>/bin/initdb is missing "
            "(Debian package postgresql; `make test` installs it)"
        )
    return max(found, key=lambda path: _version(path.parent.name))


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def free_port() -> int:
    """A loopback port nobody holds now (the OS picks it for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, label: str, empty: str) -> str:
    """The last three lines of a server's log, in one line (``empty`` when it has none)."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f"{label}: " + " | ".join(lines[-3:]) if lines else empty


def stop_reaper(reaper: subprocess.Popen[bytes] | None) -> None:
    """End a ``reap_when_gone`` shell: we stop the server ourselves."""
    if reaper is not None:
        reaper.kill()
        reaper.wait()


def reap_when_gone(stop: str, root: Path) -> subprocess.Popen[bytes]:
    """A shell of its own that runs ``stop`` and removes ``root`` once this process is
    gone (within a second), for a throwaway server we could not stop ourselves."""
    script = (
        f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
        f"{stop} >/dev/null 2>&1; rm -rf {shlex.quote(str(root))}"
    )
    return subprocess.Popen(
        ["sh", "-c", script],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class ThrowawayPostgres:
    """One PostgreSQL server for the session; ``start`` raises Unavailable with the
    missing binary or the server log's tail."""

    bindir: Path = field(default_factory=binaries)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tote-pg-")))
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    durable: bool = False  # fsync as PostgreSQL's default has it (the benchmark)
    _admin: psycopg.Connection[Any] | None = None
    _reaper: subprocess.Popen[bytes] | None = None
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """initdb, start on a free port, make the template database with tote's schema."""
        atexit.register(self.stop)
        self._give_to_owner()
        self._reap_if_we_die()
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=scram-sha-256",
                  f"--pwfile={self._password_file()}", "--no-sync")  # fmt: skip
        for attempt in range(PORT_ATTEMPTS):
            self.port = free_port()
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "-o", self._options(), "start")  # fmt: skip
                break
            except Unavailable:
                if attempt + 1 == PORT_ATTEMPTS or "already in use" not in self._log_tail():
                    raise
        self._make_template()

    def _options(self) -> str:
        """Loopback and a socket in our directory only; no fsync unless ``durable``
        (see the module's docstring)."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        if self.durable:
            return options
        return f"{options} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"

    def _make_template(self) -> None:
        """The template database, given its schema by tote itself (open, then close)."""
        self.execute(f"CREATE DATABASE {TEMPLATE}")
        open_database(self.url(TEMPLATE), synchronous="OFF").close()

    def create_database(self) -> str:
        """A fresh database with tote's schema; returns its URL."""
        name = f"t{next(self._names):04d}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``create_database``, closing what is still connected."""
        self.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def execute(self, sql: str) -> None:
        """One statement outside a transaction, on the server's ``postgres`` database."""
        if self._admin is None:
            self._admin = psycopg.connect(self.url("postgres"), autocommit=True)
        self._admin.execute(sql)

    def restart_immediately(self) -> None:
        """``pg_ctl restart -m immediate``: every backend killed without a checkpoint (as
        a crash of PostgreSQL would), crash recovery from the WAL, then the same port
        again; returns once it accepts connections. Every connection open before is
        lost (the admin connection is opened anew when next needed)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-m", "immediate", "-o", self._options(), "restart")  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once and remove everything it wrote; safe to call twice."""
        atexit.unregister(self.stop)
        stop_reaper(self._reaper)
        self._reaper = None
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.data.exists():
            subprocess.run(
                self._as_owner("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def _reap_if_we_die(self) -> None:
        """A process of its own that stops the server and removes its directory once we
        are gone without doing it (SIGTERM, SIGKILL: a CI timeout), within a second."""
        stop = shlex.join(self._as_owner("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"))
        self._reaper = reap_when_gone(stop, self.root)

    # -- running the binaries as the right user ---------------------------------------

    def _give_to_owner(self) -> None:
        """The private directory belongs to the user the server runs as."""
        owner = _owner()
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.root.chmod(0o700)

    def _password_file(self) -> Path:
        path = self.root / "password"
        path.write_text(self.password + "\n")
        owner = _owner()
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        path.chmod(0o600)
        return path

    def _as_owner(self, program: str, *args: str) -> list[str]:
        command = [str(self.bindir / program), *args]
        return ["runuser", "-u", "postgres", "--", *command] if _owner() else command

    def _run(self, program: str, *args: str) -> None:
        try:
            done = subprocess.run(
                self._as_owner(program, *args), capture_output=True, text=True, check=False
            )
        except FileNotFoundError as missing:
            raise Unavailable(f"cannot run {missing.filename}: not installed") from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise Unavailable(f"{program} failed: {' | '.join(said[-3:])} {self._log_tail()}")

    def _log_tail(self) -> str:
        return log_tail(self.log, "server log", "")


def _owner() -> pwd.struct_passwd | None:
    """The ``postgres`` user when we are root (PostgreSQL will not run as root), else
    None: we run the server as ourselves. Unavailable when root has no such user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable(
            "running as root but there is no postgres user to run PostgreSQL as "
            "(Debian package postgresql makes it)"
        ) from None


def start_server(*, durable: bool = False) -> ThrowawayPostgres:
    """A started server; its directory is removed again when it cannot start."""
    server = ThrowawayPostgres(durable=durable)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


class TestDatabases:
    """The databases one test gets on its engine: in-memory SQLite, or fresh PostgreSQL
    databases (one per harness, as an in-memory SQLite is one per harness; one per data
    directory, so that a server restarted on its data finds its books), dropped after."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, engine: str, server: ThrowawayPostgres | None = None) -> None:
        self.engine = engine
        self.server = server
        self.by_data_dir: dict[Path, str] = {}
        self.made: list[str] = []

    def url(self, data_dir: Path | None = None) -> str:
        """``:memory:`` on SQLite; on PostgreSQL a fresh database, or the one of
        ``data_dir`` when given."""
        if self.server is None:
            return ":memory:"
        if data_dir is not None and data_dir in self.by_data_dir:
            return self.by_data_dir[data_dir]
        url = self.server.create_database()
        self.made.append(url)
        if data_dir is not None:
            self.by_data_dir[data_dir] = url
        return url

    def server_database(self, data_dir: Path | None = None) -> str | None:
        """``ServerConfig.database`` for a server on ``data_dir`` (None: in memory): None
        on SQLite (the data directory's tote.db, or memory), a PostgreSQL URL otherwise."""
        return None if self.server is None else self.url(data_dir)

    def serve_flags(self, data_dir: Path) -> tuple[str, ...]:
        """The ``tote serve`` flags beside ``--data-dir`` that pick the database."""
        database = self.server_database(data_dir)
        return () if database is None else (f"--database={database}",)

    def drop_all(self) -> None:
        if self.server is not None:
            for url in self.made:
                self.server.drop_database(url)
        self.made.clear()
        self.by_data_dir.clear()


#: The running test's databases (conftest's ``engine`` fixture sets them); SQLite for
#: what runs outside pytest (the soak, the abuse scenario).
current = TestDatabases("sqlite")


def use(databases: TestDatabases) -> None:
    global current
    current = databases


def open_test_database(synchronous: str = "OFF") -> Database:
    """A fresh database with tote's schema on the running test's engine (the caller
    closes it)."""
    return open_database(current.url(), synchronous=synchronous)


def main() -> None:
    """``python -m tests.postgres [--durable]``: a throwaway server with one database,
    its URL printed, until Ctrl-C or SIGTERM (``tote bench --database URL``)."""
    import signal
    import sys

    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # taken by sigwait, even during start
    server = start_server(durable="--durable" in sys.argv[1:])
    try:
        print(server.create_database(), flush=True)
        signal.sigwait(stops)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
