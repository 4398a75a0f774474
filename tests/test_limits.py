"""Player limits and self-exclusion on the actors (decisions §12), under trio's autojump
clock so days pass in no time: worked examples to the cent, refusals that change
nothing, and the wallet rebuilt from storage agreeing with what it had in memory."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio

from actors import game as g
from actors import pool as p
from actors.wallet import Deposit, Exclude, GetBalances, GetLimits, LimitsView, SetLimits, Withdraw
from domain.errors import DomainError
from domain.limits import DAY_MS, Kind, Period
from tests.conftest import ActorHarness, open_match

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

LOSS_DAY = (Kind.LOSS, Period.DAY)
DEPOSIT_DAY = (Kind.DEPOSIT, Period.DAY)
DAY_S = DAY_MS / 1000


async def balance(h: ActorHarness, user_id: int) -> tuple[int, int]:
    """(available, exposure) in cents."""
    found = (await h.services.ask_wallet(GetBalances(user_id))).get("EUR")
    return (found.available, found.exposure) if found else (0, 0)


async def ledger_lines(h: ActorHarness) -> int:
    return await h.services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM ledger"))


async def refused(h: ActorHarness, user_id: int, ask: object, code: str) -> DomainError:
    """``ask`` is refused with ``code`` and changes no balance and no ledger line."""
    before = (await balance(h, user_id), await ledger_lines(h))
    with pytest.raises(DomainError) as refusal:
        await ask  # type: ignore[misc]
    assert refusal.value.code == code, refusal.value
    assert (await balance(h, user_id), await ledger_lines(h)) == before
    return refusal.value


async def shown(h: ActorHarness, user_id: int) -> tuple[object, ...]:
    view = await h.services.ask_wallet(GetLimits(user_id, "EUR"))
    return view.limits, view.left, view.excluded_until


async def limits(h: ActorHarness, user_id: int, **wanted: int | None) -> LimitsView:
    slots = {(Kind(k.split("_")[0]), Period(k.split("_")[1])): v for k, v in wanted.items()}
    return await h.services.ask_wallet(SetLimits(user_id, "EUR", slots))


async def test_a_loss_limit_reached_by_a_bet_and_the_same_bet_allowed_a_day_later(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, pool = await m.pool()
    alice = await m.player("alice", deposit=100_00)
    view = await limits(actors, alice, loss_day=20_00)
    assert view.left[Kind.LOSS] == {Period.DAY: 20_00}
    await pool.ask(p.PlaceBet(alice, "a", "15"))  # pending: counts in full
    error = await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "5.01")), "LIMIT_REACHED")
    assert error.extra == {"limit": "loss", "period": "day", "left": D("5.0")}
    await pool.ask(p.PlaceBet(alice, "a", "5"))  # 15 + 5 = 20: exactly the limit
    await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "0.01")), "LIMIT_REACHED")
    assert await balance(actors, alice) == (80_00, 20_00)
    await trio.sleep(DAY_S)  # the stakes of a day ago leave the rolling day
    await pool.ask(p.PlaceBet(alice, "a", "5.01"))
    assert await balance(actors, alice) == (74_99, 25_01)
    view = await actors.services.ask_wallet(GetLimits(alice, "EUR"))
    assert view.left[Kind.LOSS] == {Period.DAY: 14_99}


async def test_a_loss_is_net_of_the_settled_bets_of_the_period(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """Alice stakes 10.00 on a, Bob 10.00 on b; a wins, no takeout: Alice gets 20.00
    back, a net loss of -10.00, so 30.00 of her 20.00 limit is left and Bob's is 10.00."""
    m = await open_match(actors)
    _, pool = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    for user_id in (alice, bob):
        await limits(actors, user_id, loss_day=20_00)
    await pool.ask(p.PlaceBet(alice, "a", "10"))
    await pool.ask(p.PlaceBet(bob, "b", "10"))
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", None))
    left = {
        user_id: (await actors.services.ask_wallet(GetLimits(user_id, "EUR"))).left[Kind.LOSS]
        for user_id in (alice, bob)
    }
    assert left == {alice: {Period.DAY: 30_00}, bob: {Period.DAY: 10_00}}
    _, second = await m.pool()
    await refused(actors, alice, second.ask(p.PlaceBet(alice, "a", "30.01")), "LIMIT_REACHED")
    await second.ask(p.PlaceBet(alice, "a", "30"))


async def test_a_raise_waits_24_hours_and_a_lower_limit_applies_at_once(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, pool = await m.pool()
    alice = await m.player("alice")
    start = actors.services.clock.now_ms()
    await limits(actors, alice, loss_day=10_00)
    view = await limits(actors, alice, loss_day=50_00)
    assert view.limits.in_force(Kind.LOSS, view.now) == {Period.DAY: 10_00}
    [waiting] = view.limits.waiting(view.now)
    assert (waiting.amount, waiting.starts) == (50_00, start + DAY_MS)
    await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "10.01")), "LIMIT_REACHED")
    await trio.sleep(DAY_S - 0.001)
    await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "10.01")), "LIMIT_REACHED")
    await trio.sleep(0.001)
    await pool.ask(p.PlaceBet(alice, "a", "10.01"))  # the raise is in force
    view = await limits(actors, alice, loss_day=10_00)  # lower: at once
    assert view.left[Kind.LOSS] == {Period.DAY: 0}
    await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "0.01")), "LIMIT_REACHED")


async def test_a_deposit_limit(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    wallet = actors.services.ask_wallet
    alice = await actors.user("alice")
    await limits(actors, alice, deposit_day=50_00)
    await wallet(Deposit(alice, "EUR", 30_00, "d1"))
    await wallet(Withdraw(alice, "EUR", 30_00, "w1"))  # a withdrawal gives no room back
    error = await refused(
        actors, alice, wallet(Deposit(alice, "EUR", 20_01, "d2")), "LIMIT_REACHED"
    )
    assert error.extra["left"] == D("20.0")
    await wallet(Deposit(alice, "EUR", 20_00, "d3"))
    await wallet(Deposit(alice, "USD", 500_00, "d4"))  # limits hold in their currency only
    await trio.sleep(DAY_S)
    await wallet(Deposit(alice, "EUR", 50_00, "d5"))
    assert await balance(actors, alice) == (70_00, 0)


async def test_self_exclusion_refuses_bets_and_deposits_and_is_never_shortened(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    wallet = actors.services.ask_wallet
    m = await open_match(actors)
    _, pool = await m.pool()
    alice = await m.player("alice", deposit=50_00)
    until = actors.services.clock.now_ms() + 2 * DAY_MS
    await refused(actors, alice, wallet(Exclude(alice, until - DAY_MS - 1)), "INVALID_PARAMETER")
    assert (await wallet(Exclude(alice, until))).until == until
    await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "1")), "USER_BLOCKED")
    await refused(actors, alice, wallet(Deposit(alice, "EUR", 1_00, "d")), "USER_BLOCKED")
    error = await refused(actors, alice, wallet(Exclude(alice, until - 1)), "INVALID_PARAMETER")
    assert error.extra["excluded_until"] == until
    await wallet(Withdraw(alice, "EUR", 10_00, "w"))  # the player can still take money out
    await trio.sleep(2 * DAY_S - 0.001)
    await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "1")), "USER_BLOCKED")
    await trio.sleep(0.001)
    await pool.ask(p.PlaceBet(alice, "a", "1"))
    assert await balance(actors, alice) == (39_00, 1_00)


async def test_limits_exclusions_and_what_counts_survive_a_wallet_restart(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """The wallet rebuilt from storage shows exactly what it had in memory."""
    wallet = actors.services.ask_wallet
    m = await open_match(actors)
    _, pool = await m.pool()
    alice = await m.player("alice")
    await pool.ask(p.PlaceBet(alice, "a", "7"))  # before any limit: counted all the same
    await limits(actors, alice, loss_day=20_00, loss_week=30_00, deposit_month=500_00)
    await limits(actors, alice, loss_week=60_00)  # waits a day
    await wallet(Deposit(alice, "EUR", 12_34, "d"))
    await pool.ask(p.PlaceBet(alice, "a", "3"))
    await wallet(Exclude(bob := await actors.user("bob"), actors.services.clock.now_ms() + DAY_MS))
    before = [await shown(actors, user_id) for user_id in (alice, bob)]
    assert before[0][1] == {
        Kind.DEPOSIT: {Period.MONTH: 387_66},
        Kind.LOSS: {Period.DAY: 10_00, Period.WEEK: 20_00},
    }
    actors.services.supervisor.kill("wallet")
    after = [await shown(actors, user_id) for user_id in (alice, bob)]
    assert after == before
    await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "10.01")), "LIMIT_REACHED")
    await refused(actors, bob, wallet(Deposit(bob, "EUR", 1_00, "b")), "USER_BLOCKED")


async def test_a_held_bet_is_judged_by_the_loss_limit_when_held_and_when_placed(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """A pool with a bet delay (decisions §11): a held stake past the loss limit is refused
    at once; one within it is placed after the delay and then counts toward the limit."""
    m = await open_match(actors)
    _, pool = await m.pool(bet_delay_ms="2000")
    alice = await m.player("alice", deposit=100_00)
    await limits(actors, alice, loss_day=20_00)
    await refused(actors, alice, pool.ask(p.PlaceBet(alice, "a", "20.01")), "LIMIT_REACHED")
    held = await pool.ask(p.PlaceBet(alice, "a", "15"))
    assert isinstance(await held.decision.wait(), p.BetPlaced)
    view = await actors.services.ask_wallet(GetLimits(alice, "EUR"))
    assert view.left[Kind.LOSS] == {Period.DAY: 5_00}
    assert await actors.audit() == []
