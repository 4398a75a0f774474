"""A bet delay in remote wallet mode (hostile review of issue 23): the delay is not built
there (decisions §11), and a pool that has one must not take bets at once as if it had
none, which let an in-play bet beat the news. A pool with a delay is refused at
creation, and a pool that has one from before (a server switched to remote mode)
refuses bets with INVALID_BET_DETAILS before the operator is asked to debit."""

from __future__ import annotations

from dataclasses import replace

from actors.pool import load_pool, pool_row
from storage.changes import Upsert
from tests.test_remote_wallet import bet, shop


async def test_a_pool_with_a_delay_is_refused_in_remote_wallet_mode() -> None:
    async with shop() as s:
        refused = await s.admin.call(
            385, game_id=s.game_id, action="goal", targets="argentina,brazil", bet_delay_ms=3000
        )
        assert (refused["error_code"], refused["parameter"]) == (
            "INVALID_PARAMETER",
            "bet_delay_ms",
        )
        # a game default reaches the game's pools: they are refused alike
        changed = await s.admin.call(373, game_id=s.game_id, bet_delay_ms=3000)
        assert changed["res"] != 666, changed
        refused = await s.admin.call(
            385, game_id=s.game_id, action="goal", targets="argentina,brazil"
        )
        assert refused["parameter"] == "bet_delay_ms", refused
        await s.check_money()


async def test_a_stored_pool_with_a_delay_takes_no_bet_in_remote_wallet_mode() -> None:
    async with shop() as s:
        services, pool_id = s.h.services, s.pool_id
        stored = await services.storage.read(lambda db: load_pool(db, pool_id))
        delayed = replace(stored.pool, rules=replace(stored.pool.rules, bet_delay_ms=3000))
        await services.storage.commit([Upsert("pools", pool_row(delayed))])
        services.supervisor.kill(f"pool:{pool_id}")  # restarted from what is stored
        reply = await bet(s, "alice", "brazil", "10")
        assert (reply["res"], reply["error_code"]) == (666, "INVALID_BET_DETAILS")
        assert s.operator.balances[s.players["alice"]["user_id"]] == 100  # never debited
        await s.check_money()
