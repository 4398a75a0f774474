"""Pool rules over a real websocket (decisions §11): set per game (370, 373) and per pool
(385), shown in 352, 342 and the listings and the HAL schemes, refused with their codes
(nothing changed), a held bet answered 356 after its delay; the audit after each."""

from __future__ import annotations

from decimal import Decimal as D

from domain.codec import decode
from tests.conftest import Harness
from tests.test_ws_pools import TEAMS, expect_pool, refused, table

RULES = {"min_dividend": "1.10", "guarantee": "500", "carry_over": True, "bet_delay_ms": 2500}


async def test_a_pool_takes_its_game_rules_and_its_own(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        # 373 sets the game's defaults; 342 shows them
        await t.admin.call(373, 343, game_id=t.game_id, min_dividend="1.02", guarantee="50")
        details = await t.admin.call(372, 342, game_id=t.game_id)
        assert (details["min_dividend"], details["guarantee"]) == (D("1.02"), D("50"))
        assert (details["carry_over"], details["bet_delay_ms"]) == (False, 0)
        # a pool without rules of its own takes the game's
        inherited = await t.pool()
        shown = await expect_pool(t["alice"], 352, inherited)
        assert (shown["min_dividend"], shown["guarantee"]) == (D("1.02"), D("50"))
        assert shown["carried_in"] == D("0")
        # one with its own keeps them
        own = (
            await t.admin.call(
                385, 350, game_id=t.game_id, pool_type="1", recreate_on_end="true", **TEAMS, **RULES
            )
        )["pool_id"]
        shown = await expect_pool(t["alice"], 352, own)
        assert {k: shown[k] for k in RULES} == {
            "min_dividend": D("1.1"),
            "guarantee": D("500"),
            "carry_over": True,
            "bet_delay_ms": 2500,
        }
        listed = await t["alice"].call(387, 3535, game_id=t.game_id)
        entry = listed["pools_list"][own]
        assert (entry["min_dividend"], entry["bet_delay_ms"], entry["carried_in"]) == (
            D("1.1"),
            2500,
            D("0"),
        )
        # the HAL schemes show them too
        product = details["source_id"]
        base = f"/gaming-products/{product}/participation-pools/{own}"
        betting = decode((await t.harness.http.get(f"{base}/betting-scheme")).content)
        winning = decode((await t.harness.http.get(f"{base}/winning-scheme")).content)
        assert betting["bet-delay-ms"] == 2500
        assert (winning["minimum-dividend"], winning["guarantee"]) == (D("1.1"), D("500"))
        assert winning["carry-over"] is True
        assert await harness.audit() == []


async def test_bad_rules_are_refused_and_change_nothing(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        for bad in (
            {"min_dividend": "0.5"},
            {"min_dividend": "1.00001"},
            {"guarantee": "-1"},
            {"guarantee": "1.001"},
            {"guarantee": "10", "guarantee_currency": "USD"},
            {"bet_delay_ms": "15001"},
            {"carry_over": "true"},  # without recreate_on_end
        ):
            reply = await refused(
                t.admin, 385, "INVALID_PARAMETER", game_id=t.game_id, pool_type="1", **TEAMS, **bad
            )
            assert reply["parameter"] in bad
            if "carry_over" not in bad:  # a game's default carry-over only reaches pools
                await refused(t.admin, 373, "INVALID_PARAMETER", game_id=t.game_id, **bad)
        listed = await t["alice"].call(387, 3535, game_id=t.game_id)
        assert listed["pools_list"] == {}
        details = await t.admin.call(372, 342, game_id=t.game_id)
        assert (details["min_dividend"], details["guarantee"]) == (D("1"), None)
        # only a game's admins set its rules
        await refused(t["alice"], 373, "NOT_AUTHORIZED", game_id=t.game_id, min_dividend="2")
        assert await harness.audit() == []


async def test_a_held_bet_is_answered_356_after_its_delay(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        pool_id = await t.pool(bet_delay_ms="1")
        asked_at = t.now
        placed = await t.bet("alice", pool_id, "argentina", "4.5")
        assert placed["res"] == 356 and placed["amount"] == D("4.5")
        assert t.now >= asked_at + 1
        assert await t.balance("alice") == {
            "current": D("100"),
            "available": D("95.5"),
            "exposure": D("4.5"),
        }
        # refused during the delay: the pool is blocked; nothing is taken
        await t.admin.call(397, 368, pool_id=pool_id)
        await refused(
            t["alice"], 392, "POOL_BLOCKED", pool_id=pool_id, target="argentina", amount=1
        )
        assert (await t.balance("alice"))["available"] == D("95.5")
        assert await harness.audit() == []
