"""Assembly: one root nursery holding the supervisor, the actors and both servers."""

from __future__ import annotations

import gc
import logging
import os
import resource
import secrets
import signal
import stat
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import psycopg
import trio

from actors.betslips import BetslipDesk
from actors.directory import Games
from actors.hub import Hub
from actors.registry import RegistryActor
from actors.remote import CallbacksActor, OperatorClient
from actors.services import Base, OperatorWallet, Services
from actors.wallet import WalletActor
from cluster.lease import GAMES_LEASE
from cluster.node import (
    LeaseFactory,
    Node,
    Wiring,
    exit_process,
    lease_from_store,
    new_node_id,
)
from kit.clock import WallClock
from kit.metrics import Metrics
from kit.runtime import Mailbox, Supervisor
from kit.settings import Settings
from storage.actor import Storage, StorageActor
from storage.database import Database, PostgresDatabase, open_database
from storage.dialect import redacted
from transport.frames import Frame, text_frame
from transport.http import serve_http
from transport.presenters import frame
from transport.routes_betslips import render as render_slip
from transport.websocket import serve_ws

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseException)


class StartError(Exception):
    """The server cannot start; the message says why and what to change, in one line."""


def first_of(error: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` in ``error`` or in the trio exception groups wrapped around it."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = first_of(inner, kind)
            if found is not None:
                return found
    return None


@dataclass
class ServerConfig:
    data_dir: Path | None = None  # None: an in-memory database (tests)
    # postgresql://USER:PASS@HOST:PORT/DB: every byte of state in PostgreSQL (issue 21);
    # None: SQLite in data_dir. Never logged as given: it may hold a password.
    database: str | None = None
    host: str = "127.0.0.1"
    ws_port: int = 8765
    http_port: int = 8766
    operator_key: str | None = None
    synchronous: str = "FULL"
    log_level: str = "INFO"  # set up by `tote serve`, before the server starts
    offload: bool = True  # SQLite in a worker thread; False only under a mock clock
    # redis://HOST:PORT/DB: a node of a cluster (issue 22, docs/cluster.md); needs database
    redis: str | None = None
    node_id: str | None = None  # a cluster node's name; None: a random n-<hex8> per start
    settings: Settings = field(default_factory=Settings)


@dataclass(frozen=True)
class Endpoints:
    ws_port: int
    http_port: int
    operator_key: str
    services: Services


def operator_key_for(config: ServerConfig) -> tuple[str, bool]:
    """The operator key from config/env, else the one kept in the data directory, else a
    new one saved there. Returns (key, newly_generated)."""
    key = config.operator_key or os.environ.get("TOTE_OPERATOR_KEY")
    if key:
        return key, False
    if config.data_dir is None:
        return secrets.token_hex(32), True
    path = config.data_dir / "operator_key"
    if not path.exists():
        make_private_dir(config.data_dir)
        key = _new_key_file(path)
        if key is not None:
            return key, True
    key = path.read_text().strip()
    if not key:
        raise StartError(
            f"{path} is empty: delete it to have a new key made, or set TOTE_OPERATOR_KEY"
        )
    return key, False


def _new_key_file(path: Path) -> str | None:
    """A new key saved in ``path``, which is never readable by others nor seen half
    written: the key goes to a private (0600) temporary file, then is linked into place.
    None when another start saved one first."""
    key = secrets.token_hex(32)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(key + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)
    except FileExistsError:
        return None
    finally:
        temporary.unlink(missing_ok=True)
    return key


def make_private_dir(path: Path) -> None:
    """The data directory, made readable by the owner only (it holds the books and the
    key); one an operator made beforehand keeps the mode they gave it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def warn_if_others_may_read(path: Path) -> None:
    """A database made before tote made it private (or copied in) keeps its mode: the
    operator decides, and is told once per start."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "database_readable_by_others",
            extra={"path": str(path), "mode": f"{mode:04o}", "fix": f"chmod 600 {path}"},
        )


def open_storage(config: ServerConfig) -> tuple[Database, str]:
    """The blocking part of start-up (directory, schema, key file), for a thread. A new
    database file is private (0600) from its first byte, whatever the umask; SQLite gives
    its -wal and -shm files the database's mode. Raises StartError when PostgreSQL cannot
    be reached (its URL's password left out)."""
    if config.database is not None:
        try:
            database = open_database(config.database, synchronous=config.synchronous)
        except psycopg.Error as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else error
            raise StartError(
                f"cannot open the database {redacted(config.database)}: {reason}; "
                "check --database (TOTE_DATABASE)"
            ) from None
    elif config.data_dir is None:
        database = Database(":memory:", synchronous=config.synchronous)
    else:
        make_private_dir(config.data_dir)
        path = config.data_dir / "tote.db"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        warn_if_others_may_read(path)
        database = Database(path, synchronous=config.synchronous)
    return database, operator_key_for(config)[0]


async def listen(
    start: Callable[[], Awaitable[int]], what: str, option: str, host: str, port: int
) -> int:
    """Start a transport; when its port cannot be had (taken, not allowed, no such host),
    one StartError that names the port and the option to change, not a page of groups."""
    try:
        return await start()
    except* OSError as group:
        failure = first_of(group, OSError)
        assert failure is not None  # except* matched at least one
        raise StartError(
            f"cannot listen for the {what} on {host}:{port}: {failure.strerror or failure}; "
            f"free it or choose another with --{option} (or another --host)"
        ) from None


async def start_services(
    config: ServerConfig,
    database: Database,
    operator_key: str,
    *,
    task_status: trio.TaskStatus[Services] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start the supervisor and every actor, recovered from storage; runs until cancelled.

    Tests that need no sockets (timers under a mock clock, chaos) start just this.
    """
    async with trio.open_nursery() as nursery:
        base = await nursery.start(start_base, config, database)
        task_status.started(await start_owner(config, base, operator_key, nursery))


async def start_base(
    config: ServerConfig,
    database: Database,
    *,
    task_status: trio.TaskStatus[Base] = trio.TASK_STATUS_IGNORED,
) -> None:
    """What every node runs, owner or not: the supervisor, the hub, the storage actor, the
    metrics and the clock; runs until cancelled."""
    metrics = Metrics(slow_commit_seconds=config.settings.slow_commit_seconds)
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(on_restart=metrics.actor_restarted)
        await nursery.start(supervisor.run)
        metrics.watch_inboxes(supervisor.inbox_depths)
        clock = WallClock()
        # the hub's bytes are a whole websocket frame, built once for every recipient (on
        # every node of a cluster: another node's bytes are adopted as frames as they are)
        hub = Hub(
            lambda event, header: text_frame(frame(event, header, t=clock.now_ms())), adopt=Frame
        )
        await nursery.start(hub.run)
        storage = await _start_storage(config, database, supervisor, metrics)
        task_status.started(Base(supervisor, hub, storage, clock, metrics))


async def start_owner(
    config: ServerConfig, base: Base, operator_key: str, nursery: trio.Nursery
) -> Services:
    """The business actors (registry, wallet, the directory's games and pools, the betslip
    desk, the callbacks worker), recovered from storage, under the base's supervisor: a
    single node's, or a cluster's owner's once it holds the lease."""
    supervisor, storage, clock, hub = base.supervisor, base.storage, base.clock, base.hub
    registry = await supervisor.spawn(
        "registry", lambda inbox: RegistryActor.load(inbox, storage, clock)
    )
    remote_wallet = config.settings.remote_wallet
    wallet = await supervisor.spawn(
        "wallet",
        # remote mode: the operator keeps the balances, so there are none to push
        lambda inbox: WalletActor.load(
            inbox, storage, clock, _no_push if remote_wallet else hub.to_user, remote_wallet
        ),
        capacity=4096,
    )
    services = Services(
        storage,
        supervisor,
        registry,
        wallet,
        hub,
        clock,
        config.settings,
        operator_key,
        directory=Games,
        desk=BetslipDesk,
        wallet_client=OperatorClient if remote_wallet else None,
        metrics=base.metrics,  # the one the supervisor and storage already report to
    )
    if services.operator is not None:
        nursery.start_soon(_close_at_exit, services.operator)
        await supervisor.spawn("callbacks", lambda inbox: _callbacks(inbox, services))
    await services.games.start()
    return services


async def _start_storage(
    config: ServerConfig, database: Database, supervisor: Supervisor, metrics: Metrics
) -> Storage:
    """The storage actor, started, behind the interface every other actor uses."""

    async def storage_actor(inbox: Mailbox) -> StorageActor:
        return StorageActor(database, inbox, offload=config.offload, on_commit=metrics.committed)

    return Storage(
        await supervisor.spawn("storage", storage_actor, capacity=4096),
        timeout=config.settings.request_timeout,
        offload=config.offload,
        path=database.path,
    )


def _no_push(user_id: int, event: object) -> None:
    """Remote wallet mode: no balance to tell anyone (the operator keeps it)."""


async def _callbacks(inbox: Mailbox, services: Services) -> CallbacksActor:
    return CallbacksActor(inbox, services)


async def _close_at_exit(operator: OperatorWallet) -> None:
    try:
        await trio.sleep_forever()
    finally:
        with trio.move_on_after(2) as cleanup:
            cleanup.shield = True
            await operator.aclose()


#: Allocations between young collections (CPython's default is 700): a bet allocates
#: hundreds of short-lived objects, and a larger first generation lets them die young
#: instead of being promoted into the generations that full collections scan.
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_garbage_collection() -> None:
    """After start-up: collect once, then freeze what is left (the recovered state, the
    code, the actors) so that later collections never scan it again, and collect the
    young generation less often. Full collections scan every tracked object: with 100k
    bets or 1,000 connections they took 80 to 200 ms of stall each (issue 11)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one: every connection is a file
    descriptor, and a distribution's soft default (often 1,024) would turn a few
    thousand idle clients into refused accepts long before memory runs short. Returns
    (before, after); the hard limit itself is the operator's (``ulimit -Hn``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # an unlimited hard limit some systems refuse as a soft one
        log.warning("open_file_limit_kept", extra={"soft": soft, "hard": hard})
        return soft, soft
    log.info("open_file_limit_raised", extra={"before": soft, "after": hard})
    return soft, hard


class Server:
    def __init__(
        self,
        config: ServerConfig,
        *,
        lease: Callable[[str], LeaseFactory] | None = None,
        exit_node: Callable[[str], None] = exit_process,
    ) -> None:
        """``lease``: a cluster node's lease by node id (tests give a fake one; default:
        the owner lease in PostgreSQL); ``exit_node``: how a node that lost its lease
        ends (default: the process, at once; tests record it)."""
        self.config = config
        self._stop = trio.Event()
        self._lease = lease
        self._exit_node = exit_node
        self.node: Node | None = None  # a cluster node's, once started

    def request_stop(self) -> None:
        self._stop.set()

    async def run(
        self, *, task_status: trio.TaskStatus[Endpoints] = trio.TASK_STATUS_IGNORED
    ) -> None:
        config = self.config
        database, operator_key = await trio.to_thread.run_sync(open_storage, config)
        try:
            async with trio.open_nursery() as nursery:
                if config.redis is None:
                    services = await nursery.start(start_services, config, database, operator_key)
                else:
                    services = await nursery.start(self._start_node, database, operator_key)
                async with trio.open_nursery() as transports:
                    ws = await listen(
                        partial(transports.start, serve_ws, services, config.host, config.ws_port),
                        "websocket",
                        "ws-port",
                        config.host,
                        config.ws_port,
                    )
                    http = await listen(
                        partial(
                            transports.start, serve_http, services, config.host, config.http_port
                        ),
                        "HTTP API",
                        "http-port",
                        config.host,
                        config.http_port,
                    )
                    services.ws_port, services.http_port = ws, http
                    services.ready.set()
                    settle_garbage_collection()
                    task_status.started(Endpoints(ws, http, operator_key, services))
                    await self._stop.wait()
                    log.info("shutting down: no new traffic, draining actors")
                    transports.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await services.supervisor.stop_all(timeout=5.0)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(database.close)

    async def _start_node(
        self,
        database: Database,
        operator_key: str,
        *,
        task_status: trio.TaskStatus[Services] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """A cluster node (docs/cluster.md): the base, then the node, which reports the
        routed services the transports hold."""
        config = self.config
        assert config.redis is not None and config.database is not None  # config checks
        node_id = config.node_id or new_node_id()
        lease = self._lease or partial(
            lease_from_store, config.database, lease_seconds=config.settings.lease_seconds
        )
        async with trio.open_nursery() as nursery:
            base = await nursery.start(start_base, config, database)
            self.node = Node(
                Wiring(
                    config.redis,
                    node_id,
                    operator_key,
                    config.settings,
                    base,
                    lease=lease(node_id),
                    start_owner=partial(start_owner, config, base, operator_key),
                    fence=partial(_fence, database, node_id, config.settings.lease_seconds),
                    render=render_slip,
                    exit=self._exit_node,
                )
            )
            log.info("cluster_node", extra={"node_id": node_id, "redis": redacted(config.redis)})
            task_status.started(await nursery.start(self.node.run))


def _fence(
    database: Database,
    node_id: str,
    lease_seconds: float,
    epoch: int,
    exit_with: Callable[[str], None],
) -> None:
    """Every write of this node's storage actor fenced by the games lease at ``epoch``
    (``PostgresDatabase.fence``); a refused write ends the process (``exit_with``). A
    write transaction left idle for half a lease (this process paused) is ended by
    PostgreSQL, so that it cannot keep another node from taking the lease."""
    if not isinstance(database, PostgresDatabase):  # config refuses --redis without it
        raise StartError("a cluster node needs PostgreSQL (--database postgresql://...)")
    database.fence_idle_ms = round(lease_seconds * 500)
    database.fence = (GAMES_LEASE, node_id, epoch)
    database.on_fenced = lambda: exit_with("a write was fenced")


#: A setting is wrong (argparse uses the same status for a bad flag).
EXIT_USAGE = 2
#: ``tote serve`` could not start (a port taken, an unreadable key file).
EXIT_CANNOT_START = 3


def reporting_start_errors(command: str, run: Callable[[], None]) -> int:
    """Run a server command; a StartError (possibly inside trio's exception groups) ends
    it with one line on stderr and EXIT_CANNOT_START, not a page of tracebacks."""
    try:
        run()
    except (StartError, BaseExceptionGroup) as error:
        failure = first_of(error, StartError)
        if failure is None:
            raise
        print(f"{command}: {failure}", file=sys.stderr)
        return EXIT_CANNOT_START
    return 0


def data_location(config: ServerConfig) -> str:
    """Where the server keeps its data, fit for a log line (no password)."""
    return redacted(config.database) if config.database else str(config.data_dir)


async def serve_until_signalled(config: ServerConfig) -> None:
    """Run a server until SIGINT or SIGTERM, then stop it gracefully (``tote serve`` and
    the benchmark's server process)."""
    server = Server(config)
    async with trio.open_nursery() as nursery:
        endpoints = await nursery.start(server.run)
        print(
            f"tote ready: websocket ws://{config.host}:{endpoints.ws_port}  "
            f"http http://{config.host}:{endpoints.http_port}  "
            f"data {data_location(config)}",
            flush=True,
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                server.request_stop()
                break
