"""The invariants every reliability scenario checks, read from the database and from the
actors' memory: the books balance, every pool's escrow holds exactly its active stakes,
a finished pool was paid out once and holds nothing, the wallet's memory is the
ledger's sum, and an open pool actor's bets are its active rows. Each returns a list of
problems (empty when all holds) so a scenario can count what it checked and say what
broke."""

from __future__ import annotations

from typing import Any

from actors.pool import GetDistribution
from actors.wallet import GetBalances
from domain.pool import BetStatus, PoolStatus
from tests.conftest import ledger_problems


def _read_books(db: Any) -> dict[str, Any]:
    escrow = {
        r["account"].removeprefix("escrow:"): r["total"]
        for r in db.rows(
            "SELECT account, SUM(amount) AS total FROM ledger "
            "WHERE account LIKE 'escrow:%' GROUP BY account"
        )
    }
    active = {
        r["pool_id"]: r["total"]
        for r in db.rows(
            "SELECT pool_id, SUM(amount) AS total FROM bets WHERE status = ? GROUP BY pool_id",
            (BetStatus.ACTIVE.value,),
        )
    }
    pools = {r["id"]: r["status"] for r in db.rows("SELECT id, status FROM pools")}
    settled = {
        r["id"].removeprefix("settle:")
        for r in db.rows("SELECT id FROM transactions WHERE id LIKE 'settle:%'")
    }
    return {"escrow": escrow, "active": active, "pools": pools, "settled": settled}


async def pool_problems(services: Any) -> list[str]:
    """Escrow equals active stakes; a pool is finished exactly when it was settled."""
    books = await services.storage.read(_read_books)
    problems = []
    for pool_id, status in books["pools"].items():
        held = books["escrow"].get(pool_id, 0)
        staked = books["active"].get(pool_id, 0)
        if held != staked:
            problems.append(f"pool {pool_id}: escrow {held} but active stakes {staked}")
        finished = status != PoolStatus.OPEN.value
        if finished != (pool_id in books["settled"]):
            problems.append(f"pool {pool_id}: status {status}, settle transaction: {not finished}")
    return problems


async def wallet_problems(services: Any, user_ids: list[int]) -> list[str]:
    """The wallet actor's balances equal the ledger's sums (memory agrees with the DB)."""

    def read(db: Any) -> dict[int, int]:
        return {
            int(r["account"].removeprefix("wallet:")): r["total"]
            for r in db.rows(
                "SELECT account, SUM(amount) AS total FROM ledger "
                "WHERE account LIKE 'wallet:%' AND currency = 'EUR' GROUP BY account"
            )
        }

    stored = await services.storage.read(read)
    problems = []
    for user_id in user_ids:
        balances = await services.ask_wallet(GetBalances(user_id))
        available = balances["EUR"].available if "EUR" in balances else 0
        if available != stored.get(user_id, 0):
            problems.append(
                f"user {user_id}: wallet says {available}, ledger {stored.get(user_id)}"
            )
    return problems


async def all_problems(services: Any, user_ids: list[int]) -> list[str]:
    """Every invariant at once: the audit, the pools, the wallet's memory."""
    return [
        *await ledger_problems(services),
        *await pool_problems(services),
        *await wallet_problems(services, user_ids),
    ]


async def pool_memory_problems(services: Any, pool_ids: list[str]) -> list[str]:
    """Each open pool actor's bets are exactly the pool's active bet rows (memory agrees
    with the database: a bet stored but unknown to its pool would never be settled)."""

    def read(db: Any) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {pool_id: set() for pool_id in pool_ids}
        for row in db.rows(
            "SELECT id, pool_id FROM bets WHERE status = ?", (BetStatus.ACTIVE.value,)
        ):
            found.setdefault(row["pool_id"], set()).add(row["id"])
        return found

    stored = await services.storage.read(read)
    problems = []
    for pool_id in pool_ids:
        _, box = await services.games.pool(pool_id)
        shown = await box.ask(GetDistribution(0, True))
        held = {bet_id for target in shown.distribution.values() for bet_id in target["bets"]}
        if held != stored[pool_id]:
            problems.append(
                f"pool {pool_id}: memory has {len(held)} bets, storage {len(stored[pool_id])}"
            )
    return problems
