"""Pool rules through the actors, to the cent (decisions §11): a minus pool at a minimum
dividend of 1.10, a guarantee topped up and one not needed, a carry-over across two
recreated pools then won, bets held for a delay (refused by an event, placed after it,
kept across restarts). The audit passes after each."""

from __future__ import annotations

import time
from decimal import Decimal as D

import trio

from actors import game as g
from actors import pool as p
from actors.wallet import GetBalances
from domain.errors import DomainError
from kit.clock import WallClock
from kit.runtime import OutcomeUnknown
from tests.conftest import ActorHarness, Match, ledger_problems, open_match
from tests.postgres import open_test_database
from tests.test_settlement import DEPOSIT, account, place, settlement_lines, wallet
from tote.server import ServerConfig, start_services


async def house(h: ActorHarness) -> int:
    return await account(h, "house")


async def test_a_minus_pool_at_min_dividend_1_10(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(takeout="0.15", min_dividend="1.10")
    alice, bob, carol = [await m.player(n) for n in ("alice", "bob", "carol")]
    await place(pool, [(alice, "a", "60"), (bob, "a", "30"), (carol, "b", "10")])
    result = await pool.ask(p.ResolveByHand("a"))
    # T = 100.00, takeout 15.00, N = 85.00, W = 90.00
    # alice floor(60 * 85 / 90) = 56.66 -> at least 60.00 * 1.10 = 66.00 (cover 9.34)
    # bob   floor(30 * 85 / 90) = 28.33 -> at least 30.00 * 1.10 = 33.00 (cover 4.67)
    # breakage 0.01; the house: 15.00 + 0.01 - 14.01 = 1.00
    assert result.fields["winners"] == {str(alice): D("66"), str(bob): D("33")}
    escrow = f"escrow:{pool_id}"
    assert (await settlement_lines(actors, pool_id))[:2] == [("house", -14_01), (escrow, 14_01)]
    assert await wallet(actors, alice) == (DEPOSIT + 6_00, DEPOSIT + 6_00, 0)
    assert await wallet(actors, bob) == (DEPOSIT + 3_00, DEPOSIT + 3_00, 0)
    assert await house(actors) == 1_00
    assert await account(actors, escrow) == 0
    assert await actors.audit() == []


async def test_a_guarantee_topped_up_and_one_not_needed(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    alice, bob = await m.player("alice", 1000_00), await m.player("bob", 1000_00)
    short_id, short = await m.pool(takeout="0.1", guarantee="500")
    await place(short, [(alice, "a", "100"), (bob, "b", "200")])
    result = await short.ask(p.ResolveByHand("a"))
    # T = 300.00, takeout 30.00, N = 270.00 < 500.00: the house adds 230.00 -> alice 500.00
    assert result.fields["winners"] == {str(alice): D("500")}
    assert (await settlement_lines(actors, short_id))[:2] == [
        ("house", -230_00),
        (f"escrow:{short_id}", 230_00),
    ]
    assert await house(actors) == 30_00 - 230_00
    full_id, full = await m.pool(takeout="0.1", guarantee="500")
    await place(full, [(alice, "a", "200"), (bob, "b", "400")])
    result = await full.ask(p.ResolveByHand("a"))
    # T = 600.00, takeout 60.00, N = 540.00 >= 500.00: no top-up; alice gets 540.00
    assert result.fields["winners"] == {str(alice): D("540")}
    assert all(
        account != "house" or amount > 0
        for account, amount in await settlement_lines(actors, full_id)
    )
    assert await house(actors) == 30_00 - 230_00 + 60_00
    assert await wallet(actors, alice) == (1000_00 + 400_00 + 340_00,) * 2 + (0,)
    assert await actors.audit() == []


def successor_of(m: Match, pool_id: str) -> str:
    """The pool recreated after ``pool_id`` (the newest 352 that is not it)."""
    opened = [msg["pool_id"] for msg in m.watcher.take(352) if msg["pool_id"] != pool_id]
    return opened[-1]


async def test_a_carry_over_across_two_recreated_pools_then_won(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    alice, bob, carol = [await m.player(n) for n in ("alice", "bob", "carol")]
    first_id, first = await m.pool(takeout="0.1", recreate_on_end="true", carry_over="true")
    await place(first, [(alice, "b", "10"), (bob, "b", "20")])
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", None))  # nobody backed a
    # takeout 3.00, net 27.00 moves on: alice and bob lose, nothing is refunded
    [result] = m.watcher.take(362)
    assert (result["winners"], result["losers"]) == ({}, sorted([alice, bob]))
    assert (result["is_money_return"], result["carried_over"]) == (False, D("27"))
    second_id = successor_of(m, first_id)
    assert (await settlement_lines(actors, first_id))[-2:] == [
        (f"escrow:{first_id}", -27_00),
        (f"escrow:{second_id}", 27_00),
    ]
    _, second = await actors.services.games.pool(second_id)
    assert (await second.ask(p.Announcement())).fields["carried_in"] == D("27")
    await place(second, [(carol, "b", "5")])
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:2", None))  # nobody backed a again
    # takeout 0.50; 4.50 + 27.00 = 31.50 moves on
    third_id = successor_of(m, second_id)
    _, third = await actors.services.games.pool(third_id)
    assert (await third.ask(p.Announcement())).fields["carried_in"] == D("31.5")
    await place(third, [(alice, "a", "4"), (bob, "a", "6"), (carol, "b", "10")])
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", None))
    # T = 20.00, takeout 2.00, N = 18.00 + 31.50 = 49.50, W = 10.00
    # alice floor(4 * 49.50 / 10) = 19.80, bob floor(6 * 49.50 / 10) = 29.70
    results = {r["pool_id"]: r for r in m.watcher.take(362)}
    assert results[third_id]["winners"] == {str(alice): D("19.8"), str(bob): D("29.7")}
    assert await house(actors) == 3_00 + 50 + 2_00
    for pool_id in (first_id, second_id, third_id):
        assert await account(actors, f"escrow:{pool_id}") == 0
    assert await wallet(actors, alice) == (DEPOSIT - 10_00 - 4_00 + 19_80,) * 2 + (0,)
    assert await wallet(actors, bob) == (DEPOSIT - 20_00 - 6_00 + 29_70,) * 2 + (0,)
    assert await wallet(actors, carol) == (DEPOSIT - 15_00,) * 2 + (0,)
    assert await actors.audit() == []


async def test_a_carried_in_pot_goes_to_the_house_when_there_is_no_successor(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    alice = await m.player("alice")
    first_id, first = await m.pool(recreate_on_end="true", carry_over="true")
    await place(first, [(alice, "b", "10")])
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", None))
    second_id = successor_of(m, first_id)
    _, second = await actors.services.games.pool(second_id)
    await second.ask(p.Void())  # voided: no successor, every stake back, 10.00 unclaimed
    assert (await settlement_lines(actors, second_id))[-2:] == [
        (f"escrow:{second_id}", -10_00),
        ("house", 10_00),
    ]
    assert await house(actors) == 10_00
    assert await actors.audit() == []


async def test_carry_over_needs_recreate_on_end(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    try:
        await m.pool(carry_over="true")
    except DomainError as error:
        assert (error.code, error.extra["parameter"]) == ("INVALID_PARAMETER", "carry_over")
    else:
        raise AssertionError("carry_over without recreate_on_end was taken")


# -- bet delay -----------------------------------------------------------------------------


async def test_a_held_bet_is_refused_by_an_event_during_its_delay(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    alice, bob = await m.player("alice"), await m.player("bob")
    pool_id, pool = await m.pool(bet_delay_ms="5000")
    held = await pool.ask(p.PlaceBet(alice, "a", "10"))
    assert isinstance(held, p.BetHeld) and held.due_at == m.now + 5000
    # the stake is exposure from the start, and nothing is in the ledger yet
    assert await wallet(actors, alice) == (DEPOSIT, DEPOSIT - 10_00, 10_00)
    assert await account(actors, f"escrow:{pool_id}") == 0
    await trio.sleep(1)
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", None))
    try:
        await held.decision.wait()
    except DomainError as error:
        assert error.code == "POOL_CLOSED"
    else:
        raise AssertionError("a bet held across an event was placed")
    assert await wallet(actors, alice) == (DEPOSIT, DEPOSIT, 0)
    assert await account(actors, f"escrow:{pool_id}") == 0
    assert (
        await actors.services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM held_bets"))
        == 0
    )
    assert bob and await actors.audit() == []


async def test_a_held_bet_is_placed_after_its_delay(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    alice = await m.player("alice")
    pool_id, pool = await m.pool(bet_delay_ms="3000")
    asked_at = m.now
    held = await pool.ask(p.PlaceBet(alice, "a", "12.34"))
    placed = await held.decision.wait()
    assert isinstance(placed, p.BetPlaced) and placed.amount == 12_34
    assert m.now >= asked_at + 3000
    assert await wallet(actors, alice) == (DEPOSIT, DEPOSIT - 12_34, 12_34)
    assert await account(actors, f"escrow:{pool_id}") == 12_34
    # a second bet of alice's is on the same target (one target per pool counts the held)
    await pool.ask(p.PlaceBet(alice, "a", "1"))
    try:
        await pool.ask(p.PlaceBet(alice, "b", "1"))
    except DomainError as error:
        assert error.code == "INVALID_TARGET"
    await trio.sleep(10)
    await pool.ask(p.ResolveByHand("a"))
    assert await wallet(actors, alice) == (DEPOSIT, DEPOSIT, 0)
    assert await actors.audit() == []


async def test_a_held_bet_survives_a_pool_restart_and_is_decided_once(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    alice = await m.player("alice")
    pool_id, pool = await m.pool(bet_delay_ms="5000")
    held = await pool.ask(p.PlaceBet(alice, "a", "10"))
    actors.services.supervisor.kill(f"pool:{pool_id}")
    try:
        await held.decision.wait()  # its waiter hears the actor died, not silence
    except OutcomeUnknown as error:
        assert error.code == "ACTOR_RESTARTED"
    except DomainError as error:
        assert error.code == "ACTOR_RESTARTED"
    await trio.sleep(6)  # the new incarnation read it back and placed it when due
    dist = await pool.ask(p.GetDistribution(alice, everything=False))
    assert dist.distribution["a"]["amount_total"] == D("10")
    assert await wallet(actors, alice) == (DEPOSIT, DEPOSIT - 10_00, 10_00)
    assert await account(actors, f"escrow:{pool_id}") == 10_00
    rows = "SELECT (SELECT COUNT(*) FROM bets) AS bets, (SELECT COUNT(*) FROM held_bets) AS held"
    counts = await actors.services.storage.read(lambda db: db.rows(rows))
    assert list(counts[0].values()) == [1, 0]
    assert await actors.audit() == []


async def test_a_held_bet_survives_a_server_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The bet is held when the server stops; the next start holds its stake as exposure
    and places it when due; a third start finds it placed once."""
    database = open_test_database()
    config = ServerConfig(offload=False)
    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, config, database, "key")
        services.clock = WallClock(int(time.time() * 1000))
        m = await open_match(ActorHarness(services, nursery))
        alice = await m.player("alice")
        pool_id, pool = await m.pool(bet_delay_ms="15000")
        await pool.ask(p.PlaceBet(alice, "a", "7.5"))
        nursery.cancel_scope.cancel()
    for _ in range(2):
        async with trio.open_nursery() as nursery:
            services = await nursery.start(start_services, config, database, "key")
            balance = (await services.ask_wallet(GetBalances(alice)))["EUR"]
            assert (balance.current, balance.exposure) == (DEPOSIT, 7_50)
            await trio.sleep(16)
            _, box = await services.games.pool(pool_id)
            dist = await box.ask(p.GetDistribution(alice, everything=False))
            assert dist.distribution["a"]["amount_total"] == D("7.5")
            assert await ledger_problems(services) == []
            nursery.cancel_scope.cancel()
    assert database.scalar("SELECT COUNT(*) FROM bets") == 1
    assert database.scalar("SELECT COUNT(*) FROM held_bets") == 0
    stakes = "SELECT COUNT(*) FROM transactions WHERE kind = 'stake'"
    assert database.scalar(stakes) == 1
    database.close()
