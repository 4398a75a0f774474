"""Chaos over the real websocket: pool and wallet actors are cancelled again and again
while players bet. Every request is answered, no confirmed bet is lost, the books
balance, and the pool still resolves correctly afterwards."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from typing import Any

import trio
import trio.lowlevel

from tests.conftest import Harness, setup_game

PLAYERS = 4
BETS_EACH = 20
DEPOSIT = Decimal("100")
STAKE = Decimal("0.5")
KILL_EVERY = 3  # the first bettor kills an actor after every third of its bets
#: What a request may honestly answer while the actor behind it is being killed.
CHAOS_ERRORS = {"ACTOR_RESTARTED", "REQUEST_TIMED_OUT", "UNAVAILABLE"}


async def test_bets_survive_actors_being_cancelled_mid_request(harness: Harness) -> None:
    harness.services.settings.request_timeout = 2  # clients wait 5 s: always answered first
    admin = await harness.user("admin", roles=["developer"])
    players = [await harness.user(f"p{i}", deposit=str(DEPOSIT)) for i in range(PLAYERS)]
    confirmed: dict[str, tuple[int, Decimal]] = {}  # bet id -> (user id, stake)
    refused: list[str] = []
    async with harness.connect(admin) as aws:
        game_id = await setup_game(aws)
        pool_id = (
            await aws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
        )["pool_id"]

        victims = itertools.cycle([f"pool:{pool_id}", "wallet"])
        rng = random.Random(7)

        async def bettor(n: int, user: dict[str, Any], target: str) -> None:
            async with harness.connect(user) as ws:
                for i in range(BETS_EACH):
                    reply = await ws.call(392, pool_id=pool_id, target=target, amount=str(STAKE))
                    if reply["res"] == 356:
                        confirmed[reply["bet_id"]] = (user["user_id"], STAKE)
                    else:
                        assert reply["error_code"] in CHAOS_ERRORS, reply
                        refused.append(reply["error_code"])
                    # The chaos rides on the first bettor's progress, not on the clock, so
                    # the kills land while the others bet however busy the machine is,
                    # and every kill is followed by more bets.
                    if n == 0 and i % KILL_EVERY == 0 and i < BETS_EACH - 1:
                        for _ in range(rng.randint(0, 3)):
                            await (
                                trio.lowlevel.checkpoint()
                            )  # let the others' requests get in flight
                        harness.services.supervisor.kill(next(victims))

        async with trio.open_nursery() as bettors:
            for n, user in enumerate(players):
                bettors.start_soon(bettor, n, user, "argentina" if n % 2 else "brazil")

        assert len(confirmed) + len(refused) == PLAYERS * BETS_EACH  # everyone answered
        assert confirmed
        assert harness.services.supervisor.restarts(f"pool:{pool_id}") > 0
        assert harness.services.supervisor.restarts("wallet") > 0
        dist = await aws.call(393, 360, pool_id=pool_id)
        stored = {
            bet_id: bet
            for target in dist["distribution"].values()
            for bet_id, bet in target["bets"].items()
        }
        assert set(confirmed) <= set(stored)  # "may or may not" ones can be there too
        for user in players:
            balance = (await harness.http.get(f"/v1/users/{user['user_id']}/balances")).json()
            mine = sum(
                Decimal(str(b["amount"]))
                for b in stored.values()
                if b["user_id"] == user["user_id"]
            )
            assert Decimal(str(balance["EUR"]["exposure"])) == mine
            assert Decimal(str(balance["EUR"]["current"])) == DEPOSIT

        await aws.call(395, 366, game_id=game_id, action_id="goal", target_id="brazil:7")
        result = await aws.expect(362)
        total = STAKE * len(stored)
        winning_bets = len(dist["distribution"]["brazil"]["bets"])
        breakage = total - sum(result["winners"].values())
        assert 0 <= breakage < Decimal("0.01") * max(winning_bets, 1)  # floors, per bet
    assert await harness.audit() == []
