"""The cluster's scenarios as real processes (tests/cluster_nodes.py): the clients of its
nodes, subscribers that record every numbered broadcast (and resume elsewhere with
``since_seq`` when their node goes), bettors that record every request's outcome for the
checker (tests/reliability/cluster_checker.py), the database read afterwards, and the
failover round (issue 22 §5: ``kill -9`` of the owner mid-match) that tests/test_cluster.py
runs once and ``make soak`` in a loop.

A bet is known in the database by (user, pool, stake): each bettor's n-th request stakes
n cents, so every request has a stake of its own."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from domain.codec import decode
from tests.cluster_nodes import Cluster, ClusterNode, running_cluster, supervise
from tests.conftest import PATIENCE, Harness, WsClient, ledger_problems, setup_game
from tests.reliability.cluster_checker import (
    UNKNOWN_CODES,
    Broadcast,
    History,
    Outcome,
    Stored,
    Subscriber,
    Verdict,
    check,
)
from tests.reliability.invariants import pool_problems
from tests.reliability.load import TARGETS, DatabaseAt, Figures, open_pools
from tote.server import Endpoints

#: The failover scenarios' lease: short, so a takeover takes seconds, yet long enough
#: that a node starved of CPU on a busy machine for a second (half a lease is the limit)
#: keeps it; the soak's figures of docs/reliability.md were measured at 2 s.
LEASE_SECONDS = 5.0
#: An edge's wait for the owner's answer: short, so a request the dead owner took is
#: answered (as unknown) soon.
NODE_FLAGS = ("--request-timeout", "3")
#: What a connection to a node that is gone or going raises.
GONE = (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError)
#: The pause before a client connects again (a node restarting, or none left yet).
RECONNECT_PAUSE = 0.1
#: How long a websocket handshake may take before the next node is tried (a node that is
#: stopped takes the TCP connection and never answers).
CONNECT_SECONDS = 5
#: The most bets one bettor sends in a round, the n-th staking n cents, and the money
#: that pays for all of them (a bettor answered at once, refused by the rate limit or
#: while Redis is away, goes through hundreds a second: it must not run out mid-round).
MAX_BETS = 20_000
PLAYER_MONEY = str(MAX_BETS * (MAX_BETS + 1) // 200)


class Clients:
    """A ``Harness`` per node (its HTTP client and websocket URLs), made anew when the node
    restarted on new ports."""

    def __init__(self, cluster: Cluster, stack: AsyncExitStack) -> None:
        self.cluster, self.stack = cluster, stack
        self.by_node: dict[str, tuple[int, Harness]] = {}

    def __getitem__(self, node: ClusterNode) -> Harness:
        start, harness = self.by_node.get(node.node_id, (0, None))
        if harness is None or start != node.starts:
            endpoints = Endpoints(node.ws_port, node.http_port, self.cluster.operator_key, None)
            harness = Harness(endpoints, None)  # type: ignore[arg-type]  # a subprocess's
            self.stack.push_async_callback(harness.aclose)
            self.by_node[node.node_id] = (node.starts, harness)
        return harness

    def live(self, first: int = 0) -> list[ClusterNode]:
        """The running nodes, starting at ``first`` (a client's own preference)."""
        nodes = self.cluster.nodes[first:] + self.cluster.nodes[:first]
        return [node for node in nodes if node.exit_status is None]

    @asynccontextmanager
    async def session(self, user: dict[str, Any], first: int = 0) -> AsyncIterator[WsClient]:
        """A websocket of ``user`` to the first live node from ``first`` that takes it,
        waiting while none does (a failover); closed on the way out."""
        async with AsyncExitStack() as stack:
            ws = await self._open(stack, user, first)
            yield WsClient(ws, user["user_id"])

    async def _open(self, stack: AsyncExitStack, user: dict[str, Any], first: int) -> Any:
        """The connection, entered on ``stack`` (no cancel scope around it: the stack
        keeps its nursery open); trio.TooSlowError when no node took it for long."""
        give_up = trio.current_time() + PATIENCE * 2
        while trio.current_time() < give_up:
            for node in self.live(first):
                url = self[node].ws_url(user)
                try:
                    return await stack.enter_async_context(
                        open_websocket_url(url, connect_timeout=CONNECT_SECONDS)
                    )
                except GONE:
                    pass
            await trio.sleep(RECONNECT_PAUSE)
        raise trio.TooSlowError(f"no node took a websocket of user {user['user_id']}")


@asynccontextmanager
async def clients_of(cluster: Cluster) -> AsyncIterator[Clients]:
    async with AsyncExitStack() as stack:
        yield Clients(cluster, stack)


class Watcher:
    """A subscriber of a game on one node: records every broadcast with a ``seq`` (the
    checker's ``Subscriber``); when its connection ends it is no longer one that stayed,
    and it joins again with ``since_seq`` on the next live node."""

    def __init__(self, clients: Clients, user: dict[str, Any], game_id: str, first: int) -> None:
        self.clients, self.user, self.game_id, self.first = clients, user, game_id, first
        self.record = Subscriber(f"{user['name']}@{clients.cluster.nodes[first].node_id}")
        self.arrived = trio.Event()
        self.last_seq: int | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Join (then report started), record, and join again (on the next live node)
        after each loss."""
        joined = False
        for attempt in itertools.count():
            try:
                async with self.clients.session(self.user, self.first + attempt) as ws:
                    await self._join(ws)
                    if not joined:
                        task_status.started()
                        joined = True
                    while True:
                        self._note(await ws.ws.get_message())
            except GONE:
                if not joined:
                    raise  # the first join must work
            self.record.stayed = False
            await trio.sleep(RECONNECT_PAUSE)

    async def _join(self, client: WsClient) -> None:
        since = {} if self.last_seq is None else {"since_seq": self.last_seq}
        request_id = await client.send(363, game_id=self.game_id, **since)
        with trio.fail_after(PATIENCE):
            while True:
                reply = self._note(await client.ws.get_message())
                if reply.get("response_header", {}).get("request_id") == request_id:
                    if reply["res"] != 333 and self.last_seq is not None:  # a join again
                        raise trio.BrokenResourceError(f"join refused: {reply}")  # try again
                    assert reply["res"] == 333, reply
                    return

    def _note(self, message: str | bytes) -> dict[str, Any]:
        reply = decode(message)
        header = reply.get("response_header", {})
        if "seq" in header and reply["res"] != 333:
            seen = Broadcast(
                header["game_id"], header["seq"], reply["res"], reply.get("pool_id", "")
            )
            self.record.received.append(seen)
            self.last_seq = seen.seq
            self.arrived.set()
            self.arrived = trio.Event()
        return reply

    def has(self, res: int, pool_id: str) -> bool:
        return any(b.res == res and b.pool_id == pool_id for b in self.record.received)

    async def wait_for(self, res: int, pool_id: str, timeout: float = PATIENCE) -> None:
        """Until a broadcast ``res`` of ``pool_id`` arrived; trio.TooSlowError after
        ``timeout``."""
        with trio.fail_after(timeout):
            while not self.has(res, pool_id):
                await self.arrived.wait()


@dataclass
class Table:
    """A game with its pools, its admin and its players, on a cluster."""

    clients: Clients
    admin: dict[str, Any]
    game_id: str
    pool_ids: list[str]
    players: list[dict[str, Any]]
    watchers: list[Watcher] = field(default_factory=list)

    async def admin_call(self, op: int, res: int, **fields: Any) -> dict[str, Any]:
        """One admin request on a live node (a connection of its own)."""
        async with self.clients.session(self.admin) as ws:
            return await ws.call(op, res, **fields)


async def set_table(clients: Clients, *, pools: int = 2, players: int = 3) -> Table:
    """An admin, players with money, a live game with ``pools`` pools (made through the
    nodes in turn), and one subscriber (``Watcher``, not yet running) per node."""
    nodes = clients.cluster.nodes
    admin = await clients[nodes[0]].user(roles=["developer"])
    people = [
        await clients[nodes[n % len(nodes)]].user(deposit=PLAYER_MONEY) for n in range(players)
    ]
    async with clients.session(admin, 1) as ws:
        game_id = await setup_game(ws)
        pool_ids = await open_pools(ws, game_id, pools)
    table = Table(clients, admin, game_id, pool_ids, people)
    table.watchers = [
        Watcher(clients, await clients[node].user(), game_id, n) for n, node in enumerate(nodes)
    ]
    return table


@dataclass
class Betting:
    """Bettors' shared state: the history they write, when to stop, and the failover
    clock (from a kill of the owner to the first bet confirmed after it)."""

    history: History
    stop: trio.Event = field(default_factory=trio.Event)
    killed_at: float | None = None
    confirmed: int = 0
    unconfirmed: int = 0
    #: each player's last confirmed bet: when it was sent
    last_confirmed: dict[int, float] = field(default_factory=dict)
    progress: trio.Event = field(default_factory=trio.Event)

    def told(self, key: Any, reply: dict[str, Any], sent_at: float) -> None:
        """Record what a request was told."""
        if reply["res"] == 356:
            self.history.record(key, Outcome.CONFIRMED)
            self.confirmed += 1
            self.last_confirmed[key[0]] = sent_at
            if self.killed_at is not None and sent_at > self.killed_at:
                self.history.failovers.append(trio.current_time() - self.killed_at)
                self.killed_at = None
        elif reply.get("error_code") in UNKNOWN_CODES:
            self.history.record(key, Outcome.UNKNOWN, reply["error_code"])
            self.unconfirmed += 1
        else:
            self.history.record(key, Outcome.REFUSED, reply.get("error_code", str(reply)))
            self.unconfirmed += 1
        self.progress.set()
        self.progress = trio.Event()

    async def until_confirmed(self, count: int, timeout: float = PATIENCE * 2) -> None:
        """Until ``count`` bets in all were confirmed."""
        with trio.fail_after(timeout):
            while self.confirmed < count:
                await self.progress.wait()

    async def until_unconfirmed(self, count: int, timeout: float = PATIENCE * 2) -> None:
        """Until ``count`` requests in all were not confirmed (refused or unknown)."""
        with trio.fail_after(timeout):
            while self.unconfirmed < count:
                await self.progress.wait()

    async def until_each_confirmed_after(
        self, moment: float, players: list[dict[str, Any]], timeout: float = PATIENCE * 2
    ) -> None:
        """Until every one of ``players`` had a bet sent after ``moment`` confirmed."""
        with trio.fail_after(timeout):
            while any(self.last_confirmed.get(p["user_id"], 0) <= moment for p in players):
                await self.progress.wait()

    async def until_failed_over(self, timeout: float = PATIENCE * 2) -> None:
        """Until a bet sent after the last kill was confirmed."""
        with trio.fail_after(timeout):
            while self.killed_at is not None:
                await self.progress.wait()


async def bettor(
    table: Table, betting: Betting, player: dict[str, Any], first: int, sides: dict[str, str]
) -> None:
    """Bets of n cents, one after the other, on the player's node (the next live one when
    it goes), until told to stop. A request whose connection ended is unknown."""
    pools = itertools.cycle(table.pool_ids)
    bets = iter(range(1, MAX_BETS + 1))
    while not betting.stop.is_set():
        async with table.clients.session(player, first) as ws:
            for cents in bets:
                pool_id = next(pools)
                key = (player["user_id"], pool_id, cents)
                sent_at = trio.current_time()
                amount = str(Decimal(cents) / 100)
                try:
                    reply = await ws.call(
                        392, pool_id=pool_id, target=sides[pool_id], amount=amount
                    )
                except (*GONE, trio.TooSlowError):
                    betting.history.record(key, Outcome.UNKNOWN, "no answer")
                    break
                betting.told(key, reply, sent_at)
                if betting.stop.is_set():
                    return
            else:
                return


async def read_stored(url: str, cluster: Cluster, players: list[dict[str, Any]]) -> Stored:
    """The database afterwards, for the checker: the players' bets, the audit of the books
    and of the pools' escrow, the settlements and the fence log."""
    database = DatabaseAt(url)
    bettors = {player["user_id"] for player in players}

    def read(db: Any) -> tuple[Counter[Any], Counter[str]]:
        bets = db.rows("SELECT user_id, pool_id, amount FROM bets")
        settled = db.rows("SELECT id FROM transactions WHERE id LIKE 'settle:%'")
        return (
            Counter(
                (b["user_id"], b["pool_id"], b["amount"]) for b in bets if b["user_id"] in bettors
            ),
            Counter(row["id"].removeprefix("settle:") for row in settled),
        )

    effects, settlements = await database.read(read)
    books = SimpleNamespace(storage=database)
    audit = await ledger_problems(books) + await pool_problems(books)
    return Stored(effects, audit, settlements, await cluster.fence_log())


async def resolve_and_hear(table: Table, history: History) -> None:
    """The event that resolves every pool (confirmed: 366), then each 362 on every
    subscriber that stayed connected (one that did not may miss it; the checker says)."""
    await table.admin_call(
        395, 366, game_id=table.game_id, action_id="goal", target_id="argentina:1"
    )
    history.resolved |= set(table.pool_ids)
    with trio.move_on_after(PATIENCE):
        for watcher in table.watchers:
            for pool_id in table.pool_ids:
                if watcher.record.stayed:
                    await watcher.wait_for(362, pool_id)
    history.subscribers += [watcher.record for watcher in table.watchers]


@dataclass
class Scene:
    """A running cluster with its clients, its table, its bettors' state, and the exits
    with status 75 its supervisors restarted."""

    rng: random.Random
    cluster: Cluster
    clients: Clients
    table: Table
    betting: Betting
    exits: list[tuple[str, int]] = field(default_factory=list)

    async def bet_through(self, faults: list[Fault], after: int = 5) -> None:
        """Bettors on every node until each fault in turn was done after a seeded number
        of confirmed bets, and ``after`` more were confirmed; each bettor then ends after
        its request in flight."""
        betting = self.betting
        async with trio.open_nursery() as bettors:
            for n, player in enumerate(self.table.players):
                sides = {pool_id: self.rng.choice(TARGETS) for pool_id in self.table.pool_ids}
                bettors.start_soon(bettor, self.table, betting, player, n, sides)
            for fault in faults:
                await betting.until_confirmed(betting.confirmed + self.rng.randint(5, 25))
                await fault(self)
            await betting.until_confirmed(betting.confirmed + after)
            betting.stop.set()

    async def verdict(self) -> Verdict:
        """Every pool resolved and heard, then the checker over the history and the
        database."""
        await resolve_and_hear(self.table, self.betting.history)
        stored = await read_stored(self.cluster.database_url, self.cluster, self.table.players)
        return check(self.betting.history, stored)


#: Something done to the cluster under load (``kill_the_owner``, ...).
Fault = Callable[[Scene], Awaitable[None]]


@asynccontextmanager
async def scene(
    seed: int, database_url: str, redis_url: str, workdir: Path
) -> AsyncIterator[Scene]:
    """Three nodes (short lease), each supervised (restarted after exit status 75), a
    table, and a subscriber on each node, recording."""
    async with (
        running_cluster(
            database_url, redis_url, workdir, lease_seconds=LEASE_SECONDS, extra=NODE_FLAGS
        ) as cluster,
        clients_of(cluster) as clients,
        trio.open_nursery() as nursery,
    ):
        exits: list[tuple[str, int]] = []
        for node in cluster.nodes:  # from the start: a starved owner may exit 75 in set-up
            nursery.start_soon(supervise, node, exits)
        table = await _set_table_again_and_again(clients)
        found = Scene(random.Random(seed), cluster, clients, table, Betting(History()), exits)
        for watcher in table.watchers:
            await nursery.start(watcher.run)
        yield found
        nursery.cancel_scope.cancel()


async def _set_table_again_and_again(clients: Clients) -> Table:
    """``set_table``, made again when a node went away in the middle of it (a starved
    owner that lost its lease, restarted by its supervisor), under ``PATIENCE``."""
    with trio.fail_after(PATIENCE * 2):
        while True:
            try:
                return await set_table(clients)
            except (AssertionError, httpx.TransportError, *GONE):  # refused, or cut off
                await clients.cluster.wait_for_owner()


async def kill_the_owner(scene: Scene) -> None:
    """``kill -9`` of the owner, a new owner, a bet confirmed through it, and the killed
    node started again (it comes back as an edge)."""
    owner, epoch = await scene.cluster.wait_for_owner()
    killed = owner.proc
    owner.kill()
    await owner.wait_exit()
    scene.betting.killed_at = trio.current_time()
    await scene.cluster.wait_for_owner(after_epoch=epoch)
    await scene.betting.until_failed_over()
    await owner.restart(replacing=killed)


async def failover_round(
    seed: int, database_url: str, redis_url: str, workdir: Path, *, kills: int = 1
) -> Verdict:
    """Scenario (b): bettors on every node and a subscriber on each; ``kills`` times,
    after a seeded number of confirmed bets, ``kill -9`` of the owner; then every pool
    resolved, and the checker's verdict."""
    async with scene(seed, database_url, redis_url, workdir) as found:
        await found.bet_through([kill_the_owner] * kills)
        return await found.verdict()


async def cluster_round(
    seed: int, database_url: str, redis_url: str, workdir: Path, figures: Figures, *, kills: int
) -> None:
    """``make soak``'s cluster round: ``failover_round`` with ``kills`` seeded kills of the
    owner, its verdict added to ``figures``; AssertionError with the problems found."""
    verdict = await failover_round(seed, database_url, redis_url, workdir, kills=kills)
    figures.rounds += 1
    figures.operations += verdict.confirmed + verdict.refused + verdict.unknown
    figures.confirmed += verdict.confirmed
    figures.refused += verdict.refused
    figures.unknown += verdict.unknown
    figures.kills += kills
    figures.restarts += kills
    figures.invariants_checked += 1
    figures.lost += verdict.lost
    figures.stale_writes += verdict.stale_writes
    figures.failovers += verdict.failovers
    assert verdict.problems == [], (seed, verdict.problems)
