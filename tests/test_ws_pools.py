"""Every pool op over a real websocket, each success and each refusal, in the seed's shapes
(seed 000, decisions §1 and §2).

The game is the one of test_match: actions goal and offside, targets argentina (players
1 and 2), brazil (player 7). Every player starts with 100.00 EUR.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import trio

from domain.codec import decode
from domain.pool import DEFAULT_MAX_POOL_LIFETIME_MS
from tests.conftest import Harness, WsClient, setup_game
from tests.test_pool_timers import aggregates

D = Decimal
HUNDRED = {"current": D("100"), "available": D("100"), "exposure": D("0")}
TEAMS = {"description": "Next goal by team", "action": "Goal", "targets": "argentina,brazil"}
PLAYERS = {
    "description": "Next goal by player",
    "action": "goal",
    "targets": "argentina:1,argentina:2,brazil:7",
}
BINARY = {"description": "Will Brazil score?", "pool_type": "3", "action": "", "targets": ""}


@dataclass
class Table:
    """A game, its admin and its players, all connected and subscribed."""

    harness: Harness
    game_id: str
    admin: WsClient
    players: dict[str, WsClient]
    ids: dict[str, int]

    def __getitem__(self, name: str) -> WsClient:
        return self.players[name]

    @property
    def now(self) -> int:
        return self.harness.services.clock.now_ms()

    def uid(self, name: str) -> str:
        """A player's user id as the keys of `winners` show it."""
        return str(self.ids[name])

    async def pool(self, **fields: Any) -> str:
        created = await self.admin.call(
            385, 350, game_id=self.game_id, **{"pool_type": "1", **TEAMS, **fields}
        )
        return created["pool_id"]

    async def bet(self, name: str, pool_id: str, target: str, amount: Any) -> dict[str, Any]:
        return await self[name].call(392, 356, pool_id=pool_id, target=target, amount=amount)

    async def balance(self, name: str) -> dict[str, Decimal]:
        r = await self.harness.http.get(f"/v1/users/{self.ids[name]}/balances")
        assert r.status_code == 200, r.text
        return decode(r.content)["EUR"]

    async def drain_all(self) -> None:
        for ws in (self.admin, *self.players.values()):
            await ws.drain(0.02)


@asynccontextmanager
async def table(harness: Harness, *names: str, deposit: str = "100.00") -> AsyncIterator[Table]:
    admin = await harness.user(roles=["developer", "house"])
    users = {name: await harness.user(deposit=deposit) for name in names}
    async with AsyncExitStack() as stack:
        admin_ws = await stack.enter_async_context(harness.connect(admin))
        game_id = await setup_game(admin_ws)
        players = {}
        for name, user in users.items():
            players[name] = await stack.enter_async_context(harness.connect(user))
            await players[name].call(363, 333, game_id=game_id)
        yield Table(
            harness,
            game_id,
            admin_ws,
            players,
            {name: user["user_id"] for name, user in users.items()},
        )


async def refused(ws: WsClient, op: int, code: str, **fields: Any) -> dict[str, Any]:
    reply = await ws.call(op, **fields)
    assert reply["res"] == 666, reply
    assert (reply["error_code"], reply["op"]) == (code, op), reply
    assert reply["text"]
    return reply


async def expect_pool(ws: WsClient, res: int, pool_id: str, timeout: float = 5) -> dict[str, Any]:
    """The next message with this res about this pool (others of that res are dropped)."""
    with trio.fail_after(timeout):
        while True:
            message = await ws.expect(res, timeout=timeout)
            if message.get("pool_id") == pool_id:
                return message


# -- 385 create -------------------------------------------------------------------------


async def test_create_pool_confirms_350_and_broadcasts_the_full_pool_352(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        # the seed's own request, strings and blanks included
        sent_at = t.now
        created = await t.admin.call(
            385,
            350,
            game_id=t.game_id,
            description="Next Goal By Team",
            action="Goal",
            targets="argentina,brazil",
            pool_type="1",
            start_at="",
            finish_at="",
            stop_accepting_bets_at="",
            recreate_on_end="False",
        )
        pool_id = created["pool_id"]
        assert uuid.UUID(pool_id)
        assert {k: created[k] for k in ("res", "game_id", "description", "pool_type")} == {
            "res": 350,
            "game_id": t.game_id,
            "description": "Next Goal By Team",
            "pool_type": 1,
        }
        announced = await t["alice"].expect(352)
        assert announced["response_header"].get("request_id") is None
        empty_target = {"backing_people": 0, "to_win_if_backed": D("1.0"), "backing_money": D("0")}
        assert announced == {
            "response_header": announced["response_header"],
            "res": 352,
            "game_id": t.game_id,
            "pool_id": pool_id,
            "description": "Next Goal By Team",
            "pool_type": 1,
            "action": "goal",
            "people_involved": 0,
            "money_at_stake": D("0"),
            "target_level": 1,
            "targets": {
                "argentina": {
                    **empty_target,
                    "display_name": {"symbol": "arg", "display_name": "Argentina"},
                },
                "brazil": {
                    **empty_target,
                    "display_name": {"symbol": "bra", "display_name": "Brazil"},
                },
                "none": {**empty_target, "display_name": {"symbol": "non", "display_name": "None"}},
            },
            "start_at": announced["start_at"],
            "finish_at": None,
            "stop_accepting_bets_at": None,
            # no closing time: the opening plus max_pool_lifetime_ms (decisions §13)
            "fail_safe_at": announced["start_at"] + DEFAULT_MAX_POOL_LIFETIME_MS,
            "takeout": D("0"),
            "currency": "EUR",
            # the pool rules' defaults (decisions §11): today's behaviour
            "min_dividend": D("1"),
            "guarantee": None,
            "carry_over": False,
            "bet_delay_ms": 0,
            "carried_in": D("0"),
        }
        assert sent_at <= announced["start_at"] <= t.now
        # the creator is a subscriber too: it gets the broadcast besides its 350
        assert (await expect_pool(t.admin, 352, pool_id))["targets"].keys() == {
            "argentina",
            "brazil",
            "none",
        }


async def test_create_pool_refusals_change_nothing(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        past = t.now - 1_000
        cases = [
            ("INVALID_PARAMETER", {"action": "corner"}),
            ("INVALID_TARGET", {"targets": "argentina,brazil:7"}),
            ("INVALID_TARGET", {"targets": "argentina,uruguay"}),
            ("INVALID_PARAMETER", {"pool_type": 5}),
            ("MISSING_PARAMETER", {"pool_type": 2}),
            ("MISSING_PARAMETER", {"pool_type": "4", "finish_at": ""}),
            ("INVALID_PARAMETER", {"pool_type": 2, "finish_at": past}),
            ("INVALID_PARAMETER", {"stop_accepting_bets_at": past}),
            ("MISSING_PARAMETER", {"game_id": ""}),
            ("NOT_FOUND", {"game_id": str(uuid.uuid4())}),
        ]
        for code, fields in cases:
            await refused(t.admin, 385, code, **{"game_id": t.game_id, **TEAMS, **fields})
        await refused(t["alice"], 385, "NOT_AUTHORIZED", game_id=t.game_id, **TEAMS)
        await trio.sleep(0.05)
        assert [m for m in await t["alice"].drain() if m["res"] == 352] == []
        listed = await t["alice"].call(387, 3535, game_id=t.game_id)
        assert listed["pools_list"] == {}


# -- 392 bets ---------------------------------------------------------------------------


async def test_bet_is_confirmed_356_with_its_id_and_exact_amount(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        pool_id = await t.pool()
        placed = await t.bet("alice", pool_id, "Brazil", "10.5")
        assert placed["pool_id"] == pool_id and uuid.UUID(placed["bet_id"])
        assert placed["amount"] == D("10.5") and str(placed["amount"]) == "10.5"
        assert await t.balance("alice") == {
            "current": D("100"),
            "available": D("89.5"),
            "exposure": D("10.5"),
        }
        # adding to the target already backed is fine; a JSON number works too
        again = await t.bet("alice", pool_id, "brazil", D("0.25"))
        assert again["bet_id"] != placed["bet_id"] and again["amount"] == D("0.25")
        assert (await t.balance("alice"))["exposure"] == D("10.75")


async def test_bet_refusals_leave_balances_unchanged(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        pool_id = await t.pool(min_stake="1", max_stake="90")
        await t.bet("alice", pool_id, "brazil", "15")
        before = await t.balance("alice")
        cases = [
            ("INSUFFICIENT_FUNDS", "brazil", "85.01", None),  # 85 available
            ("INVALID_STAKE", "brazil", "0", "positive"),
            ("INVALID_STAKE", "brazil", "-1", "positive"),
            ("INVALID_STAKE", "brazil", "1.001", "decimals"),
            ("INVALID_STAKE", "brazil", "90.01", "max_stake"),
            ("INVALID_STAKE", "brazil", "0.99", "min_stake"),
            ("INVALID_TARGET", "uruguay", "5", None),
            ("INVALID_TARGET", "argentina", "5", None),  # a second target of this pool
            ("MISSING_PARAMETER", "brazil", "", None),
        ]
        for code, target, amount, limit in cases:
            reply = await refused(
                t["alice"], 392, code, pool_id=pool_id, target=target, amount=amount
            )
            assert reply.get("limit") == limit, reply
            if limit in ("min_stake", "max_stake"):
                assert reply[limit] == {"min_stake": D("1"), "max_stake": D("90")}[limit]
                assert limit in reply["text"]
            assert await t.balance("alice") == before, (code, amount)
        await refused(
            t["alice"], 392, "NOT_FOUND", pool_id=str(uuid.uuid4()), target="brazil", amount="1"
        )
        # the limits themselves are fine, on the one target alice backs
        await t.bet("alice", pool_id, "brazil", "1")
        await t.bet("alice", pool_id, "brazil", "84")
        assert await t.balance("alice") == {
            "current": D("100"),
            "available": D("0"),
            "exposure": D("100"),
        }


async def test_bets_are_refused_in_blocked_resolved_and_stopped_pools(harness: Harness) -> None:
    async with table(harness, "alice", "bob") as t:
        blocked = await t.pool()
        await t.admin.call(397, 368, pool_id=blocked)
        await refused(t["alice"], 392, "POOL_BLOCKED", pool_id=blocked, target="brazil", amount="1")
        await t.admin.call(398, 369, pool_id=blocked)
        await t.bet("alice", blocked, "brazil", "1")

        resolved = await t.pool()
        await t.bet("bob", resolved, "brazil", "1")
        await t.admin.call(396, 362, pool_id=resolved, target="brazil")
        await refused(t["alice"], 392, "POOL_CLOSED", pool_id=resolved, target="brazil", amount="1")

        stopping = await t.pool(stop_accepting_bets_at=t.now + 300)
        await t.bet("bob", stopping, "argentina", "2")
        await trio.sleep(0.35)
        before = await t.balance("bob")
        await refused(
            t["bob"], 392, "POOL_CLOSED", pool_id=stopping, target="argentina", amount="1"
        )
        assert await t.balance("bob") == before
        # no longer betting, but still open: it resolves as usual
        result = await t.admin.call(396, 362, pool_id=stopping, target="argentina")
        assert result["winners"] == {t.uid("bob"): D("2")}


async def test_blocked_user_cannot_bet(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        pool_id = await t.pool()
        r = await harness.http.post(f"/v1/users/{t.ids['alice']}/block")
        assert r.status_code == 200, r.text
        await refused(t["alice"], 392, "USER_BLOCKED", pool_id=pool_id, target="brazil", amount="1")
        assert await t.balance("alice") == HUNDRED
        await harness.http.post(f"/v1/users/{t.ids['alice']}/unblock")
        await t.bet("alice", pool_id, "brazil", "1")


# -- 393 distribution, 387-390 listings -------------------------------------------------


async def test_distribution_shows_own_bets_and_whole_pool_odds(harness: Harness) -> None:
    async with table(harness, "alice", "bob", "carol") as t:
        pool_id = await t.pool(takeout="0.1")
        bets = {
            name: await t.bet(name, pool_id, target, amount)
            for name, target, amount in (
                ("alice", "brazil", "1"),
                ("bob", "brazil", "2"),
                ("carol", "argentina", "1"),
            )
        }
        # T = 4, N = 4 - floor(0.4) = 3.6; one more unit: T' = 5, N' = 5 - 0.5 = 4.5
        odds = {
            "brazil": {
                "amount_total": D("3"),
                "backing_people": 2,
                "multiplier": D("1.2"),
                "to_win_if_backed": D("1.125"),
            },  # 3.6/3, 4.5/4
            "argentina": {
                "amount_total": D("1"),
                "backing_people": 1,
                "multiplier": D("3.6"),
                "to_win_if_backed": D("2.25"),
            },  # 3.6/1, 4.5/2
            "none": {
                "amount_total": D("0"),
                "backing_people": 0,
                "multiplier": D("1"),
                "to_win_if_backed": D("4.5"),
            },  # empty; 4.5/1
        }

        def bet_ids(distribution: dict[str, Any]) -> dict[str, set[str]]:
            return {target: set(row["bets"]) for target, row in distribution.items()}

        mine = await t["alice"].call(393, 360, pool_id=pool_id)
        assert mine["pool_id"] == pool_id and mine["target_level"] == 1
        assert aggregates(mine["distribution"]) == odds
        assert bet_ids(mine["distribution"]) == {
            "brazil": {bets["alice"]["bet_id"]},
            "argentina": set(),
            "none": set(),
        }
        row = mine["distribution"]["brazil"]["bets"][bets["alice"]["bet_id"]]
        assert row["amount"] == D("1") and row["user_id"] == t.ids["alice"]
        assert abs(row["placed_at"] - t.now) < 5_000
        assert mine["distribution"]["brazil"]["display_name"] == "Brazil"

        everything = await t.admin.call(393, 360, pool_id=pool_id)
        assert bet_ids(everything["distribution"]) == {
            "brazil": {bets["alice"]["bet_id"], bets["bob"]["bet_id"]},
            "argentina": {bets["carol"]["bet_id"]},
            "none": set(),
        }
        assert aggregates(everything["distribution"]) == odds
        await refused(t["alice"], 393, "NOT_FOUND", pool_id=str(uuid.uuid4()))


async def test_listings_387_to_390_per_user(harness: Harness) -> None:
    async with table(harness, "alice", "bob") as t:
        goals = await t.pool()
        offsides = await t.pool(description="Next offside", action="offside")
        alice_bet = await t.bet("alice", goals, "brazil", "20")
        bob_bet = await t.bet("bob", goals, "argentina", "30")

        async def listing(who: WsClient, op: int, res: int) -> dict[str, Any]:
            reply = await who.call(op, res, game_id=t.game_id)
            assert reply["game_id"] == t.game_id
            return reply["pools_list"]

        everything = await listing(t["alice"], 387, 3535)
        assert everything.keys() == {goals, offsides}
        entry = everything[goals]
        assert (
            entry["pool_id"],
            entry["description"],
            entry["type"],
            entry["action_id"],
            entry["money_at_stake"],
            entry["people_involved"],
            entry["target_level"],
        ) == (goals, "Next goal by team", 1, "goal", D("50"), 2, 1)
        assert entry["distributions"]["brazil"]["bets"].keys() == {alice_bet["bet_id"]}
        assert entry["distributions"]["argentina"]["bets"] == {}
        assert entry["distributions"]["argentina"]["amount_total"] == D("30")
        admin_view = (await listing(t.admin, 387, 3535))[goals]["distributions"]
        assert admin_view["argentina"]["bets"].keys() == {bob_bet["bet_id"]}

        assert (await listing(t["alice"], 388, 353)).keys() == {offsides}
        running = await listing(t["alice"], 389, 354)
        assert running.keys() == {goals}
        assert running[goals]["user_backed"] == {"brazil": D("20")}
        assert await listing(t["alice"], 390, 355) == {}

        await t.admin.call(396, 362, pool_id=goals, target="brazil")
        assert (await listing(t["alice"], 387, 3535)).keys() == {offsides}
        assert await listing(t["alice"], 389, 354) == {}
        for name, backed, winnings in (
            ("alice", {"brazil": D("20")}, D("50")),
            ("bob", {"argentina": D("30")}, D("0")),
        ):
            resolved = await listing(t[name], 390, 355)
            assert resolved.keys() == {goals}
            entry = resolved[goals]
            assert entry["winning_target"] == "brazil"
            assert entry["total_winnings"] == winnings
            assert entry["user_backed"] == backed
            assert isinstance(entry["resolved_at"], int)
        await refused(t["alice"], 387, "NOT_FOUND", game_id=str(uuid.uuid4()))


# -- 397 / 398 / 3975 / 3985 ------------------------------------------------------------


async def test_block_and_allow_a_pool_now_and_later(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        pool_id = await t.pool()
        blocked = await t.admin.call(397, 368, pool_id=pool_id, block_at="")
        assert blocked["pool_id"] == pool_id and abs(blocked["blocked_at"] - t.now) < 5_000
        assert (await expect_pool(t["alice"], 368, pool_id))["blocked_at"] == blocked["blocked_at"]
        allowed = await t.admin.call(398, 369, pool_id=pool_id)
        assert (await expect_pool(t["alice"], 369, pool_id))["allowed_at"] == allowed["allowed_at"]

        at = t.now + 300
        scheduled = await t.admin.call(397, 368, pool_id=pool_id, block_at=at)
        assert (scheduled["pool_id"], scheduled["blocked_at"]) == (pool_id, at)
        await t.bet("alice", pool_id, "brazil", "1")  # not yet
        fired = await expect_pool(t["alice"], 368, pool_id)
        assert fired["blocked_at"] >= at
        await refused(t["alice"], 392, "POOL_BLOCKED", pool_id=pool_id, target="brazil", amount="1")

        at = t.now + 300
        scheduled = await t.admin.call(398, 369, pool_id=pool_id, allow_at=at)
        assert scheduled["allowed_at"] == at
        await refused(t["alice"], 392, "POOL_BLOCKED", pool_id=pool_id, target="brazil", amount="1")
        assert (await expect_pool(t["alice"], 369, pool_id))["allowed_at"] >= at
        await t.bet("alice", pool_id, "brazil", "1")


async def test_block_and_allow_every_pool_of_an_action(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        backed = {await t.pool(): "brazil", await t.pool(**PLAYERS): "brazil:7"}
        goals = set(backed)
        offsides = await t.pool(description="Next offside", action="offside")
        await t.drain_all()

        async def per_pool(res: int, key: str) -> dict[str, Any]:
            got = {}
            while set(got) != goals:
                message = await t["alice"].expect(res)
                got[message["pool_id"]] = message[key]
            return got

        reply = await t.admin.call(3975, 370, game_id=t.game_id, action="Goal")
        assert (reply["game_id"], reply["action"]) == (t.game_id, "goal")
        assert (await t["alice"].expect(370))["blocked_at"] == reply["blocked_at"]
        await per_pool(368, "blocked_at")
        for pool_id, target in backed.items():
            await refused(
                t["alice"], 392, "POOL_BLOCKED", pool_id=pool_id, target=target, amount="1"
            )
        await t.bet("alice", offsides, "brazil", "1")  # another action: untouched

        reply = await t.admin.call(3985, 371, game_id=t.game_id, action="goal")
        assert (await t["alice"].expect(371))["allowed_at"] == reply["allowed_at"]
        await per_pool(369, "allowed_at")

        at = t.now + 300
        reply = await t.admin.call(3975, 370, game_id=t.game_id, action="goal", block_at=at)
        assert reply["blocked_at"] == at
        fired = await per_pool(368, "blocked_at")
        assert all(when >= at for when in fired.values())
        reply = await t.admin.call(
            3985, 371, game_id=t.game_id, action="goal", allow_at=t.now + 300
        )
        await per_pool(369, "allowed_at")
        await refused(t.admin, 3975, "INVALID_PARAMETER", game_id=t.game_id, action="corner")


# -- 396 / 399 / 395 resolution ---------------------------------------------------------


async def test_binary_pool_resolves_only_by_hand(harness: Harness) -> None:
    async with table(harness, "alice", "bob") as t:
        pool_id = await t.pool(**BINARY)
        announced = await expect_pool(t["alice"], 352, pool_id)
        assert announced["targets"].keys() == {"yes", "no"}
        await t.bet("alice", pool_id, "yes", "10")
        await t.bet("bob", pool_id, "no", "30")
        event = await t.admin.call(
            395, 366, game_id=t.game_id, action_id="goal", target_id="brazil:7"
        )
        assert event["res"] == 366
        await trio.sleep(0.05)
        assert [m for m in await t["alice"].drain() if m["res"] == 362] == []
        await refused(t.admin, 396, "INVALID_TARGET", pool_id=pool_id, target="maybe")
        await t.drain_all()

        result = await t.admin.call(396, 362, pool_id=pool_id, target="Yes")
        assert (result["pool_id"], result["game_id"], result["winning_target"]) == (
            pool_id,
            t.game_id,
            "yes",
        )
        assert result["winners"] == {t.uid("alice"): D("40")}
        assert result["losers"] == [t.ids["bob"]]
        assert (result["invalidated_bettors"], result["is_money_return"]) == ([], False)
        broadcast = await expect_pool(t["bob"], 362, pool_id)
        assert {k: v for k, v in broadcast.items() if k != "response_header"} == {
            k: v for k, v in result.items() if k != "response_header"
        }
        for name, current in (("alice", D("130")), ("bob", D("70"))):
            assert (await t[name].expect(815))["current_balance"] == current
        await refused(t.admin, 396, "POOL_CLOSED", pool_id=pool_id, target="no")
        await refused(t.admin, 397, "POOL_CLOSED", pool_id=pool_id)
        assert (await t.balance("alice"))["current"] == D("130")


async def test_void_refunds_everyone(harness: Harness) -> None:
    async with table(harness, "alice", "bob") as t:
        pool_id = await t.pool(takeout="0.1")
        await t.bet("alice", pool_id, "brazil", "10")
        await t.bet("bob", pool_id, "argentina", "20.55")
        await t.drain_all()
        result = await t.admin.call(399, 362, pool_id=pool_id)
        assert result["is_money_return"] is True
        assert (result["winners"], result["losers"], result["invalidated_bettors"]) == ({}, [], [])
        for name in ("alice", "bob"):
            assert (await expect_pool(t[name], 362, pool_id))["is_money_return"] is True
            assert (await t[name].expect(815))["current_balance"] == D("100")
            assert await t.balance(name) == HUNDRED
        await refused(t.admin, 399, "POOL_CLOSED", pool_id=pool_id)


async def test_events_resolve_team_and_player_pools_on_the_event_path(harness: Harness) -> None:
    async with table(harness, "alice", "bob") as t:
        teams = await t.pool()
        players = await t.pool(**PLAYERS)
        binary = await t.pool(**BINARY)
        offsides = await t.pool(description="Next offside", action="offside")
        await t.bet("alice", teams, "argentina", "10")
        await t.bet("bob", teams, "brazil", "10")
        await t.bet("alice", players, "argentina:1", "5")
        await t.bet("bob", players, "brazil:7", "5")
        await t.bet("bob", binary, "no", "5")
        for target in ("argentina", "none", "uruguay"):  # a team with players, none, unknown
            await refused(
                t.admin,
                395,
                "INVALID_TARGET",
                game_id=t.game_id,
                action_id="goal",
                target_id=target,
            )
        await refused(
            t.admin,
            395,
            "INVALID_PARAMETER",
            game_id=t.game_id,
            action_id="corner",
            target_id="argentina:1",
        )
        await t.drain_all()

        event = await t.admin.call(
            395, 366, game_id=t.game_id, action_id="Goal", target_id="Argentina:1"
        )
        assert (event["action_id"], event["target_id"], event["game_id"]) == (
            "goal",
            "argentina:1",
            t.game_id,
        )
        assert abs(event["happened_at"] - t.now) < 5_000
        results: dict[str, dict[str, Any]] = {}
        while len(results) < 2:  # the two pools settle concurrently, in either order
            m = await t["bob"].expect(362)
            results[m["pool_id"]] = m
        assert results[teams]["winning_target"] == "argentina"
        assert results[teams]["winners"] == {t.uid("alice"): D("20")}
        assert results[players]["winning_target"] == "argentina:1"
        assert results[players]["winners"] == {t.uid("alice"): D("10")}
        assert all(r["losers"] == [t.ids["bob"]] for r in results.values())
        # the binary pool and the other action's pool stay open
        still_open = await t["bob"].call(387, 3535, game_id=t.game_id)
        assert still_open["pools_list"].keys() == {binary, offsides}
        # an 815 after each wallet commit that paid the player (the two settlements may
        # share one commit), the last with both paid
        pushed = [(await t["alice"].expect(815))["current_balance"]]
        while pushed[-1] != D("115"):
            pushed.append((await t["alice"].expect(815))["current_balance"])
        assert set(pushed) <= {D("105"), D("110"), D("115")}
        assert (await t.balance("bob")) == {
            "current": D("85"),
            "available": D("80"),
            "exposure": D("5"),
        }


async def test_bets_placed_after_the_event_are_invalidated_and_refunded(harness: Harness) -> None:
    async with table(harness, "alice", "bob", "carol") as t:
        pool_id = await t.pool(takeout="0.1")
        await t.bet("alice", pool_id, "brazil", "10")
        await t.bet("carol", pool_id, "argentina", "30")
        await trio.sleep(0.01)
        happened_at = t.now
        await trio.sleep(0.01)
        await t.bet("bob", pool_id, "brazil", "20")  # after the goal, before it is registered
        await t.drain_all()
        await t.admin.call(
            395,
            366,
            game_id=t.game_id,
            action_id="goal",
            target_id="brazil:7",
            happened_at=happened_at,
        )
        result = await expect_pool(t["alice"], 362, pool_id)
        # valid T = 40, N = 36, W = 10: alice gets 36.00; bob's 20 comes back
        assert result["winners"] == {t.uid("alice"): D("36")}
        assert result["losers"] == [t.ids["carol"]]
        assert result["invalidated_bettors"] == [t.ids["bob"]]
        assert result["is_money_return"] is False
        assert result["refunds"] == {t.uid("bob"): D("20")}
        for name, current in (("alice", D("126")), ("bob", D("100")), ("carol", D("70"))):
            assert (await t[name].expect(815))["current_balance"] == current
            assert await t.balance(name) == {
                "current": current,
                "available": current,
                "exposure": D("0"),
            }


async def test_only_game_admins_may_run_admin_ops(harness: Harness) -> None:
    async with table(harness, "alice") as t:
        pool_id = await t.pool()
        game, pool = {"game_id": t.game_id}, {"pool_id": pool_id}
        for op, fields in (
            (385, {**game, **TEAMS}),
            (395, {**game, "action_id": "goal", "target_id": "brazil:7"}),
            (396, {**pool, "target": "brazil"}),
            (397, pool),
            (398, pool),
            (399, pool),
            (3975, {**game, "action": "goal"}),
            (3985, {**game, "action": "goal"}),
        ):
            await refused(t["alice"], op, "NOT_AUTHORIZED", **fields)
        listed = await t["alice"].call(387, 3535, game_id=t.game_id)
        assert listed["pools_list"].keys() == {pool_id}
        assert listed["pools_list"][pool_id]["blocked"] is False
        await t.bet("alice", pool_id, "brazil", "1")


# -- 360 coalescing ---------------------------------------------------------------------


async def test_distribution_broadcasts_are_coalesced(harness: Harness) -> None:
    async with table(harness, "alice", "bob", "carol", "dave") as t:
        pool_id = await t.pool()
        await t.drain_all()
        backs = {"alice": "brazil", "bob": "argentina", "carol": "none"}
        sent: dict[str, list[str]] = {name: [] for name in backs}
        for i in range(8):
            for name, target in backs.items():
                request_id = await t[name].send(
                    392, pool_id=pool_id, target=target, amount=f"1.{i}5"
                )
                sent[name].append(request_id)
        bet_ids = []
        for name, request_ids in sent.items():
            for request_id in request_ids:
                placed = await t[name].expect((356, 666), request_id=request_id)
                assert placed["res"] == 356, placed
                bet_ids.append(placed["bet_id"])
        broadcasts: list[dict] = []
        seen: Counter[str] = Counter()
        while seen.keys() != set(bet_ids):  # wait for the 360s that carry every bet
            broadcasts.append(await t["dave"].expect(360))
            seen.update(b for row in broadcasts[-1]["distribution"].values() for b in row["bets"])
        assert all(m["pool_id"] == pool_id for m in broadcasts)
        assert len(broadcasts) < len(bet_ids)
        assert seen == Counter(bet_ids)  # every bet in exactly one 360
        final = await t.admin.call(393, 360, pool_id=pool_id)
        assert aggregates(broadcasts[-1]["distribution"]) == aggregates(final["distribution"])
        assert final["distribution"]["brazil"]["amount_total"] == sum(
            D(f"1.{i}5") for i in range(8)
        )
