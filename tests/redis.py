"""A throwaway Redis server for the tests that need one (the cluster's).

Debian's ``redis-server`` on a free loopback port, with no persistence (nothing is
saved: the tests kill Redis to see what a lost Redis costs, never the machine), in a
private temporary directory. ``kill`` and ``restart`` stand for a crash of Redis (its
data is gone, as it would be without persistence). The server is stopped and its
directory removed at the end of the session, and by a watcher process of its own when
the session is killed.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.postgres import (
    PORT_ATTEMPTS,
    Unavailable,
    free_port,
    log_tail,
    reap_when_gone,
    stop_reaper,
)

#: How long a server may take to accept connections after it started.
START_SECONDS = 30.0


@dataclass
class ThrowawayRedis:
    """One Redis server; ``start`` raises Unavailable with the reason in one line."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tote-redis-")))
    port: int = 0
    _server: subprocess.Popen[bytes] | None = None
    _reaper: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    def start(self) -> None:
        """Start on a free port; returns once it answers PING."""
        atexit.register(self.stop)
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable(
                "no Redis server: redis-server is not installed "
                "(Debian package redis-server; `make test` installs it)"
            )
        for attempt in range(PORT_ATTEMPTS):
            self.port = self.port if attempt == 0 and self.port else free_port()
            self._launch(binary)
            if self._wait_until_ready():
                self._reap_if_we_die()
                return
            self._halt()
            if attempt + 1 == PORT_ATTEMPTS or "Address already in use" not in self._log_tail():
                raise Unavailable(f"redis-server did not start: {self._log_tail()}")

    def _launch(self, binary: str) -> None:
        self._server = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
                *("--dir", str(self.root), "--logfile", str(self.log)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait_until_ready(self) -> bool:
        """True once the server answers PING; False when it exited first or took too long
        (a start-up wait on a real process: not a test's timing)."""
        limit = time.monotonic() + START_SECONDS
        while time.monotonic() < limit:
            if self._server is None or self._server.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def kill(self) -> None:
        """``kill -9`` of the server: its data (nothing is persisted) is gone."""
        if self._server is not None:
            self._server.send_signal(signal.SIGKILL)
            self._server.wait()
            self._server = None

    def restart(self) -> None:
        """Start again on the same port, empty, after ``kill``."""
        self.kill()
        binary = shutil.which("redis-server")
        assert binary is not None
        self._launch(binary)
        if not self._wait_until_ready():
            raise Unavailable(f"redis-server did not start again: {self._log_tail()}")

    def _halt(self) -> None:
        if self._server is not None:
            self._server.kill()
            self._server.wait()
            self._server = None

    def stop(self) -> None:
        """Stop the server and remove its directory; safe to call twice."""
        atexit.unregister(self.stop)
        stop_reaper(self._reaper)
        self._reaper = None
        self._halt()
        shutil.rmtree(self.root, ignore_errors=True)

    def _reap_if_we_die(self) -> None:
        """A process of its own that kills the server and removes its directory once we
        are gone without doing it (SIGTERM, SIGKILL: a CI timeout), within a second."""
        assert self._server is not None
        self._reaper = reap_when_gone(f"kill -9 {self._server.pid}", self.root)

    def _log_tail(self) -> str:
        return log_tail(self.log, "redis log", "no log")


def start_server() -> ThrowawayRedis:
    """A started server; its directory is removed again when it cannot start."""
    server = ThrowawayRedis()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def main() -> None:
    """``python -m tests.redis``: a throwaway server, its URL printed, until Ctrl-C or
    SIGTERM (``tote bench --cluster``, ``tote cluster-demo`` by hand)."""
    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    server = start_server()
    try:
        print(server.url, flush=True)
        signal.sigwait(stops)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
