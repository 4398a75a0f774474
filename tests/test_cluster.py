"""The cluster as real processes (issue 22 §5): three ``tote serve`` nodes on a throwaway
PostgreSQL and Redis (tests/cluster_nodes.py), clients on every node, and the faults:
the owner killed or stopped, Redis killed, PostgreSQL restarted, a betslip through an
edge while the owner dies. Each scenario ends with the checker
(tests/reliability/cluster_checker.py) over its history and the database, the audit of
the books included. Waits are for events or polled states under generous deadlines; the
lease is short (2 s) so failovers take seconds."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.cluster_nodes import running_cluster
from tests.reliability.cluster_checker import History, Outcome, check
from tests.reliability.cluster_round import (
    LEASE_SECONDS,
    NODE_FLAGS,
    clients_of,
    failover_round,
    read_stored,
    resolve_and_hear,
    set_table,
)

#: No scenario may take longer than this (each takes seconds to tens of seconds).
SCENARIO_SECONDS = 120


async def test_a_bet_on_an_edge_is_answered_there_and_broadcast_on_every_node(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """(a) A bet placed on an edge for a game the owner runs: its 356 on the edge, its
    360 to a subscriber on each of the three nodes; then the pool resolved, its 362 on
    each."""
    history = History()
    with trio.fail_after(SCENARIO_SECONDS):
        async with (
            running_cluster(
                postgres_url, redis_url, tmp_path, lease_seconds=LEASE_SECONDS, extra=NODE_FLAGS
            ) as cluster,
            clients_of(cluster) as clients,
        ):
            owner, _ = await cluster.wait_for_owner()
            edge = cluster.edges(owner)[0]
            table = await set_table(clients, pools=1, players=1)
            pool_id, player = table.pool_ids[0], table.players[0]
            async with trio.open_nursery() as nursery:
                for watcher in table.watchers:
                    await nursery.start(watcher.run)
                async with clients.session(player, cluster.nodes.index(edge)) as ws:
                    placed = await ws.call(
                        392, 356, pool_id=pool_id, target="argentina", amount="0.07"
                    )
                assert placed["res"] == 356 and placed["pool_id"] == pool_id
                history.record((player["user_id"], pool_id, 7), Outcome.CONFIRMED)
                for watcher in table.watchers:
                    await watcher.wait_for(360, pool_id)
                await resolve_and_hear(table, history)
                nursery.cancel_scope.cancel()
            assert not await cluster.is_owner(edge) and await cluster.is_owner(owner)
            verdict = check(history, await read_stored(postgres_url, cluster, table.players))
    assert verdict.problems == [] and verdict.confirmed == 1
    assert {w.record.name.split("@")[1] for w in table.watchers} == {"node-a", "node-b", "node-c"}
    assert all(w.record.stayed and w.has(362, pool_id) for w in table.watchers)


async def test_kill_9_of_the_owner_mid_match(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """(b) Bettors on every node and a subscriber on each; the owner killed with
    ``kill -9`` after some bets: another node takes over and the game takes bets again;
    every confirmed bet is stored once, every refused one absent, every unknown one at
    most once; the pools settle once, seq never goes back, no stale write."""
    with trio.fail_after(SCENARIO_SECONDS):
        verdict = await failover_round(7, postgres_url, redis_url, tmp_path, kills=1)
    print(f"kill -9 of the owner: {verdict.line()}")
    assert verdict.problems == []
    assert verdict.lost == verdict.stale_writes == 0
    assert len(verdict.failovers) == 1 and verdict.confirmed > 5
