"""Shared fixtures: a real server on loopback ports (port 0), real clients, an audit."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, settings
from trio_websocket import open_websocket_url
from wsproto.frame_protocol import FrameProtocol

from actors import game as g
from actors.directory import CreateGame
from actors.registry import OpenSource, handshake_digest
from domain.codec import decode, encode
from domain.ledger import audit
from kit.runtime import Mailbox
from kit.settings import Settings
from tests import postgres as engines
from tests.postgres import (
    TestDatabases,
    ThrowawayPostgres,
    Unavailable,
    default_engine,
    must_run,
    open_test_database,
    start_server,
)
from tests.redis import ThrowawayRedis
from tests.redis import start_server as start_redis
from tote.server import Endpoints, Server, ServerConfig
from transport.frames import Frame

#: No test may depend on timing: hypothesis's per-example deadline (200 ms) and its
#: too-slow health check judge the machine, not the code, and a busy CI machine fails
#: them. Every property test runs without them; a test's own @settings adds to this.
settings.register_profile("untimed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("untimed")

#: Password hashes in tests: the real cost (N=2^17) would make every user take ~1 s.
CHEAP_SCRYPT_N = 2**10


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """``tote serve`` run in-process points the root logger at the stderr of its test
    (a capture, closed afterwards); the next test gets the logger back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# -- the engine: SQLite, PostgreSQL or both (tests/postgres.py) -------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``both_engines`` runs once per engine when the suite's engine is
    SQLite (``make test``), on PostgreSQL only under ``make test-postgres``; one marked
    ``postgresql_only`` (what only PostgreSQL has: its server restarted) on PostgreSQL
    under both."""
    if metafunc.definition.get_closest_marker("postgresql_only") is not None:
        metafunc.parametrize("engine", ["postgresql"], indirect=True)
        return
    if metafunc.definition.get_closest_marker("both_engines") is None:
        return
    engines = ["sqlite", "postgresql"] if default_engine() == "sqlite" else ["postgresql"]
    metafunc.parametrize("engine", engines, indirect=True)


def _started(start: Callable[[], Any], what: str, must: bool) -> Iterator[Any]:
    """A throwaway server from ``start``, stopped after the test (or session); when it
    cannot start, the test fails with the reason when ``must``, else is skipped."""
    try:
        server = start()
    except Unavailable as why:
        line = f"{what} unavailable for the tests: {why}"
        if must:
            pytest.fail(line, pytrace=False)
        pytest.skip(line)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    """The session's throwaway PostgreSQL. When it cannot start, the tests that need it
    fail with the reason in CI or under TOTE_TEST_ENGINE=postgresql, else are skipped."""
    yield from _started(start_server, "PostgreSQL", must_run())


@pytest.fixture(autouse=True)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """The engine this test's harnesses build their databases on; each database made is
    dropped after the test. A test marked ``sqlite_only(reason)`` is skipped on
    PostgreSQL with that reason."""
    name = getattr(request, "param", None) or default_engine()
    server = None
    if name == "postgresql":
        only = request.node.get_closest_marker("sqlite_only")
        if only is not None:
            pytest.skip(f"SQLite only: {only.args[0]}")
        server = request.getfixturevalue("postgres")
    databases = TestDatabases(name, server)
    engines.use(databases)
    try:
        yield name
    finally:
        engines.use(TestDatabases("sqlite"))
        databases.drop_all()


@pytest.fixture
def postgres_url(postgres: ThrowawayPostgres) -> Iterator[str]:
    """A fresh PostgreSQL database with tote's schema, whatever the engine; dropped after."""
    url = postgres.create_database()
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture
def redis() -> Iterator[ThrowawayRedis]:
    """A throwaway Redis of this test's own (it starts in a few milliseconds, and a test
    may kill it). When it cannot start, the test fails with the reason in CI, else is
    skipped."""
    yield from _started(start_redis, "Redis", bool(os.environ.get("CI")))


@pytest.fixture
def redis_url(redis: ThrowawayRedis) -> str:
    return redis.url


@pytest.fixture
def database_url() -> str:
    """``:memory:`` on SQLite, a fresh database with tote's schema on PostgreSQL."""
    return engines.current.url()


async def ledger_problems(services: Any) -> list[str]:
    """The audit of decisions §3 over every ledger line and every stored balance: empty
    when the books balance and the stored balances are the ledger's totals."""
    rows, stored = await services.storage.read(
        lambda db: (
            [
                (r["tx_id"], r["account"], r["currency"], r["amount"])
                for r in db.rows("SELECT tx_id, account, currency, amount FROM ledger")
            ],
            {
                (r["account"], r["currency"]): r["balance"]
                for r in db.rows("SELECT account, currency, balance FROM balances")
            },
        )
    )
    return audit(rows, stored)


#: How long a client waits for a message that must come: only a lost message takes this
#: long, so it is generous enough for a busy machine and never a measure of speed.
PATIENCE = 30.0


class WsClient:
    """A websocket client that speaks the envelope and can wait for a given res."""

    def __init__(self, ws: Any, user_id: int) -> None:
        self.ws = ws
        self.user_id = user_id
        self.inbox: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def send(self, op: int, **fields: Any) -> str:
        request_id = f"r{next(self._ids)}"
        await self.ws.send_message(
            encode({"header": {"request_id": request_id}, "op": op, **fields}).decode()
        )
        return request_id

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send_message(data)

    async def receive(self, timeout: float = PATIENCE) -> dict[str, Any]:
        with trio.fail_after(timeout):
            return decode(await self.ws.get_message())

    async def expect(
        self,
        res: int | tuple[int, ...],
        *,
        request_id: str | None = None,
        timeout: float = PATIENCE,
    ) -> dict[str, Any]:
        """The first message (queued or new) with this res (and request_id, if given)."""
        wanted = (res,) if isinstance(res, int) else res

        def matches(m: dict[str, Any]) -> bool:
            return m["res"] in wanted and (
                request_id is None or m["response_header"].get("request_id") == request_id
            )

        for i, m in enumerate(self.inbox):
            if matches(m):
                return self.inbox.pop(i)
        with trio.fail_after(timeout):
            while True:
                m = decode(await self.ws.get_message())
                if matches(m):
                    return m
                self.inbox.append(m)

    async def call(
        self, op: int, res: int | tuple[int, ...] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send and wait for the direct reply (any res, including 666) to this request."""
        request_id = await self.send(op, **fields)
        with trio.fail_after(PATIENCE):
            while True:
                m = decode(await self.ws.get_message())
                if m["response_header"].get("request_id") == request_id:
                    if res is not None and m["res"] != res and m["res"] == 666:
                        raise AssertionError(f"op {op} failed: {m}")
                    return m
                self.inbox.append(m)

    async def drain(self, wait: float = 0.05) -> list[dict[str, Any]]:
        while True:
            with trio.move_on_after(wait):
                self.inbox.append(decode(await self.ws.get_message()))
                continue
            break
        out, self.inbox = self.inbox, []
        return out


class Harness:
    """A running server plus helpers to provision users over the operator API."""

    def __init__(self, endpoints: Endpoints, nursery: trio.Nursery) -> None:
        self.endpoints = endpoints
        self.services = endpoints.services
        self.nursery = nursery
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{endpoints.http_port}",
            headers={"Authorization": f"Bearer {endpoints.operator_key}"},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def user(
        self,
        name: str | None = None,
        *,
        roles: list[str] | None = None,
        deposit: str | None = None,
        currency: str = "EUR",
    ) -> dict[str, Any]:
        name = name or f"user-{secrets.token_hex(4)}"
        r = await self.http.post(
            "/v1/users", json={"name": name, "password": "pw-" + name, "roles": roles or []}
        )
        assert r.status_code == 201, r.text
        user = r.json()
        r = await self.http.post(f"/v1/users/{user['user_id']}/sessions")
        assert r.status_code == 201, r.text
        user["session_key"] = r.json()["session_key"]
        if deposit is not None:
            r = await self.http.post(
                f"/v1/users/{user['user_id']}/deposits",
                json={"currency": currency, "amount": deposit, "reference": secrets.token_hex(8)},
            )
            assert r.status_code in (200, 201), r.text
        return user

    def ws_url(self, user: dict[str, Any], nonce: str | None = None) -> str:
        nonce = nonce or secrets.token_hex(8)
        digest = handshake_digest(user["user_id"], nonce, user["session_key"])
        return f"ws://127.0.0.1:{self.endpoints.ws_port}/?id={user['user_id']}&n={nonce}&h={digest}"

    def connect(self, user: dict[str, Any]) -> Any:
        return _connected(self.ws_url(user), user["user_id"])

    async def audit(self) -> list[str]:
        return await ledger_problems(self.services)


class _connected:
    def __init__(self, url: str, user_id: int) -> None:
        self._cm = open_websocket_url(url)
        self._user_id = user_id

    async def __aenter__(self) -> WsClient:
        return WsClient(await self._cm.__aenter__(), self._user_id)

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._cm.__aexit__(*exc)


@asynccontextmanager
async def running_harness(data_dir: Path | None = None, **settings: Any) -> AsyncIterator[Harness]:
    """A server on an in-memory database (or one in ``data_dir``, for what needs a file:
    a second connection, a restart), on PostgreSQL a fresh database (the data
    directory's, for a restart); the books are audited when it stops.
    ``settings``: Settings fields to change."""
    server = Server(
        ServerConfig(
            ws_port=0,
            http_port=0,
            data_dir=data_dir,
            database=engines.current.server_database(data_dir),
            synchronous="OFF",
            settings=Settings(scrypt_n=CHEAP_SCRYPT_N, **settings),
        )
    )
    async with trio.open_nursery() as nursery:
        endpoints = await nursery.start(server.run)
        h = Harness(endpoints, nursery)
        try:
            yield h
            problems = await h.audit()
            assert problems == [], problems
        finally:
            await h.aclose()
            server.request_stop()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with running_harness() as h:
        yield h


def payload_of(data: bytes) -> bytes:
    """What a connection's ``push`` got, as the message: a payload, or a ready websocket
    frame (the hub's broadcasts) unwrapped."""
    if not isinstance(data, Frame):
        return data
    reader = FrameProtocol(client=True, extensions=[])
    reader.receive_bytes(data)
    return b"".join(frame.payload.encode() for frame in reader.received_frames())


class FakeConnection:
    """Stands in for a websocket connection in actor-level tests: keeps what it is sent."""

    def __init__(self, user_id: int, user_name: str = "") -> None:
        self.user_id = user_id
        self.user_name = user_name or f"user{user_id}"
        self.received: list[dict[str, Any]] = []

    def push(self, data: bytes) -> None:
        self.received.append(decode(payload_of(data)))

    def join(self) -> g.Join:
        """The message that subscribes this connection to a game."""
        return g.Join(self.user_id, self.user_name, self.push)

    def take(self, res: int) -> list[dict[str, Any]]:
        """Remove and return every received message with this res."""
        hits = [m for m in self.received if m["res"] == res]
        self.received = [m for m in self.received if m["res"] != res]
        return hits


class ActorHarness:
    """The actors without sockets, on an in-memory store run inline (no threads), so that
    tests under trio's autojump clock see timers fire exactly when they should."""

    def __init__(self, services: Any, nursery: trio.Nursery) -> None:
        self.services = services
        self.nursery = nursery

    async def user(
        self, name: str, *, roles: tuple[str, ...] = (), deposit: int = 0, currency: str = "EUR"
    ) -> int:
        from actors.registry import CreateUser
        from actors.wallet import Deposit

        user = await self.services.ask_registry(CreateUser(name, "", list(roles)))
        if deposit:
            await self.services.ask_wallet(Deposit(user.id, currency, deposit, f"seed-{name}"))
        return user.id

    async def audit(self) -> list[str]:
        return await ledger_problems(self.services)


@pytest.fixture
async def actors() -> AsyncIterator[ActorHarness]:
    """Actors only (no transports), store inline; the books are audited at the end."""
    from tote.server import start_services

    database = open_test_database()
    config = ServerConfig(offload=False)
    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, config, database, "key")
        h = ActorHarness(services, nursery)
        try:
            yield h
            problems = await h.audit()
            assert problems == [], problems
        finally:
            nursery.cancel_scope.cancel()
    database.close()


# -- a game ready for pools, over the websocket and on the actors ----------------------


async def setup_game(admin_ws: WsClient, **game: Any) -> str:
    """A source, an open Argentina - Brazil game, the caller its admin and subscriber."""
    source = await admin_ws.call(365, 335, source_name="example.com")
    created = await admin_ws.call(
        370,
        340,
        source_id=source["source_id"],
        game_name="Argentina - Brazil",
        currency="EUR",
        actions=["Goal", "Offside"],
        targets="Argentina,Brazil,Argentina:1,Argentina:2,Brazil:7",
        **game,
    )
    game_id = created["game_id"]
    assert (await admin_ws.call(616, game_id=game_id))["res"] == 640
    assert (await admin_ws.call(363, 333, game_id=game_id))["res"] == 333
    return game_id


@dataclass
class Match:
    """An opened game on the actors, with its admin and a subscriber that keeps what the
    game broadcasts."""

    h: ActorHarness
    game_id: str
    admin: int
    watcher: FakeConnection

    @property
    def now(self) -> int:
        return self.h.services.clock.now_ms()

    @property
    def game(self) -> Mailbox:
        box = self.h.services.supervisor.mailbox(f"game:{self.game_id}")
        assert box is not None, "the game actor is not running"
        return box

    async def pool(self, **fields: Any) -> tuple[str, Mailbox]:
        created = await self.game.ask(
            g.CreatePool(self.admin, {"action": "goal", "targets": "a,b", **fields})
        )
        return created.pool_id, (await self.h.services.games.pool(created.pool_id))[1]

    async def player(self, name: str, deposit: int = 100_00) -> int:
        """A user with money, whose balance pushes (815) land in ``self.pushes[id]``."""
        user_id = await self.h.user(name, deposit=deposit)
        conn = FakeConnection(user_id)
        self.h.services.hub.connect(user_id, conn.push)
        self.pushes[user_id] = conn
        return user_id

    def __post_init__(self) -> None:
        self.pushes: dict[int, FakeConnection] = {}


async def open_match(
    h: ActorHarness, watcher: FakeConnection | None = None, *, name: str = "admin"
) -> Match:
    """An open game on the actors; ``name`` names its admin (one match per name)."""
    admin = await h.user(name, roles=("developer", "house"))  # house: pool rules of any kind
    source = await h.services.ask_registry(OpenSource(admin, "src", ""))
    game = await h.services.games.create_game(
        CreateGame(
            source.id,
            admin,
            {"game_name": "A - B", "actions": "goal", "targets": "a,b,c,a:1,a:2,b:1"},
            opened=True,
        )
    )
    box = await h.services.games.game(game.id)
    assert (await box.ask(g.BecomeAdmin(admin))).refused is None
    watcher = watcher or FakeConnection(admin)
    await box.ask(watcher.join())
    return Match(h, game.id, admin, watcher)
