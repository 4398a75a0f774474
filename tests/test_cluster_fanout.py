"""Broadcasts on every node (issue 22): an owner's hub mirrors into a real Redis through
a stand-in Bus, an edge's hub is fed by the reader; gaps mended from the stream or closed,
stale XADDs refused, a Redis restart survived, 815 across nodes, presence counted over
the cluster (JoinFrom/LeaveFrom), and ``_since`` over numbers that jump. No test measures
time: waits are for events, under a generous ceiling for the real Redis."""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import coredis
import pytest
import trio
from coredis.exceptions import RedisError, ResponseError
from coredis.response._callbacks import NoopCallback

from actors import game as g
from actors.hub import CLOSE_GAP, HISTORY_SECONDS, Hub, Joined, Mirrored, _since
from cluster.broadcasts import (
    FULL_REPORT_ROUNDS,
    REPORT_SECONDS,
    STREAM_SECONDS,
    USERS,
    Broadcaster,
    BroadcastReader,
    join_on_edge,
    leave_on_edge,
    report_viewers,
    stream_key,
)
from domain.errors import DomainError
from tests.conftest import ActorHarness, FakeConnection, open_match
from tests.redis import ThrowawayRedis
from transport.frames import Frame

GAME = "g1"
#: The ceiling of a wait for the real Redis (never reached when things work).
WAIT = 30.0
#: Commands the stand-in Bus sends in one pipeline at most.
BATCH = 256


def render(event: object, header: dict[str, Any]) -> bytes:
    return json.dumps({"e": event, **header}).encode()


class Listener:
    """A subscriber's connection: what it got, and whether it was closed."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.joined: list[Joined] = []
        self._changed = trio.Event()

    def __call__(self, data: bytes) -> None:
        self.got.append(data)
        self._poke()

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self._poke()

    def greet(self, joined: Joined) -> None:
        self.joined.append(joined)

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, check: Callable[[], bool]) -> None:
        with trio.fail_after(WAIT):
            while not check():
                await self._changed.wait()

    def seqs(self) -> list[int]:
        return [json.loads(data).get("seq", 0) for data in self.got]


class StandInBus:
    """The Bus's interface (``send``, ``client``) over a real client: one task sends the
    commands in order; ``skip`` drops the XADDs of those ids (a lost entry)."""

    def __init__(self, client: Any, max_bytes: int = 1 << 20) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.refused_by: Broadcaster | None = None
        self.skip: set[str] = set()
        self.done = 0  # commands taken off the queue (sent, failed or skipped)
        self.failed = 0
        self._bytes = 0
        self._send, self._receive = trio.open_memory_channel[tuple[tuple[Any, ...], int]](
            math.inf  # bounded in bytes by send()
        )
        self._progress = trio.Event()

    def send(self, command: tuple[Any, ...], size: int) -> bool:
        if self._bytes + size > self.max_bytes:
            return False
        self._bytes += size
        self._send.send_nowait((command, size))
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send what is queued, up to ``BATCH`` commands in one pipeline (in order)."""
        task_status.started()
        async for first in self._receive:
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            self._bytes -= sum(size for _, size in batch)
            await self._execute([c for c, _ in batch if not self._skipped(c)])
            self.done += len(batch)
            self._progress.set()
            self._progress = trio.Event()

    def _skipped(self, command: tuple[Any, ...]) -> bool:
        return command[0] == "XADD" and command[5] in self.skip

    async def _execute(self, commands: list[tuple[Any, ...]]) -> None:
        requests = []
        try:
            with trio.fail_after(5):
                async with self.client.pipeline(transaction=False, raise_on_error=False) as pipe:
                    for name, *args in commands:
                        requests.append(
                            pipe.create_request(name.encode(), *args, callback=NoopCallback())
                        )
                for request in requests:
                    await self._result(request)
        except (RedisError, OSError, trio.TooSlowError):
            self.failed += len(commands)

    async def _result(self, request: Any) -> None:
        try:
            await request
        except ResponseError as error:
            if self.refused_by is None or not self.refused_by.refused(error):
                raise

    async def drained(self) -> None:
        """Until every command sent so far was taken off the queue."""
        with trio.fail_after(WAIT):
            while self._bytes or self._receive.statistics().current_buffer_used:
                await self._progress.wait()


class LossyClient:
    """A client whose XREAD replies lose the entries of ``lose``, until one of them comes
    with a later entry (the reader then sees the gap; lost last in a reply, the entry
    would simply be read again from the same cursor)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.lose: set[bytes] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._client.xread(*args, **kwargs)
        if not result:
            return result
        kept = {}
        for key, entries in result.items():
            kept[key] = tuple(e for e in entries if e.identifier not in self.lose)
            if kept[key] and kept[key][-1] is entries[-1]:
                self.lose -= {e.identifier for e in entries}
        return kept


@dataclass
class Nodes:
    owner: Hub
    edge: Hub
    bus: StandInBus
    broadcaster: Broadcaster
    reader: BroadcastReader
    client: Any
    nursery: trio.Nursery

    async def ask_owner(self, message: Any, timeout: float) -> Any:
        """The owner's game actor's answer to a JoinFrom (its latest seq), as forwarded."""
        assert isinstance(message, g.JoinFrom | g.LeaveFrom)
        return Joined(GAME, self.owner.last_seq(GAME), None, message.viewers)

    async def join(self, listener: Listener, since_seq: int | None = None) -> Joined:
        """A join on the edge, as its routed game mailbox does it."""
        self.edge.connect(7, listener, listener.close)
        msg = g.Join(7, "v", listener, since_seq, listener.greet)
        return await join_on_edge(self.reader, self.ask_owner, "n-edge", GAME, msg, timeout=WAIT)

    def new_owner(self, epoch: int, reserved_before: int) -> Hub:
        """Another node takes the game over: a hub numbering above ``reserved_before``."""
        hub = Hub(render)
        hub.reserve(GAME, reserved_before, reserved_before + 10**6, lambda: True)
        hub.mirror = Broadcaster(self.bus, epoch)
        self.owner = hub
        return hub


@asynccontextmanager
async def two_nodes(url: str, *, lossy: bool = False) -> AsyncIterator[Nodes]:
    """An owner's hub mirroring through a stand-in Bus, and an edge's hub fed by a reader
    (20 ms XREAD blocks), on one Redis."""
    client = coredis.Redis.from_url(url)
    async with client, trio.open_nursery() as nursery:
        owner = Hub(render)
        owner.reserve(GAME, 0, 10**6, lambda: True)
        bus = StandInBus(client)
        owner.mirror = broadcaster = Broadcaster(bus, 1)
        bus.refused_by = broadcaster
        edge = Hub(render)
        reader = BroadcastReader(LossyClient(client) if lossy else client, edge, block_ms=20)
        await nursery.start(bus.run)
        await nursery.start(reader.run)
        yield Nodes(owner, edge, bus, broadcaster, reader, client, nursery)
        nursery.cancel_scope.cancel()


# -- delivery -----------------------------------------------------------------------


async def test_an_edge_delivers_the_owners_bytes_in_order(redis_url: str) -> None:
    async with two_nodes(redis_url) as nodes:
        local, remote = Listener(), Listener()
        nodes.owner.join(GAME, local)
        nodes.owner.to_game(GAME, "before")  # before the edge's join: not replayed
        joined = await nodes.join(remote)
        assert joined.seq == 1 and remote.joined[0].seq == 1
        for n in range(200):
            nodes.owner.to_game(GAME, n)
        await remote.until(lambda: len(remote.got) == 200)
        assert remote.got == local.got[1:]  # the same bytes, in order
        assert remote.seqs() == list(range(2, 202))
        assert nodes.reader.stats.delivered == 200 and nodes.reader.stats.lost == 0
        ttl = await nodes.client.ttl(f"tote:ev:{GAME}")  # Redis drops an idle game's stream
        assert 0 < ttl <= STREAM_SECONDS


async def test_an_entry_that_is_not_a_broadcast_is_read_past(redis_url: str) -> None:
    """Another version's entry (no ``data``, no ``prev``) is counted and read past; the
    broadcasts after it arrive."""
    async with two_nodes(redis_url) as nodes:
        remote = Listener()
        await nodes.join(remote)
        nodes.owner.to_game(GAME, 1)
        await remote.until(lambda: len(remote.got) == 1)
        last = remote.seqs()[-1]
        await nodes.client.xadd(f"tote:ev:{GAME}", {"odd": "x"}, identifier=f"{last}-5")
        nodes.owner.to_game(GAME, 2)
        await remote.until(lambda: len(remote.got) == 2)
        assert nodes.reader.stats.malformed == 1 and nodes.reader.stats.lost == 0


async def test_unnumbered_messages_reach_only_their_users_on_the_edge(redis_url: str) -> None:
    async with two_nodes(redis_url) as nodes:
        admin, other = Listener(), Listener()
        await nodes.join(admin)
        nodes.edge.connect(8, other)
        nodes.edge.join(GAME, other)
        nodes.owner.to_game_users(GAME, [7], "for the admin")
        nodes.owner.to_game(GAME, "for all")
        await other.until(lambda: len(other.got) == 1)
        assert [json.loads(d)["e"] for d in admin.got] == ["for the admin", "for all"]
        assert "seq" not in json.loads(admin.got[0])


# -- resume -------------------------------------------------------------------------


async def test_an_edge_resumes_a_client_from_its_history_across_an_owner_change(
    redis_url: str,
) -> None:
    async with two_nodes(redis_url) as nodes:
        first = Listener()
        await nodes.join(first)
        for n in range(5):
            nodes.owner.to_game(GAME, n)
        await first.until(lambda: len(first.got) == 5)
        nodes.edge.disconnect(7, first)  # the connection drops after seq 5
        new = nodes.new_owner(epoch=2, reserved_before=10**6)  # the old one died
        for n in range(3):
            new.to_game(GAME, f"new {n}")
        watcher = Listener()  # waits for the edge's copy of the new run
        nodes.edge.join(GAME, watcher)
        await watcher.until(lambda: len(watcher.got) == 3)
        again = Listener()
        joined = await nodes.join(again, since_seq=3)
        assert joined.resumed is True
        assert again.seqs() == [4, 5, 10**6 + 1, 10**6 + 2, 10**6 + 3]
        assert again.got == first.got[3:] + watcher.got
        late = Listener()  # saw a seq the edge never held (the dead owner's last, say)
        assert (await nodes.join(late, since_seq=6)).resumed is False


async def test_a_node_that_takes_a_game_over_numbers_above_the_old_run(redis_url: str) -> None:
    async with two_nodes(redis_url) as nodes:
        watcher = Listener()
        await nodes.join(watcher)
        nodes.owner.to_game(GAME, "old")
        await watcher.until(lambda: len(watcher.got) == 1)
        nodes.edge.reserve(GAME, 10**6, 2 * 10**6, lambda: True)  # the edge is the owner now
        nodes.edge.to_game(GAME, "new")
        assert watcher.seqs() == [1, 10**6 + 1]
        again = Listener()
        joined, _ = nodes.edge.join(GAME, again, since_seq=0)
        assert joined.resumed is True and again.seqs() == [1, 10**6 + 1]


# -- gaps ---------------------------------------------------------------------------


async def test_an_entry_the_reader_missed_is_mended_from_the_stream(redis_url: str) -> None:
    async with two_nodes(redis_url, lossy=True) as nodes:
        remote = Listener()
        await nodes.join(remote)
        nodes.reader.client.lose.add(b"3-0")
        for n in range(5):
            nodes.owner.to_game(GAME, n)
        await remote.until(lambda: len(remote.got) == 5)
        assert remote.seqs() == [1, 2, 3, 4, 5] and remote.closed is None
        assert nodes.reader.stats.mended == 1 and nodes.reader.stats.lost == 0


async def test_a_gap_no_longer_in_the_stream_closes_the_games_subscribers(
    redis_url: str,
) -> None:
    async with two_nodes(redis_url) as nodes:
        remote = Listener()
        await nodes.join(remote)
        nodes.owner.to_game(GAME, 0)
        await remote.until(lambda: len(remote.got) == 1)
        nodes.bus.skip.add("2-0")  # the Bus dropped it: no node will ever have it
        for n in range(1, 4):
            nodes.owner.to_game(GAME, n)
        await remote.until(lambda: remote.closed is not None)
        assert remote.closed == CLOSE_GAP and remote.seqs() == [1]
        assert nodes.edge.viewers(GAME) == 0 and nodes.reader.stats.lost == 1
        after = Listener()
        joined = await nodes.join(after, since_seq=1)  # 2 is not held
        assert joined.resumed is False and after.got == []
        past = Listener()
        joined = await nodes.join(past, since_seq=3)
        assert joined.resumed is True and past.seqs() == [4]


async def test_a_stale_owners_xadd_is_refused_and_counted(redis_url: str) -> None:
    async with two_nodes(redis_url) as nodes:
        remote = Listener()
        await nodes.join(remote)
        old, old_broadcaster = nodes.owner, nodes.broadcaster
        old.to_game(GAME, "old 1")
        await remote.until(lambda: len(remote.got) == 1)
        new = nodes.new_owner(epoch=2, reserved_before=10**6)
        new.to_game(GAME, "new 1")
        old.to_game(GAME, "old 2, too late")  # its id 2-0 is below 1000001-0
        new.to_game(GAME, "new 2")
        await remote.until(lambda: len(remote.got) == 3)
        await nodes.bus.drained()
        assert old_broadcaster.stats.stale == 1
        assert [json.loads(d)["e"] for d in remote.got] == ["old 1", "new 1", "new 2"]
        stored = await nodes.client.xrange(stream_key(GAME), "-", "+")
        assert [(e.identifier, e.field_values[b"epoch"]) for e in stored] == [
            (b"1-0", b"1"),
            (b"1000001-0", b"2"),
            (b"1000002-0", b"2"),
        ]


async def test_a_redis_restart_is_survived_and_its_losses_close_the_subscribers(
    redis: ThrowawayRedis,
) -> None:
    async with two_nodes(redis.url) as nodes:
        remote = Listener()
        await nodes.join(remote)
        nodes.owner.to_game(GAME, 1)
        await remote.until(lambda: len(remote.got) == 1)
        redis.kill()
        nodes.owner.to_game(GAME, 2)  # lost with Redis (or never written)
        await nodes.bus.drained()
        with trio.fail_after(WAIT):  # the reader noticed (its client's retries gave up)
            while not nodes.reader.stats.outages:
                await nodes.reader.next_round()
        redis.restart()
        # the owner goes on; the first broadcast the restarted Redis takes shows the gap
        for _ in range(100):  # (the client may need a try or two to connect again)
            failed = nodes.bus.failed
            nodes.owner.to_game(GAME, "after")
            await nodes.bus.drained()
            if nodes.bus.failed == failed:
                break
        await remote.until(lambda: remote.closed is not None)
        assert remote.closed == CLOSE_GAP
        again = Listener()  # the client resumes: the copy is read again
        joined = await nodes.join(again, since_seq=1)
        assert joined.resumed is False
        nodes.owner.to_game(GAME, "live")
        await again.until(lambda: len(again.got) == 1)


# -- 815 ----------------------------------------------------------------------------


async def test_a_user_push_reaches_the_users_connection_on_the_other_node(
    redis_url: str,
) -> None:
    async with two_nodes(redis_url) as nodes:
        on_owner, on_edge, stranger = Listener(), Listener(), Listener()
        nodes.owner.connect(7, on_owner)
        nodes.edge.connect(7, on_edge)
        nodes.edge.connect(8, stranger)
        with trio.fail_after(WAIT):
            await nodes.reader.users_subscribed.wait()
        assert (await nodes.client.pubsub_numsub(USERS))[USERS.encode()] == 1
        nodes.owner.to_user(7, "balance")
        await on_edge.until(lambda: len(on_edge.got) == 1)
        assert on_edge.got == on_owner.got and stranger.got == []


# -- presence over the cluster ------------------------------------------------------


async def test_presence_counts_the_viewers_of_every_node(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    actors.services.settings.presence_limit = 3
    m = await open_match(actors)  # the watcher (the admin) here: 1
    hub = actors.services.hub
    hub.connect(m.admin, m.watcher.push)
    seq = hub.last_seq(m.game_id)
    joined = await m.game.ask(g.JoinFrom(21, "b1", "n-b", 1))
    assert (joined.seq, joined.viewers) == (seq, 2)  # the seq before its 470
    await m.game.ask(g.JoinFrom(22, "b2", "n-b", 2))
    assert [msg["user_id"] for msg in m.watcher.take(470)] == [m.admin, 21, 22]  # to all: 3
    await m.game.ask(g.JoinFrom(31, "c1", "n-c", 1))  # 4: above the limit
    assert [msg["user_id"] for msg in m.watcher.take(470)] == [31]  # to the admin only
    await trio.sleep(1.5)
    assert [msg["viewers"] for msg in m.watcher.take(471)] == [4]
    await m.game.ask(g.JoinFrom(22, "b2", "n-b", 2, announce=False))  # a resend: same count
    await m.game.ask(g.LeaveFrom(21, "b1", "n-b", 0))  # n-b's count now 0 (one was lost)
    await trio.sleep(1.5)
    assert [msg["viewers"] for msg in m.watcher.take(471)] == [2]
    with pytest.raises(DomainError) as refused:
        await m.game.ask(g.JoinFrom(23, "b3", "n-b", 1, since_seq=10**9))
    assert refused.value.code == "INVALID_PARAMETER"
    answer = await m.game.ask(g.JoinFrom(24, "b4", "n-b", 1))
    assert answer.viewers == 3  # the refused one was not counted


# -- _since over numbers that jump ----------------------------------------------------


def history(*entries: tuple[int, int]) -> deque[tuple[int, int, float, bytes]]:
    return deque((seq, prev, 0.0, str(seq).encode()) for seq, prev in entries)


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (5, []),  # the latest
        (4, [b"5"]),
        (2, [b"3", b"4", b"5"]),  # across the run boundary (4 began a run after 3)
        (1, None),  # 2 is not held
        (0, None),
    ],
)
def test_since_follows_prev_across_a_jump(since: int, expected: list[bytes] | None) -> None:
    # consecutive within a run: 3 (after 2), then a new owner's run from 4 (prev 0)
    kept = history((3, 2), (4, 0), (5, 4))
    assert _since(kept, since, 5, 1 << 20) == expected


def test_since_needs_every_number_of_a_run_and_a_held_start() -> None:
    jumped = history((1, 0), (2, 1), (100_001, 0), (100_002, 100_001))
    assert _since(jumped, 0, 100_002, 1 << 20) == [b"1", b"2", b"100001", b"100002"]
    assert _since(jumped, 2, 100_002, 1 << 20) == [b"100001", b"100002"]
    assert _since(jumped, 3, 100_002, 1 << 20) is None  # the old run's 3 was not held here
    holed = history((1, 0), (2, 1), (4, 3), (5, 4))  # 3 was lost (the gap closed them)
    assert _since(holed, 1, 5, 1 << 20) is None
    assert _since(holed, 3, 5, 1 << 20) == [b"4", b"5"]  # named as 4's prev
    restarted = history((100_001, 0), (100_002, 100_001))  # a first run held no more
    assert _since(restarted, 0, 100_002, 1 << 20) is None
    assert _since(holed, 3, 5, 1) is None  # over the byte bound


def test_mirrored_values_are_frozen() -> None:
    entry = Mirrored(b"x", GAME, 1)
    with pytest.raises(AttributeError):
        entry.seq = 2  # type: ignore[misc]


async def test_an_edge_tells_the_owner_its_counts_once_a_second_when_they_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    edge = Hub(render)
    edge.follow(GAME, 0)
    viewers = [Listener() for _ in range(3)]
    for n, viewer in enumerate(viewers):
        edge.connect(n, viewer)
        edge.join(GAME, viewer)
    told: list[tuple[str, int, bool]] = []

    async def ask_game(game_id: str, message: Any, timeout: float) -> Any:
        told.append((game_id, message.viewers, message.announce))

    async with trio.open_nursery() as nursery:
        await nursery.start(partial(report_viewers, edge, ask_game, "n-edge", timeout=1.0))
        await trio.sleep(1.5)
        assert told == [(GAME, 3, False)]
        await trio.sleep(5)
        assert len(told) == 1  # unchanged: nothing sent
        edge.disconnect(0, viewers[0])  # the connection dropped: no Leave
        edge.disconnect(1, viewers[1])
        await trio.sleep(1)
        edge.disconnect(2, viewers[2])
        await trio.sleep(1)
        await trio.sleep(5)
        assert told[1:] == [(GAME, 1, False), (GAME, 0, False)]
        nursery.cancel_scope.cancel()


async def test_an_edge_tells_every_count_again_every_few_rounds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A new owner's game starts with no count of this node: an unchanged count is told
    again every ``FULL_REPORT_ROUNDS`` rounds."""
    edge = Hub(render)
    edge.follow(GAME, 0)
    viewer = Listener()
    edge.connect(1, viewer)
    edge.join(GAME, viewer)
    told: list[int] = []

    async def ask_game(game_id: str, message: Any, timeout: float) -> Any:
        told.append(message.viewers)

    async with trio.open_nursery() as nursery:
        await nursery.start(partial(report_viewers, edge, ask_game, "n-edge", timeout=1.0))
        await trio.sleep(FULL_REPORT_ROUNDS * 2 * REPORT_SECONDS + REPORT_SECONDS / 2)
        nursery.cancel_scope.cancel()
    assert told == [1, 1, 1]  # the first round, then every FULL_REPORT_ROUNDS


async def test_an_edge_forgets_the_copies_nobody_follows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    edge = Hub(render)
    watched, waited_for, idle = Listener(), "g-waited", "g-idle"
    for game_id in (GAME, waited_for, idle):
        edge.follow(game_id, 0)
        edge.deliver_remote(Mirrored(b"x", game_id, 1, 0))
    edge.join(GAME, watched)
    await trio.sleep(HISTORY_SECONDS - 1)
    assert edge.forget_idle_copies(keep={waited_for}) == 0  # resumable a while yet
    await trio.sleep(2)
    assert edge.forget_idle_copies(keep={waited_for}) == 1
    assert edge.cursor(idle) is None
    assert edge.cursor(GAME) == (1, 0) and edge.cursor(waited_for) == (1, 0)


async def test_a_leave_of_a_viewer_not_subscribed_here_asks_nothing() -> None:
    edge = Hub(render)
    edge.follow(GAME, 0)

    async def ask_owner(message: Any, timeout: float) -> Any:
        raise AssertionError(f"asked {message}")

    msg = g.Leave(7, "bob", Listener())
    acknowledged = await leave_on_edge(edge, ask_owner, "n-edge", GAME, msg, timeout=WAIT)
    assert acknowledged == g.GameAcknowledged(GAME)


async def test_a_join_on_an_edge_is_counted_by_the_owners_game_and_greeted_after_its_copy(
    actors: ActorHarness, redis_url: str
) -> None:
    m = await open_match(actors)  # the admin watches on the owner
    owner = actors.services.hub
    client = coredis.Redis.from_url(redis_url)
    async with client, trio.open_nursery() as nursery:
        bus = StandInBus(client)
        owner.mirror = Broadcaster(bus, 1)
        edge = Hub(render, adopt=Frame)
        reader = BroadcastReader(client, edge, block_ms=20)
        await nursery.start(bus.run)
        await nursery.start(reader.run)

        async def ask_owner(message: Any, timeout: float) -> Any:
            return await m.game.ask(message, timeout=timeout)

        async def until(check: Callable[[], bool]) -> None:
            with trio.fail_after(WAIT):
                while not check():
                    await reader.next_round()

        try:
            await m.pool()  # a 352 before the join
            viewer = FakeConnection(4242, "bob")
            edge.connect(viewer.user_id, viewer.push, lambda code, reason: None)
            joined = await join_on_edge(
                reader, ask_owner, "n-edge", m.game_id, viewer.join(), timeout=WAIT
            )
            assert joined.viewers == 2  # the admin here, bob there
            assert joined.seq == owner.last_seq(m.game_id) - 1  # before bob's 470
            await until(lambda: bool(viewer.received))
            [hello] = viewer.take(470)  # live, through Redis
            assert hello["user_id"] == 4242 and hello == m.watcher.take(470)[-1]
            await m.pool()  # the same bytes on both nodes
            await until(lambda: bool(viewer.received))
            assert viewer.received == m.watcher.received[-1:]
            msg = g.Leave(viewer.user_id, "bob", viewer.push)
            await leave_on_edge(edge, ask_owner, "n-edge", m.game_id, msg, timeout=WAIT)
            [bye] = m.watcher.take(480)
            assert bye["user_id"] == 4242 and edge.viewers(m.game_id) == 0
        finally:
            owner.mirror = None
            nursery.cancel_scope.cancel()
