"""The cluster as real processes (issue 22 §5): three ``tote serve`` nodes on a throwaway
PostgreSQL and Redis (tests/cluster_nodes.py), clients on every node, and the faults:
the owner killed or stopped, Redis killed, PostgreSQL restarted, a betslip through an
edge while the owner dies. Each scenario ends with the checker
(tests/reliability/cluster_checker.py) over its history and the database, the audit of
the books included. Waits are for events or polled states under generous deadlines; the
lease is short (5 s; 30 s in (a), which has no failover) so failovers take seconds."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from cluster.node import EXIT_LEASE_LOST
from tests.cluster_nodes import OWNER_PATIENCE, ClusterNode, running_cluster
from tests.postgres import ThrowawayPostgres
from tests.redis import ThrowawayRedis
from tests.reliability import load
from tests.reliability.cluster_checker import History, Outcome, Verdict, check
from tests.reliability.cluster_round import (
    NODE_FLAGS,
    Fault,
    Scene,
    clients_of,
    failover_round,
    kill_the_owner,
    read_stored,
    resolve_and_hear,
    scene,
    set_table,
)
from tests.test_crash_recovery import ROOT, reap

#: No scenario may take longer than this (each takes seconds to tens of seconds).
SCENARIO_SECONDS = 120
#: A node's line in what ``python -m tests.cluster_nodes`` prints.
NODE_LINE = re.compile(rb"(node-\w): ws (\d+)  http (\d+)  \((owner|edge)\)")


async def test_a_bet_on_an_edge_is_answered_there_and_broadcast_on_every_node(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """(a) A bet placed on an edge for a game the owner runs: its 356 on the edge, its
    360 to a subscriber on each of the three nodes; then the pool resolved, its 362 on
    each."""
    history = History()
    with trio.fail_after(SCENARIO_SECONDS):
        async with (
            # a long lease: no failover here, and none wanted on a busy machine
            running_cluster(
                postgres_url, redis_url, tmp_path, lease_seconds=30.0, extra=NODE_FLAGS
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


def sound(verdict: Verdict, what: str) -> None:
    """The checker found nothing; the figures printed (``pytest -s``)."""
    print(f"{what}: {verdict.line()}")
    assert verdict.problems == [], verdict.problems
    assert verdict.lost == verdict.stale_writes == 0


async def stop_the_owner_past_its_lease(at: Scene) -> None:
    """SIGSTOP of the owner until another node took over and served a bet, then SIGCONT:
    the old owner must end (75) and its supervisor start it again."""
    owner, epoch = await at.cluster.wait_for_owner()
    stopped = owner.proc
    owner.stop()
    at.betting.killed_at = trio.current_time()
    await at.cluster.wait_for_owner(after_epoch=epoch)
    await at.betting.until_failed_over()
    owner.cont()
    with trio.fail_after(OWNER_PATIENCE):
        await owner.started_after(stopped)


async def test_sigstop_of_the_owner_past_its_lease_then_sigcont(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """(c) The stopped owner's lease runs out, another node takes the games and serves;
    continued, the old owner exits 75 (its lease lost, or its first write fenced) and
    never wrote with its stale epoch after the new owner's first write (fence log)."""
    with trio.fail_after(SCENARIO_SECONDS):
        async with scene(3, postgres_url, redis_url, tmp_path) as at:
            first_owner, _ = await at.cluster.wait_for_owner()
            await at.bet_through([stop_the_owner_past_its_lease])
            verdict = await at.verdict()
    # the stopped owner exited 75; on a starved machine a later owner may have lost its
    # lease too (a renewal late by a quarter lease), and exited 75 as well
    assert (first_owner.node_id, EXIT_LEASE_LOST) in at.exits
    assert all(status == EXIT_LEASE_LOST for _, status in at.exits)
    assert len(verdict.failovers) == 1  # a new owner took a bet sent after the stop
    sound(verdict, "SIGSTOP of the owner")


def kill_redis(redis: ThrowawayRedis) -> Fault:
    """``kill -9`` of Redis (its data gone); once a bet was not confirmed for it, Redis
    started again, empty; then a bet through each node confirmed."""

    async def fault(at: Scene) -> None:
        redis.kill()
        await at.betting.until_unconfirmed(at.betting.unconfirmed + 1)
        await trio.to_thread.run_sync(redis.restart)
        await at.betting.until_each_confirmed_after(trio.current_time(), at.table.players)
        # bets still flow: a subscriber closed with 1012 joins again and hears one
        with trio.fail_after(OWNER_PATIENCE):
            for watcher in at.table.watchers:
                while not watcher.record.received:
                    await watcher.arrived.wait()

    return fault


async def test_kill_9_of_redis(postgres_url: str, redis: ThrowawayRedis, tmp_path: Path) -> None:
    """(d) Redis killed and started again empty: every node serves bets again, the
    subscribers resume (closed with 1012 and joined again with since_seq, or not closed),
    seq never goes back, nothing confirmed is lost."""
    with trio.fail_after(SCENARIO_SECONDS):
        async with scene(4, postgres_url, redis.url, tmp_path) as at:
            await at.bet_through([kill_redis(redis)])
            verdict = await at.verdict()
    assert all(status == EXIT_LEASE_LOST for _, status in at.exits)  # none crashed
    assert all(w.record.received for w in at.table.watchers)
    sound(verdict, "kill -9 of Redis")


def restart_postgresql(postgres: ThrowawayPostgres) -> Fault:
    """``pg_ctl restart -m immediate``; then a bet through each node confirmed (an owner
    that lost its lease meanwhile exited 75 and was started again)."""

    async def fault(at: Scene) -> None:
        await trio.to_thread.run_sync(postgres.restart_immediately)
        at.betting.killed_at = trio.current_time()
        await at.cluster.wait_for_owner()
        await at.betting.until_each_confirmed_after(trio.current_time(), at.table.players)

    return fault


async def test_a_restart_of_postgresql(
    postgres: ThrowawayPostgres, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """(e) PostgreSQL restarted (every connection lost, crash recovery): the cluster
    serves again, nothing confirmed is lost, the books balance."""
    with trio.fail_after(SCENARIO_SECONDS):
        async with scene(5, postgres_url, redis_url, tmp_path) as at:
            await at.bet_through([restart_postgresql(postgres)])
            verdict = await at.verdict()
    assert all(status == EXIT_LEASE_LOST for _, status in at.exits)
    sound(verdict, f"restart of PostgreSQL (exits 75: {len(at.exits)})")


async def slipper(
    http: httpx.AsyncClient, user: dict[str, Any], game_id: str, sides: dict[str, str],
    slips: load.History, stop: trio.Event,
) -> list[str]:  # fmt: skip
    """Betslips (one bet on each pool) one after the other until ``stop``: the keys of
    those not answered 200."""
    unplaced = []
    while not stop.is_set():
        key, r = await load.send_slip(http, slips, load.slip_body(user, game_id, sides))
        if r.status_code != 200:
            unplaced.append(key)
    return unplaced


async def test_a_betslip_through_an_edge_while_the_owner_is_killed(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """(f) Slips placed through an edge while the owner is killed: each slip is all or
    none; a slip answered 5xx, sent again with its key after the takeover, is placed
    whole; every placed slip's key answers byte for byte what it answered."""
    slips, stop = load.History(), trio.Event()
    with trio.fail_after(SCENARIO_SECONDS):
        async with scene(6, postgres_url, redis_url, tmp_path) as at:
            owner, _ = await at.cluster.wait_for_owner()
            edge: ClusterNode = at.cluster.edges(owner)[0]
            http = at.clients[edge].http
            user = await at.clients[edge].user(deposit="1000")
            sides = dict.fromkeys(at.table.pool_ids, "argentina")
            async with trio.open_nursery() as nursery:
                unplaced: list[str] = []

                async def slipping() -> None:
                    unplaced.extend(await slipper(http, user, at.table.game_id, sides, slips, stop))

                nursery.start_soon(slipping)
                await at.bet_through([kill_the_owner])
                stop.set()
            for key in unplaced:
                _, r = await load.send_slip(http, slips, slips.sent_slips[key], key)
                assert r.status_code == 200, (key, r.status_code, r.text)
            differ = await load.replayed_differently(http, slips)
            whole = await load.DatabaseAt(postgres_url).read(
                lambda db: load.slip_problems(db, slips)
            )
            verdict = await at.verdict()
    assert slips.slips and differ == 0 and whole == []
    sound(verdict, f"slips through an edge ({len(slips.slips)} placed, {len(unplaced)} retried)")


async def test_make_cluster_serves_three_nodes_until_sigterm(
    postgres: ThrowawayPostgres, redis: ThrowawayRedis, tmp_path: Path
) -> None:
    """``make cluster`` (``python -m tests.cluster_nodes``): three nodes, one the owner,
    each answering on its HTTP port, until SIGTERM stops it all (exit 0). (The fixtures
    are not used: they skip or fail this test the same way when PostgreSQL or Redis
    cannot run here.)"""
    with (tmp_path / "cluster.log").open("wb") as log:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tests.cluster_nodes"],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            start_new_session=True,  # its nodes share its process group
        )
    assert proc.stdout is not None
    try:
        printed = b""
        with trio.fail_after(SCENARIO_SECONDS):
            while b"Ctrl-C stops the cluster" not in printed:
                chunk = await proc.stdout.receive_some()
                assert chunk, (tmp_path / "cluster.log").read_text()
                printed += chunk
            nodes = NODE_LINE.findall(printed)
            async with httpx.AsyncClient() as http:
                for _, _, port, _ in nodes:
                    assert (await http.get(f"http://127.0.0.1:{int(port)}/healthz")).is_success
            proc.terminate()
            assert await proc.wait() == 0
    finally:
        with contextlib.suppress(ProcessLookupError):  # its nodes too, when it failed
            os.killpg(proc.pid, signal.SIGKILL)
        await reap(proc)
    assert sorted(name for name, *_ in nodes) == [b"node-a", b"node-b", b"node-c"]
    assert [role for *_, role in nodes].count(b"owner") == 1
