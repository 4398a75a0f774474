"""A live audience on the actors under trio's mock clock (decisions §9): a subscriber
that drops for 5 s and resumes, 471 at most once a second, a small 360 after 10,000
bets, a slow subscriber among 10,000, and joins whose cost does not grow with the
audience. No test here measures time: the clock is trio's, and work is counted."""

from __future__ import annotations

import math
from itertools import count, pairwise
from typing import Any

import pytest
import trio
from wsproto import ConnectionType
from wsproto.connection import Connection as WsProtocol

from actors import game as g
from actors import hub as hub_module
from actors import pool as p
from actors.hub import Joined
from actors.registry import User
from domain.codec import decode
from domain.pool import MAX_LISTED_BETS
from storage.seqs import reserved_seq
from tests.conftest import ActorHarness, Match, open_match, payload_of
from tests.test_ws_hostile import _StuckStream
from transport.presenters import present, server_message
from transport.websocket import CLOSE_SLOW, Connection

_ids = count(10_000)


class Viewer:
    """One subscriber's connection: what it was sent, its 333 first."""

    def __init__(self, user_id: int | None = None) -> None:
        self.user_id = next(_ids) if user_id is None else user_id
        self.joined: list[Joined] = []
        self.received: list[dict[str, Any]] = []
        self.pushes = 0

    def push(self, data: bytes) -> None:
        self.pushes += 1
        self.received.append(decode(payload_of(data)))

    def greet(self, joined: Joined) -> None:
        assert not self.received, "the 333 comes before anything else"
        self.joined.append(joined)

    def join(self, since_seq: int | None = None) -> g.Join:
        return g.Join(self.user_id, f"v{self.user_id}", self.push, since_seq, self.greet)

    def seqs(self) -> list[int]:
        return [m["response_header"]["seq"] for m in self.received]


class Counter:
    """A subscriber that only counts what it is sent and keeps the last (10,000 of them
    stay cheap)."""

    __slots__ = ("last", "pushes")

    def __init__(self) -> None:
        self.pushes = 0
        self.last = b""

    def __call__(self, data: bytes) -> None:
        self.pushes += 1
        self.last = data


async def bet_every(m: Match, pool: Any, user_id: int, seconds: float, times: int) -> None:
    for _ in range(times):
        await pool.ask(p.PlaceBet(user_id, "a", "1"))
        await trio.sleep(seconds)


# -- resume -------------------------------------------------------------------------


async def test_a_subscriber_away_for_5_s_resumes_missing_nothing_and_seeing_nothing_twice(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, pool = await m.pool()
    alice = await m.player("alice")
    first = Viewer()
    await m.game.ask(first.join())
    start = first.joined[0].seq
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bet_every, m, pool, alice, 0.3, 30)  # 9 s of bets: 360s
        await trio.sleep(2)
        actors.services.hub.disconnect(first.user_id, first.push)  # the connection drops
        await trio.sleep(5)
        again = Viewer(first.user_id)
        await m.game.ask(again.join(since_seq=first.seqs()[-1]))
        assert again.joined[0].resumed is True
    await trio.sleep(1)  # the last 360
    latest = actors.services.hub.last_seq(m.game_id)
    seen = first.seqs() + again.seqs()
    assert seen == list(range(start + 1, latest + 1))  # every one, once, in order
    assert 360 in {msg["res"] for msg in again.received[:3]}  # missed while away
    everyone = [msg for msg in m.watcher.received if msg["response_header"]["seq"] > start]
    assert everyone == first.received + again.received  # the same as who never left


# -- presence -----------------------------------------------------------------------


async def test_above_the_limit_471_counts_the_audience_at_most_once_a_second(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    actors.services.settings.presence_limit = 2
    m = await open_match(actors)  # the watcher (the admin) is one subscriber
    hub = actors.services.hub
    hub.connect(m.admin, m.watcher.push)  # as the admin's connection does
    viewers = [Viewer() for _ in range(9)]
    started = m.now
    for viewer in viewers:  # ten subscribers within a second
        await m.game.ask(viewer.join())
        await trio.sleep(0.05)
    await trio.sleep(1)
    for viewer in viewers[:5]:  # five connections drop: the game actor is not told
        hub.disconnect(viewer.user_id, viewer.push)
    await trio.sleep(5)
    counts = [(msg["response_header"]["t"], msg["viewers"]) for msg in m.watcher.take(471)]
    assert [n for _, n in counts] == [3, 10, 5]
    assert counts[0][0] - started < 1_000
    assert all(b - a >= 1_000 for (a, _), (b, _) in pairwise(counts))
    # joins and leaves: to everyone up to the limit, then to the admin only
    assert [msg["user_id"] for msg in m.watcher.take(470)] == [
        m.admin,
        *(v.user_id for v in viewers),
    ]  # the admin hears of every one
    assert {msg["user_id"] for msg in viewers[0].received if msg["res"] == 470} == {
        viewers[0].user_id
    }  # at the limit, its own join reached everyone; the later ones did not
    assert 470 not in {msg["res"] for msg in viewers[-1].received}
    for viewer in viewers[5:8]:
        await m.game.ask(g.Leave(viewer.user_id, "", viewer.push))
    await trio.sleep(3)
    assert [msg["viewers"] for msg in m.watcher.take(471)] == [2]  # then quiet


# -- bounded 360 --------------------------------------------------------------------


async def test_a_360_after_10_000_new_bets_lists_50_and_counts_the_rest(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    actors.services.settings.distribution_interval = 3_600  # all of them in one 360
    m = await open_match(actors)
    _, pool = await m.pool()
    alice = await m.player("alice", deposit=10_001_00)
    await pool.ask(p.PlaceBet(alice, "a", "1"))  # its 360 goes out at once
    await trio.testing.wait_all_tasks_blocked()
    assert [msg["omitted_bets"] for msg in m.watcher.take(360)] == [0]
    autojump_clock.autojump_threshold = math.inf  # no time passes while they are placed
    async with trio.open_nursery() as nursery:
        for _ in range(10_000):
            nursery.start_soon(pool.ask, p.PlaceBet(alice, "a", "1"))
    autojump_clock.autojump_threshold = 0
    await trio.sleep(3_601)  # past the pool's next 360, not at it
    [shown] = m.watcher.take(360)
    assert shown["omitted_bets"] == 10_000 - 50
    assert sum(len(row["bets"]) for row in shown["distribution"].values()) == 50
    assert shown["distribution"]["a"]["amount_total"] == 10_001
    everything = await pool.ask(p.GetDistribution(m.admin, everything=True))
    # 393 for admins: the latest MAX_LISTED_BETS, the others counted
    assert len(everything.distribution["a"]["bets"]) == MAX_LISTED_BETS
    assert everything.omitted_bets == 10_001 - MAX_LISTED_BETS


# -- a slow subscriber --------------------------------------------------------------


async def test_a_slow_subscriber_among_10_000_is_dropped_alone_and_delays_nobody(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services = actors.services
    services.settings.outbox_bytes = 2_000
    m = await open_match(actors)
    others = [Counter() for _ in range(10_000)]
    for address in others:
        await m.game.ask(g.Join(next(_ids), "", address))
    protocol = WsProtocol(ConnectionType.SERVER)
    slow = Connection(_StuckStream(), protocol, User(999, "slow", []), services)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow.serve, services.clock.now_ms() + 10**9)
        await trio.sleep(1)
        await m.game.ask(g.Join(999, "slow", slow.push))
        for _ in range(20):  # each 352: the same bytes to all, queued at once
            pool_id, _ = await m.pool()
            await trio.testing.wait_all_tasks_blocked()  # the hub's fan-out task delivers
            last = others[0].last
            assert decode(payload_of(last))["pool_id"] == pool_id
            assert all(address.last is last for address in others)
    assert slow.close_reason is not None and slow.close_reason[0] == CLOSE_SLOW
    assert services.hub.viewers(m.game_id) == 1 + len(others)  # the watcher and the others


# -- joins that scale ---------------------------------------------------------------


async def test_a_join_costs_the_same_at_1_000_and_at_10_000_subscribers(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = await open_match(actors)
    actors.services.hub.connect(m.admin, m.watcher.push)  # as the admin's connection does
    commits = 0
    commit = actors.services.storage.commit

    async def counted(changes: Any, **kw: Any) -> Any:
        nonlocal commits
        commits += 1
        return await commit(changes, **kw)

    monkeypatch.setattr(actors.services.storage, "commit", counted)
    audience = [Counter() for _ in range(10_000)]

    async def join_cost(joined: int) -> tuple[int, int, int]:
        """Pushes, commits and the 333's size of the next join, at ``joined`` subscribers."""
        await trio.sleep(2)  # the 471 of the joins before (at most one a second) is out
        assert actors.services.hub.viewers(m.game_id) >= joined
        before = sum(a.pushes for a in audience) + len(m.watcher.received)
        commits_before = commits
        viewer = Viewer()
        await m.game.ask(viewer.join())
        [answer] = viewer.joined
        [(res, fields)] = present(answer)
        size = len(server_message(res, fields, t=m.now, request_id="r1"))
        pushes = sum(a.pushes for a in audience) + len(m.watcher.received) - before
        return pushes + viewer.pushes, commits - commits_before, size

    for address in audience[:1_000]:
        assert isinstance(await m.game.ask(g.Join(next(_ids), "", address)), Joined)
    at_1_000 = await join_cost(1_000)
    for address in audience[1_000:]:  # 10,000 joins, every one answered
        assert isinstance(await m.game.ask(g.Join(next(_ids), "", address)), Joined)
    at_10_000 = await join_cost(10_000)
    assert at_1_000[:2] == at_10_000[:2]
    assert at_10_000[2] - at_1_000[2] <= 2  # the 333: its numbers may gain a digit
    assert at_10_000[:2] == (1, 0)  # the admin's 470 and nothing committed


async def test_the_game_reserves_more_seqs_before_the_hub_runs_out(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "RESERVE_AHEAD", 10)
    monkeypatch.setattr(g, "RESERVE_AHEAD", 10)
    m = await open_match(actors)
    services = actors.services
    for _ in range(40):  # 40 broadcasts (352): four blocks of 10
        await m.pool()
        await trio.sleep(0.01)  # the game actor takes the hub's note
        stored = await services.storage.read(lambda db: reserved_seq(db, m.game_id))
        assert stored >= services.hub.last_seq(m.game_id)
