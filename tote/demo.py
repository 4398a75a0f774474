"""``tote demo``: a server with a simulated match to watch in the browser.

An admin bot opens a source and a game, keeps one pool open on each action (recreating
it once an event resolves it) and registers events; player bots bet. Every bot is a real
websocket client of the server it runs beside, so the demo exercises the same paths as
real traffic, and the books it leaves pass the audit.
"""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from actors.registry import CreateSession, CreateUser, FindUser, handshake_digest, hash_password
from actors.services import Services
from actors.wallet import Deposit
from domain.codec import decode, encode
from domain.errors import DomainError
from domain.money import exponent_of, parse_amount
from tote import logs
from tote.config import ConfigError, add_flags, config_from
from tote.server import EXIT_USAGE, Endpoints, Server, ServerConfig, reporting_start_errors

log = logging.getLogger(__name__)

CURRENCY = "EUR"
SOURCE_NAME = "tote demo"
GAME_NAME = "Lions - Tigers"
ACTIONS = ["Goal", "Corner"]
TARGETS = "Lions,Tigers,Lions:9,Lions:10,Tigers:7,Tigers:11"
#: The pools kept open: one per action, on the teams.
POOL_TARGETS = "Lions,Tigers"
BOT_NAMES = ["ana", "ben", "chloe", "dev"]
BOT_DEPOSIT = "1000"
#: The logins printed for people: name -> (roles, deposit). The admin bot plays as
#: demo-admin, so whoever logs in with it sees the admin view of the match.
ADMIN = "demo-admin"
HUMANS: dict[str, tuple[tuple[str, ...], str | None]] = {
    ADMIN: (("developer",), None),
    "demo-guest": ((), "100"),
}
#: A stake is drawn from 1 to this many whole units.
MAX_STAKE_UNITS = 20
#: An event every this many steps.
EVENT_EVERY = 4
REPLY_TIMEOUT = 30.0
#: Where the bots connect when the server listens on every address.
LOOPBACK = "127.0.0.1"
WILDCARDS = ("", "0.0.0.0", "::")


@dataclass
class MatchReport:
    """What a match did, for the caller (and the test) to check."""

    game_id: str = ""
    steps: int = 0
    bets: int = 0
    refusals: int = 0
    events: int = 0
    pools_opened: int = 0


class DemoClient:
    """A websocket client that reads everything it is sent (an unread outbox would have
    the server close it) and hands each direct reply to the request waiting for it."""

    def __init__(self, ws: WebSocketConnection, name: str, user_id: int) -> None:
        self.ws = ws
        self.name = name
        self.user_id = user_id
        self._next_id = 0
        self._waiting: dict[str, trio.MemorySendChannel[dict[str, Any]]] = {}

    async def read(self) -> None:
        """Route replies until the connection ends (run as a task)."""
        while True:
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed:
                return
            message = decode(raw)
            request_id = message["response_header"].get("request_id")
            waiting = self._waiting.pop(request_id, None)
            if waiting is not None:
                waiting.send_nowait(message)

    async def call(self, op: int, **fields: Any) -> dict[str, Any]:
        """Send an op and wait for its first direct reply (a 666 included)."""
        self._next_id += 1
        request_id = f"{self.name}-{self._next_id}"
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[request_id] = send
        try:
            await self.ws.send_message(
                encode({"header": {"request_id": request_id}, "op": op, **fields}).decode()
            )
            with trio.fail_after(REPLY_TIMEOUT):
                return await receive.receive()
        finally:
            self._waiting.pop(request_id, None)

    async def expect(self, op: int, res: int, **fields: Any) -> dict[str, Any]:
        """``call``, refusing anything but ``res``: the demo's own steps must not fail."""
        reply = await self.call(op, **fields)
        if reply["res"] != res:
            raise RuntimeError(f"demo: op {op} answered {reply}")
        return reply


# -- provisioning ---------------------------------------------------------------------


async def ensure_user(
    services: Services, name: str, roles: tuple[str, ...], password: str, deposit: str | None
) -> int:
    """The user ``name`` (made when missing) with ``deposit`` paid in once: the deposit's
    reference makes a second demo on the same data pay nothing more."""
    try:
        user = await services.ask_registry(FindUser(name))
    except DomainError as error:
        if error.code != "AUTHENTICATION_FAILED":
            raise
        password_hash = (
            await trio.to_thread.run_sync(hash_password, password, services.settings.scrypt_n)
            if password
            else ""
        )
        user = await services.ask_registry(CreateUser(name, password_hash, list(roles)))
    if deposit is None:
        return user.id
    await services.ask_wallet(Deposit(user.id, CURRENCY, _minor(deposit), f"demo-seed-{name}"))
    return user.id


def _minor(amount: str) -> int:
    """An amount of the demo's currency, in minor units."""
    return parse_amount(amount, exponent_of(CURRENCY), field="amount", code="INVALID_AMOUNT")


@asynccontextmanager
async def connected(
    services: Services, address: tuple[str, int], name: str, user_id: int
) -> AsyncIterator[DemoClient]:
    """A bot's connection, with a fresh session, and its reader running."""
    session = await services.ask_registry(CreateSession(user_id))
    nonce = secrets.token_hex(8)
    digest = handshake_digest(user_id, nonce, session.session_key)
    host, port = address
    url = f"ws://{host}:{port}/?id={user_id}&n={nonce}&h={digest}"
    async with open_websocket_url(url) as ws, trio.open_nursery() as nursery:
        client = DemoClient(ws, name, user_id)
        nursery.start_soon(client.read)
        yield client
        nursery.cancel_scope.cancel()


# -- the match ------------------------------------------------------------------------


@dataclass
class Match:
    """The admin bot's view of the game: which pool is open on each action."""

    services: Services
    admin: DemoClient
    game_id: str
    details: dict[str, Any]
    report: MatchReport
    open_pools: dict[str, str] = field(default_factory=dict)  # action id -> pool id
    #: actions whose pool a bet found closed (someone else resolved it): opened anew
    closed: set[str] = field(default_factory=set)

    def leaf_targets(self) -> list[str]:
        return [
            f"{team}:{player}"
            for team, node in self.details["targets"].items()
            for player in node["targets"]
        ]

    async def open_pool(self, action: str) -> None:
        created = await self.admin.expect(
            385, 350, game_id=self.game_id, action=action, targets=POOL_TARGETS
        )
        self.open_pools[action] = created["pool_id"]
        self.report.pools_opened += 1

    async def register_event(self, rng: random.Random) -> None:
        """An event on a random action; it resolves that action's pool, which is then
        opened anew."""
        action = rng.choice(sorted(self.open_pools))
        await self.admin.expect(
            395,
            366,
            game_id=self.game_id,
            action_id=action,
            target_id=rng.choice(self.leaf_targets()),
        )
        self.report.events += 1
        await self.open_pool(action)


async def start_match(services: Services, admin: DemoClient, report: MatchReport) -> Match:
    """A source (reused when the data already has one), a new open game, its pools."""
    sources = (await admin.expect(611, 621))["sources"]
    source_id = next((s["id"] for s in sources if s["name"] == SOURCE_NAME), None)
    if source_id is None:
        source_id = (await admin.expect(365, 335, source_name=SOURCE_NAME))["source_id"]
    created = await admin.expect(
        370,
        340,
        source_id=source_id,
        game_name=GAME_NAME,
        currency=CURRENCY,
        actions=ACTIONS,
        targets=TARGETS,
    )
    game_id = created["game_id"]
    await admin.expect(616, 640, game_id=game_id)
    await admin.expect(363, 333, game_id=game_id)
    details = await admin.expect(372, 342, game_id=game_id)
    report.game_id = game_id
    match = Match(services, admin, game_id, details, report)
    for action in details["actions"]:
        await match.open_pool(action)
    return match


async def bet(bot: DemoClient, match: Match, rng: random.Random) -> None:
    """One bot's bet on a random open pool; a refusal (a pool just resolved, no money
    left) is counted, not fatal: the bots are players, not the system under test."""
    action = rng.choice(sorted(match.open_pools))
    pool_id = match.open_pools[action]
    team = rng.choice(POOL_TARGETS.split(","))
    amount = str(Decimal(rng.randint(1, MAX_STAKE_UNITS)))
    reply = await bot.call(392, pool_id=pool_id, target=team, amount=amount)
    if reply["res"] == 356:
        match.report.bets += 1
        return
    match.report.refusals += 1
    if reply.get("error_code") == "POOL_CLOSED" and match.open_pools[action] == pool_id:
        match.closed.add(action)
    elif reply.get("error_code") == "INSUFFICIENT_FUNDS":  # a long demo: lost it all
        await match.services.ask_wallet(
            Deposit(bot.user_id, CURRENCY, _minor(BOT_DEPOSIT), f"demo-top-up-{uuid.uuid4()}")
        )


async def run_match(
    services: Services,
    ws_port: int,
    *,
    host: str = LOOPBACK,
    steps: int | None,
    pace: Callable[[], Awaitable[None]],
    rng: random.Random,
    task_status: trio.TaskStatus[MatchReport] = trio.TASK_STATUS_IGNORED,
) -> MatchReport:
    """Play ``steps`` rounds (None: until cancelled): every bot bets, and every
    ``EVENT_EVERY`` rounds the admin registers an event. ``pace`` runs between rounds (a
    sleep for people to watch; a checkpoint in tests). ``task_status`` gets the report once
    the game and its pools are open."""
    report = MatchReport()
    admin_id = (await provision_humans(services))[ADMIN]
    bot_ids = {
        name: await ensure_user(services, f"demo-bot-{name}", (), "", BOT_DEPOSIT)
        for name in BOT_NAMES
    }
    address = (host, ws_port)
    async with connected(services, address, "admin", admin_id) as admin:
        match = await start_match(services, admin, report)
        task_status.started(report)
        async with AsyncExitStack() as stack:
            bots = [
                await stack.enter_async_context(connected(services, address, name, user_id))
                for name, user_id in bot_ids.items()
            ]
            while steps is None or report.steps < steps:
                async with trio.open_nursery() as nursery:
                    for bot in bots:
                        nursery.start_soon(bet, bot, match, rng)
                report.steps += 1
                for action in sorted(match.closed):
                    await match.open_pool(action)
                match.closed.clear()
                if report.steps % EVENT_EVERY == 0:
                    await match.register_event(rng)
                await pace()
    return report


# -- the command ----------------------------------------------------------------------


def human_logins() -> dict[str, str]:
    """Name -> password of the people's logins (a demo's, printed on the screen)."""
    return {name: f"{name}-pw" for name in HUMANS}


async def provision_humans(services: Services) -> dict[str, int]:
    """The people's logins (made when missing); name -> user id."""
    return {
        name: await ensure_user(services, name, HUMANS[name][0], password, HUMANS[name][1])
        for name, password in human_logins().items()
    }


def where_to_look(config: ServerConfig, endpoints: Endpoints, game_id: str) -> str:
    """The lines the demo prints once the match has started."""
    page = f"http://{config.host}:{endpoints.http_port}/#game={game_id}"
    logins = "  ".join(f"{name} / {password}" for name, password in human_logins().items())
    return (
        f"tote demo running (Ctrl-C stops it)\n"
        f"  page:     {page}\n"
        f"  logins:   {logins}  (demo-admin sees the admin view)\n"
        f"  websocket ws://{config.host}:{endpoints.ws_port}  "
        f"operator API http://{config.host}:{endpoints.http_port}/openapi.json\n"
        f"  data:     {config.data_dir}"
    )


async def _demo(config: ServerConfig, steps: int | None, step_seconds: float) -> None:
    server = Server(config)
    async with trio.open_nursery() as nursery:
        endpoints: Endpoints = await nursery.start(server.run)
        services = endpoints.services
        async with trio.open_nursery() as match:
            report = await match.start(
                partial(
                    run_match,
                    services,
                    endpoints.ws_port,
                    host=LOOPBACK if config.host in WILDCARDS else config.host,
                    steps=steps,
                    pace=partial(trio.sleep, step_seconds),
                    rng=random.Random(),
                )
            )
            print(where_to_look(config, endpoints, report.game_id), flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            match.cancel_scope.cancel()
        server.request_stop()


#: Where the demo's settings differ from ``tote serve``'s (every other setting is the
#: same flag, TOTE_... variable or --config key); data_dir defaults to a new temporary
#: directory, removed when the demo stops.
DEMO_DEFAULTS: dict[str, Any] = {"synchronous": "NORMAL", "log_level": "WARNING"}
TEMPORARY_DATA = "a new temporary directory, removed at the end"


def run_demo(args: argparse.Namespace) -> int:
    """``tote demo``: serve a simulated match until Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="tote-demo-") as temporary:
        try:
            config = demo_config(args, Path(temporary))
        except ConfigError as error:
            print(f"tote demo: {error}", file=sys.stderr)
            return EXIT_USAGE
        logs.setup(config.log_level)
        return reporting_start_errors(
            "tote demo", partial(trio.run, _demo, config, args.steps, args.step_seconds)
        )


def demo_config(
    args: argparse.Namespace, temporary: Path, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """The demo server's settings, read as ``tote serve`` reads them (flags, TOTE_...
    variables, --config file) over the demo's defaults."""
    config = config_from(args, environ, {**DEMO_DEFAULTS, "data_dir": temporary})
    if config.settings.remote_wallet:
        raise ConfigError("wallet_url: the demo pays its bots in, so it keeps the money itself")
    return config


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def _whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: ASCII digits from ``low`` to ``high``."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return int(text)

    return parse


def add_demo_command(sub: Any) -> None:
    """The ``demo`` subcommand, for ``tote.cli.build_parser``: the demo's own options and
    every server setting, as ``tote serve`` has them."""
    demo = sub.add_parser(
        "demo",
        help="run a server with a simulated match to watch in the browser",
        description="Start a server with a simulated match (bots bet, events fire, pools "
        "resolve and reopen) and print the page to open and the logins to use. Every "
        "server setting is a flag, a TOTE_ environment variable or a key of the --config "
        "TOML file, as for `tote serve` (docs/operations.md).",
    )
    demo.add_argument(
        "--step-seconds", type=_seconds, default=1.0, help="pause between betting rounds"
    )
    demo.add_argument(
        "--steps", type=_whole(1, 10**9), default=None, help="stop betting after this many rounds"
    )
    add_flags(demo, {"data_dir": TEMPORARY_DATA, **DEMO_DEFAULTS})
    demo.set_defaults(run=run_demo)
