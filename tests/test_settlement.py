"""Settlement through the actors, to the cent (decisions §2 and §3).

Worked examples with the payouts computed by hand in the comments, then a property test:
for any bets and any outcome the money is conserved, winners never get less than their
stake, the books audit clean and a pool pays out once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from fractions import Fraction
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import game as g
from actors import pool as p
from actors.wallet import GetBalances, Settle, Stakes
from domain.errors import DomainError
from kit.runtime import Mailbox, OutcomeUnknown
from tests.conftest import ActorHarness, Match, open_match
from tests.postgres import open_test_database
from tote.server import ServerConfig, start_services

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

DEPOSIT = 100_00  # every player starts with 100.00 EUR


async def wallet(h: ActorHarness, user_id: int) -> tuple[int, int, int]:
    """(current, available, exposure) in cents."""
    balance = (await h.services.ask_wallet(GetBalances(user_id)))["EUR"]
    return balance.current, balance.available, balance.exposure


async def account(h: ActorHarness, name: str) -> int:
    return await h.services.storage.read(
        lambda db: db.scalar(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ?", (name,)
        )
    )


async def settlement_lines(h: ActorHarness, pool_id: str) -> list[tuple[str, int]]:
    rows = await h.services.storage.read(
        lambda db: db.rows(
            "SELECT account, amount FROM ledger WHERE tx_id = ? ORDER BY seq",
            (f"settle:{pool_id}",),
        )
    )
    return [(r["account"], r["amount"]) for r in rows]


async def ledger_rows(h: ActorHarness) -> int:
    return await h.services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM ledger"))


async def assert_books(h: ActorHarness, pool_id: str, balances: dict[int, int], house: int) -> None:
    """Every player has ``balances[id]`` cents and no exposure, the house ``house``, the
    escrow is empty, every participant was told their new balance, and the audit passes."""
    for user_id, current in balances.items():
        assert await wallet(h, user_id) == (current, current, 0), user_id
    assert await account(h, "house") == house
    assert await account(h, f"escrow:{pool_id}") == 0
    assert await h.audit() == []


def pushed_balance(m: Match, user_id: int) -> int:
    """The last 815 a user got, in cents."""
    return int(m.pushes[user_id].take(815)[-1]["current_balance"] * 100)


async def place(pool: Any, bets: list[tuple[int, str, str]]) -> None:
    for user_id, target, amount in bets:
        await pool.ask(p.PlaceBet(user_id, target, amount))


# -- worked examples --------------------------------------------------------------------


async def test_takeout_and_breakage_go_to_the_house_as_their_own_lines(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(takeout="0.1")
    alice, bob, carol = [await m.player(name) for name in ("alice", "bob", "carol")]
    await place(pool, [(alice, "a", "10"), (bob, "a", "25"), (carol, "b", "66.67")])
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", None))
    # T = 101.67; takeout floor(10.167) = 10.16; N = 91.51; W = 35.00
    # alice floor(10.00 * 91.51 / 35) = floor(26.1457) = 26.14
    # bob   floor(25.00 * 91.51 / 35) = floor(65.3642) = 65.36
    # paid 91.50 of N = 91.51: breakage 0.01
    [result] = m.watcher.take(362)
    assert result["winning_target"] == "a"
    assert result["winners"] == {str(alice): D("26.14"), str(bob): D("65.36")}
    assert (result["losers"], result["invalidated_bettors"]) == ([carol], [])
    assert result["is_money_return"] is False
    escrow = f"escrow:{pool_id}"
    assert await settlement_lines(actors, pool_id) == [
        (escrow, -26_14),
        (f"wallet:{alice}", 26_14),
        (escrow, -65_36),
        (f"wallet:{bob}", 65_36),
        (escrow, -10_16),
        ("house", 10_16),  # takeout
        (escrow, -1),
        ("house", 1),  # breakage
    ]
    balances = {alice: 90_00 + 26_14, bob: 75_00 + 65_36, carol: 33_33}
    await assert_books(actors, pool_id, balances, house=10_17)
    assert {u: pushed_balance(m, u) for u in balances} == balances


async def test_minus_pool_the_house_tops_winners_up_to_their_stake(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(takeout="0.15")
    alice, bob, carol = [await m.player(name) for name in ("alice", "bob", "carol")]
    await place(pool, [(alice, "a", "33.33"), (bob, "a", "66.66"), (carol, "b", "0.01")])
    result = await pool.ask(p.ResolveByHand("a"))
    # T = 100.00; takeout 15.00; N = 85.00; W = 99.99
    # alice floor(33.33 * 85 / 99.99) = 28.33 < 33.33: the house adds 5.00
    # bob   floor(66.66 * 85 / 99.99) = 56.66 < 66.66: the house adds 10.00
    # breakage 85.00 - 84.99 = 0.01; house: 15.00 + 0.01 - 15.00 = 0.01 (carol's stake)
    assert result.fields["winners"] == {str(alice): D("33.33"), str(bob): D("66.66")}
    assert result.fields["losers"] == [carol]
    escrow = f"escrow:{pool_id}"
    assert await settlement_lines(actors, pool_id) == [
        ("house", -15_00),
        (escrow, 15_00),  # the cover comes in first
        (escrow, -33_33),
        (f"wallet:{alice}", 33_33),
        (escrow, -66_66),
        (f"wallet:{bob}", 66_66),
        (escrow, -15_00),
        ("house", 15_00),
        (escrow, -1),
        ("house", 1),
    ]
    await assert_books(actors, pool_id, {alice: DEPOSIT, bob: DEPOSIT, carol: 99_99}, house=1)


async def test_no_winner_is_a_money_return_without_takeout(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(targets="a:1,b:1", takeout="0.1")
    alice, bob = await m.player("alice"), await m.player("bob")
    await place(pool, [(alice, "a:1", "12.34"), (bob, "b:1", "56.78")])
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:2", None))  # nobody backed none
    [result] = m.watcher.take(362)
    assert (result["winning_target"], result["is_money_return"]) == ("none", True)
    assert (result["winners"], result["losers"]) == ({}, [])
    escrow = f"escrow:{pool_id}"
    assert await settlement_lines(actors, pool_id) == [
        (escrow, -12_34),
        (f"wallet:{alice}", 12_34),
        (escrow, -56_78),
        (f"wallet:{bob}", 56_78),
    ]
    await assert_books(actors, pool_id, {alice: DEPOSIT, bob: DEPOSIT}, house=0)
    assert pushed_balance(m, alice) == pushed_balance(m, bob) == DEPOSIT


async def test_bets_after_happened_at_are_refunded_and_left_out_of_the_pool(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(takeout="0.1")
    alice, bob, carol, dave = [await m.player(n) for n in ("alice", "bob", "carol", "dave")]
    await place(pool, [(alice, "a", "10"), (carol, "b", "30")])
    await trio.sleep(1)
    happened_at = m.now
    await trio.sleep(1)
    await place(pool, [(bob, "a", "20"), (dave, "b", "5"), (alice, "a", "1")])
    await trio.sleep(1)
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", happened_at))
    # valid: alice 10 on a, carol 30 on b. T = 40, takeout 4, N = 36, W = 10: alice 36.00
    # late: bob 20, dave 5 and alice's second 1 come back untouched
    [result] = m.watcher.take(362)
    assert result["winners"] == {str(alice): 36}
    assert result["losers"] == [carol]
    assert result["invalidated_bettors"] == sorted([alice, bob, dave])
    statuses = await actors.services.storage.read(
        lambda db: db.rows(
            "SELECT user_id, amount, status, payout FROM bets WHERE pool_id = ? ORDER BY rowid",
            (pool_id,),
        )
    )
    assert [(r["user_id"], r["status"], r["payout"]) for r in statuses] == [
        (alice, "won", 36_00),
        (carol, "lost", 0),
        (bob, "refunded", 20_00),
        (dave, "refunded", 5_00),
        (alice, "refunded", 1_00),
    ]
    balances = {alice: 90_00 + 36_00, bob: DEPOSIT, carol: 70_00, dave: DEPOSIT}
    await assert_books(actors, pool_id, balances, house=4_00)
    assert {u: pushed_balance(m, u) for u in balances} == balances


async def test_a_pool_pays_out_once(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    await place(pool, [(alice, "a", "10"), (bob, "b", "10")])
    await pool.ask(p.ResolveByHand("a"))
    rows = await ledger_rows(actors)
    for again in (p.ResolveByHand("a"), p.ResolveByHand("b"), p.Void()):
        with pytest.raises(DomainError) as refused:
            await pool.ask(again)
        assert refused.value.code == "POOL_CLOSED"
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "b:1", None))
    assert await ledger_rows(actors) == rows
    await assert_books(actors, pool_id, {alice: 110_00, bob: 90_00}, house=0)


# -- a wallet answer lost after its commit ----------------------------------------------


class LosesOneAnswer:
    """The wallet's address, except that the answer to the first ``kind`` request is lost
    after the change was committed: the caller hears REQUEST_TIMED_OUT, as after a stall."""

    def __init__(self, wallet: Mailbox, kind: type) -> None:
        self.wallet, self.kind, self.lost = wallet, kind, False

    async def ask(self, body: Any, *, timeout: float) -> Any:
        answer = await self.wallet.ask(body, timeout=timeout)
        if isinstance(body, self.kind) and not self.lost:
            self.lost = True
            raise OutcomeUnknown("REQUEST_TIMED_OUT", "The wallet did not answer in time.")
        return answer


async def uncertain(box: Mailbox, body: Any) -> None:
    """The request fails with an error that says it may or may not have been applied."""
    with pytest.raises(DomainError) as caught:
        await box.ask(body)
    assert caught.value.code in ("REQUEST_TIMED_OUT", "ACTOR_RESTARTED"), caught.value


async def test_a_stake_committed_without_an_answer_is_still_in_the_pool(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    actors.services.wallet = LosesOneAnswer(actors.services.wallet, Stakes)
    await uncertain(pool, p.PlaceBet(alice, "a", "10"))
    assert await wallet(actors, alice) == (DEPOSIT, 90_00, 10_00)  # it was committed
    await trio.sleep(1)
    await pool.ask(p.PlaceBet(bob, "b", "10"))
    result = await pool.ask(p.ResolveByHand("a"))
    assert result.fields["winners"] == {str(alice): 20}
    await assert_books(actors, pool_id, {alice: 110_00, bob: 90_00}, house=0)


async def test_a_settlement_committed_without_an_answer_is_not_paid_or_reopened(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    await place(pool, [(alice, "a", "10"), (bob, "b", "10")])
    actors.services.wallet = LosesOneAnswer(actors.services.wallet, Settle)
    await uncertain(pool, p.ResolveByHand("a"))
    await trio.sleep(1)
    rows = await ledger_rows(actors)
    for late in (p.PlaceBet(alice, "a", "5"), p.ResolveByHand("b"), p.Void()):
        with pytest.raises(DomainError) as refused:
            await pool.ask(late)
        assert refused.value.code == "POOL_CLOSED"
    assert await ledger_rows(actors) == rows
    await assert_books(actors, pool_id, {alice: 110_00, bob: 90_00}, house=0)


# -- property: any bets, any outcome ----------------------------------------------------


@asynccontextmanager
async def fresh_actors() -> AsyncIterator[ActorHarness]:
    """The `actors` fixture, once per hypothesis example."""
    database = open_test_database()
    try:
        async with trio.open_nursery() as nursery:
            services = await nursery.start(
                start_services, ServerConfig(offload=False), database, "key"
            )
            yield ActorHarness(services, nursery)
            nursery.cancel_scope.cancel()
    finally:
        database.close()


RICH = 1_000_00  # enough for any ten bets
TARGETS = ("a", "b", "none")
EVENT_FOR = {"a": "a:1", "b": "b:1", "none": "c"}  # the goal that makes each the winner

bets_st = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 5_000)), max_size=10
)  # (player, cents)
outcome_st = st.one_of(
    st.tuples(st.sampled_from((*TARGETS, "void")), st.none()),
    st.tuples(st.sampled_from(TARGETS), st.integers(0, 10)),  # an event after bet #k
)


def expected_credit(
    bets: list[tuple[int, str, int, bool]], winner: str | None, takeout: Fraction
) -> dict[int, int]:
    """What decisions §2 pays each user, computed independently: (user, target, stake,
    late) per bet; ``winner`` None for a void."""
    valid = [(u, t, s) for u, t, s, late in bets if not late]
    total = sum(s for _, _, s in valid)
    on_winner = sum(s for _, t, s in valid if t == winner)
    net = total - math.floor(total * takeout)
    credit: dict[int, int] = defaultdict(int)
    for user, target, stake, late in bets:
        if late or on_winner == 0:
            credit[user] += stake
        elif target == winner:
            credit[user] += max(stake * net // on_winner, stake)
    return credit


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bets=bets_st,
    backs=st.lists(st.sampled_from(TARGETS), min_size=4, max_size=4),
    takeout=st.sampled_from(("0", "0.05", "0.1", "0.125", "0.3")),
    outcome=outcome_st,
)
async def test_any_settlement_conserves_money_and_pays_once(
    bets: list[tuple[int, int]], backs: list[str], takeout: str, outcome: tuple[str, int | None]
) -> None:
    winner, late_after = outcome
    async with fresh_actors() as h:
        m = await open_match(h)
        pool_id, pool = await m.pool(takeout=takeout)
        players = [await m.player(f"p{i}", deposit=RICH) for i in range(4)]
        placed: list[tuple[int, str, int, bool]] = []
        happened_at = None
        for k, (who, cents) in enumerate(bets):
            if k == late_after:
                await trio.sleep(0.002)
                happened_at = m.now
                await trio.sleep(0.002)
            await pool.ask(p.PlaceBet(players[who], backs[who], f"{cents / 100:.2f}"))
            placed.append((players[who], backs[who], cents, happened_at is not None))
        if late_after is not None:
            if happened_at is None:
                happened_at = m.now
            await m.game.ask(g.RegisterEvent(m.admin, "goal", EVENT_FOR[winner], happened_at))
            [result] = m.watcher.take(362)
        elif winner == "void":
            result = (await pool.ask(p.Void())).fields
        else:
            result = (await pool.ask(p.ResolveByHand(winner))).fields

        staked = sum(cents for _, _, cents, _ in placed)
        spent = defaultdict(int)
        for user, _, cents, _ in placed:
            spent[user] += cents
        after = {u: await wallet(h, u) for u in players}
        credited = {u: current - (RICH - spent[u]) for u, (current, _, _) in after.items()}
        house = await account(h, "house")
        # paid + refunded + house == staked, to the cent, and the escrow is empty
        assert sum(credited.values()) + house == staked
        assert await account(h, f"escrow:{pool_id}") == 0
        assert all(exposure == 0 for _, _, exposure in after.values())
        # exactly what decisions §2 says each user gets
        rate = Fraction(takeout)
        expected = expected_credit(placed, None if winner == "void" else winner, rate)
        assert credited == {u: expected.get(u, 0) for u in players}
        # no winner gets less than their (valid) stake
        for user_id, amount in result["winners"].items():
            stake = sum(c for u, _, c, late in placed if u == int(user_id) and not late)
            assert amount * 100 >= stake
        assert await h.audit() == []
        # settled once: a second resolution changes nothing
        rows = await ledger_rows(h)
        with pytest.raises(DomainError) as refused:
            await pool.ask(p.ResolveByHand("a"))
        assert refused.value.code == "POOL_CLOSED"
        assert await ledger_rows(h) == rows
