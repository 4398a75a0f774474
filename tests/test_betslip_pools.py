"""A pool's side of a betslip, on the actors under the mock clock: what it holds while a
slip is undecided, and how it learns the truth from storage when the desk never tells it
(gone, or too slow), so that it never settles without a slip that was placed."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio

from actors import pool as p
from actors.wallet import PlaceSlip
from kit.runtime import Mailbox
from storage.changes import Insert
from tests.conftest import ActorHarness, Match, open_match

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

SLIP_SECONDS = 10.0


async def reserve(
    m: Match, box: Mailbox, user_id: int, key: str, target: str, stake: str
) -> p.Reserved:
    info = await box.ask(p.Info())
    reserved = await box.ask(
        p.Reserve(
            key,
            user_id,
            m.game_id,
            info.action,
            [p.SlipStake(0, target, Decimal(stake), {"slip_key": key})],
            trio.current_time() + SLIP_SECONDS,
        )
    )
    assert reserved.refusals == []
    return reserved


async def commit(m: Match, reserved: p.Reserved, user_id: int, key: str) -> None:
    items = [item for _, _, item in reserved.held]
    slip_row = {
        "key": key,
        "fingerprint": "f",
        "user_id": user_id,
        "status": 200,
        "body": b"{}",
        "created_at": m.now,
    }
    await m.h.services.ask_wallet(
        PlaceSlip(
            user_id,
            items,
            [*p.slip_checks(reserved.pool_id), Insert("betslips", slip_row)],
            trio.current_time() + SLIP_SECONDS,
        )
    )


async def test_a_placed_slip_the_pool_never_heard_of_is_settled_with_the_rest(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, box = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    reserved = await reserve(m, box, alice, "slip-1", "a", "10")
    await commit(m, reserved, alice, "slip-1")  # and the desk dies: no Release
    await box.ask(p.PlaceBet(bob, "b", "10"))
    # the one-target rule holds the reservation meanwhile
    refused = await box.ask(
        p.Reserve(
            "slip-2",
            alice,
            m.game_id,
            "goal",
            [p.SlipStake(0, "b", Decimal(1), {})],
            trio.current_time() + SLIP_SECONDS,
        )
    )
    assert [error.code for _, error in refused.refusals] == ["INVALID_TARGET"]
    result = await box.ask(p.ResolveByHand("a"))
    assert result.fields["winners"] == {str(alice): 20}
    assert await actors.audit() == []


async def test_a_slip_never_committed_is_dropped_when_its_time_is_up(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, box = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    await reserve(m, box, alice, "slip-1", "a", "10")
    await trio.sleep(SLIP_SECONDS + 1)  # the desk gave up; the pool asks storage
    # alice is free to back another target now
    await box.ask(p.PlaceBet(alice, "b", "5"))
    await box.ask(p.PlaceBet(bob, "a", "5"))
    result = await box.ask(p.ResolveByHand("b"))
    assert result.fields["winners"] == {str(alice): 10}
    assert await actors.audit() == []


async def test_a_slip_that_lands_after_the_pool_settled_is_refused(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, box = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    await box.ask(p.PlaceBet(bob, "b", "5"))
    reserved = await reserve(m, box, alice, "slip-1", "a", "10")
    await box.ask(p.Void())  # settles without the undecided slip (storage has none)
    try:
        await commit(m, reserved, alice, "slip-1")
    except Exception as error:
        assert getattr(error, "code", None) == "INVALID_BET_DETAILS"
    else:
        raise AssertionError("a slip landed in a settled pool")
    assert await actors.audit() == []
