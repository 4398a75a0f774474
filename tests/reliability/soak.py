"""Scenarios 1 and 2, actor chaos under load and crash recovery, as seeded rounds that
report figures. The suite runs one short round of each kind (test_soak.py); ``make soak
SEED=... MINUTES=...`` runs rounds of every kind in turn until the time is up and prints
what it did:

    python -m tests.reliability.soak --seed 7 --minutes 10
    TOTE_TEST_ENGINE=postgresql make soak   # every round on a throwaway PostgreSQL

The kinds: a chaos round (here: websocket bets and betslips while game, pool, wallet,
registry and storage actors are cancelled; the betslip desk is no actor, it runs in the
request's task), a crash round and a remote wallet crash round (tests/reliability/crash.py:
``tote serve`` killed with ``kill -9`` under bets, slips, deposits and events, the remote
one against the fake operator with its misbehaviours injected); on PostgreSQL also a
restart round (tests/reliability/restart.py: PostgreSQL restarted with ``pg_ctl restart
-m immediate`` under the same load while tote runs on); and a cluster round
(tests/reliability/cluster_round.py: three ``tote serve`` nodes on PostgreSQL and Redis,
bettors and subscribers on every node, the owner killed with ``kill -9`` at seeded
moments, the Jepsen-style checker over the history: ``lost``, ``stale_writes`` and the
failover seconds, p50 and max).

A round is fixed by its seed: which pools each client bets on, how much, and after how
many operations which actor is cancelled, when the process is killed and which fault the
operator serves all come from ``random.Random(seed)``, and ride on the clients' progress
rather than the clock, so a failing seed replays the same schedule. Shared pieces (figures,
history, plans, checks) are in tests/reliability/load.py."""

from __future__ import annotations

import argparse
import random
import shutil
import time
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import trio

from tests import postgres as engines
from tests.conftest import running_harness, setup_game
from tests.postgres import TestDatabases, default_engine, start_server
from tests.redis import start_server as start_redis
from tests.reliability.cluster_round import cluster_round
from tests.reliability.crash import crash_round
from tests.reliability.invariants import all_problems
from tests.reliability.load import (
    STAKE,
    Figures,
    History,
    bet_plan,
    choose_sides,
    open_pools,
    replayed_differently,
    send_slip,
    slip_body,
    slip_problems,
)
from tests.reliability.restart import restart_round

#: What a request may honestly answer while the actor behind it is being cancelled.
CHAOS_ERRORS = {"ACTOR_RESTARTED", "REQUEST_TIMED_OUT", "UNAVAILABLE"}
#: What a betslip may honestly answer then: the documented 5xx, not kept (docs/http.md):
#: 500 GENERAL_EXCEPTION and 503 REQUEST_TIMED_OUT; a retry with the key runs it again.
SLIP_CHAOS_STATUSES = {500, 503}
#: Retries of a slip answered 5xx during the chaos, once it is over.
SLIP_RETRIES = 5
#: How long the pools may take to announce their settlement once the event is in (a
#: settlement a slip raced is tried again after the request timeout).
SETTLE_SECONDS = 30


class Chaos:
    """Cancels a seeded-random actor after a seeded-random number of operations."""

    def __init__(self, rng: random.Random, services: Any, victims: list[str]) -> None:
        self.rng, self.services, self.victims = rng, services, victims
        self.countdown = rng.randint(1, 6)
        self.kills = 0

    def tick(self) -> None:
        self.countdown -= 1
        if self.countdown <= 0:
            self.services.supervisor.kill(self.rng.choice(self.victims))
            self.kills += 1
            self.countdown = self.rng.randint(1, 6)


async def chaos_round(
    seed: int, figures: Figures, *, players: int = 4, slippers: int = 2, bets: int = 15
) -> None:
    """Clients bet over the websocket and place betslips over HTTP across several pools
    while random actors (game, pools, wallet, registry, storage) are cancelled. Then:
    every request was answered, every confirmed bet is stored, every placed slip's bets
    are stored once and whole (a slip answered 5xx is retried with its key until placed),
    every key replays its answer byte for byte, every pool settles exactly once, and the
    books are clean."""
    rng = random.Random(seed)
    async with running_harness() as harness:
        harness.services.settings.request_timeout = 2  # clients wait 5 s: answered first
        admin = await harness.user("admin", roles=["developer"])
        users = [await harness.user(f"p{n}", deposit="1000") for n in range(players)]
        slipping = [await harness.user(f"s{n}", deposit="1000") for n in range(slippers)]
        history = History()
        retry: list[str] = []  # keys answered 5xx during the chaos
        async with harness.connect(admin) as aws:
            game_id = await setup_game(aws)
            pool_ids = await open_pools(aws, game_id, 3)
            victims = ["wallet", "registry", "storage", f"game:{game_id}"]
            chaos = Chaos(rng, harness.services, victims + [f"pool:{p}" for p in pool_ids])
            plans = [bet_plan(rng, choose_sides(rng, pool_ids), bets) for _ in users]
            slip_sides = [choose_sides(rng, rng.sample(pool_ids, 2)) for _ in slipping]

            async def bettor(user: dict[str, Any], plan: list[tuple[str, str]]) -> None:
                async with harness.connect(user) as ws:
                    for pool_id, target in plan:
                        reply = await ws.call(392, pool_id=pool_id, target=target, amount=STAKE)
                        figures.operations += 1
                        if reply["res"] == 356:
                            history.bets.add(reply["bet_id"])
                            figures.confirmed += 1
                        else:
                            assert reply["error_code"] in CHAOS_ERRORS, reply
                            figures.refused += 1
                        chaos.tick()

            async def slipper(user: dict[str, Any], sides: dict[str, str]) -> None:
                for _ in range(bets // 2):
                    key, r = await send_slip(harness.http, history, slip_body(user, game_id, sides))
                    figures.operations += 1
                    if r.status_code == 200:
                        figures.confirmed += 1
                    else:
                        assert r.status_code in SLIP_CHAOS_STATUSES, (r.status_code, r.text)
                        figures.refused += 1
                        retry.append(key)
                    chaos.tick()

            async with trio.open_nursery() as nursery:
                for user, plan in zip(users, plans, strict=True):
                    nursery.start_soon(bettor, user, plan)
                for user, sides in zip(slipping, slip_sides, strict=True):
                    nursery.start_soon(slipper, user, sides)
            figures.kills += chaos.kills
            supervisor = harness.services.supervisor
            figures.restarts += sum(supervisor.restarts(name) for name in set(chaos.victims))
            figures.lost += await _retry_until_placed(harness.http, history, retry)
            stored = await harness.services.storage.read(
                lambda db: {r["id"] for r in db.rows("SELECT id FROM bets")}
            )
            figures.lost += len(history.bets - stored)
            figures.lost += await replayed_differently(harness.http, history)
            await aws.call(395, 366, game_id=game_id, action_id="goal", target_id="argentina:1")
            # every pool is resolved; the admin hears each 362 as the caller and as a
            # subscriber, and a pool whose settlement a slip raced settles on a retry
            announced: set[str] = set()
            while announced != set(pool_ids):
                announced.add((await aws.expect(362, timeout=SETTLE_SECONDS))["pool_id"])
        problems = await all_problems(harness.services, [u["user_id"] for u in users])
        problems += await harness.services.storage.read(lambda db: slip_problems(db, history))
        settled = await harness.services.storage.read(
            lambda db: db.scalar("SELECT COUNT(*) FROM transactions WHERE id LIKE 'settle:%'")
        )
        assert settled == len(pool_ids), settled
        figures.invariants_checked += 1
        assert problems == [] and figures.lost == 0, (seed, problems, figures)
    figures.rounds += 1


async def _retry_until_placed(http: Any, history: History, keys: list[str]) -> int:
    """Send every slip answered 5xx again with its key, now that the chaos is over: each
    must end placed. How many did not."""
    unplaced = 0
    for key in keys:
        for _ in range(SLIP_RETRIES):
            _, r = await send_slip(http, history, history.sent_slips[key], key)
            if r.status_code == 200:
                break
            assert r.status_code in SLIP_CHAOS_STATUSES, (r.status_code, r.text)
        unplaced += key not in history.slips
    return unplaced


async def _long_chaos(seed: int, workdir: Path, figures: Figures) -> None:
    await chaos_round(seed, figures, players=8, slippers=3, bets=40)


async def _long_crash(seed: int, workdir: Path, figures: Figures) -> None:
    await crash_round(seed, workdir, figures, kills=3)


async def _long_remote(seed: int, workdir: Path, figures: Figures) -> None:
    await crash_round(seed, workdir, figures, kills=3, remote=True)


async def _long_pgrestart(seed: int, workdir: Path, figures: Figures) -> None:
    await restart_round(seed, workdir, figures, restarts=3)


async def _long_cluster(seed: int, workdir: Path, figures: Figures) -> None:
    """Three nodes on a PostgreSQL (the soak's, else a throwaway one of the round's own)
    and a throwaway Redis; the owner killed three times."""
    postgres = engines.current.server or await trio.to_thread.run_sync(start_server)
    redis = await trio.to_thread.run_sync(start_redis)
    try:
        database = postgres.create_database()
        rounds = workdir / f"cluster-{seed}"
        rounds.mkdir()
        await cluster_round(seed, database, redis.url, rounds, figures, kills=3)
    finally:
        redis.stop()
        if postgres is not engines.current.server:
            postgres.stop()


#: The round kinds ``make soak`` runs in turn, each with its long-run size; on
#: PostgreSQL also its restart rounds. The cluster rounds run on PostgreSQL and Redis
#: whatever the engine (a cluster needs both).
KINDS = {
    "chaos": _long_chaos,
    "crash": _long_crash,
    "remote": _long_remote,
    "cluster": _long_cluster,
}
POSTGRESQL_KINDS = {**KINDS, "pgrestart": _long_pgrestart}


async def soak(seed: int, minutes: float) -> Figures:
    """Every round kind in turn, seeds ``seed``, ``seed + 1``, ... until the time is up;
    at least one of each."""
    kinds = KINDS if engines.current.server is None else POSTGRESQL_KINDS
    parts = {kind: Figures() for kind in kinds}
    end = time.monotonic() + minutes * 60
    round_seed = seed
    workdir = Path(mkdtemp(prefix="tote-soak-"))
    while True:
        for kind, run in kinds.items():
            try:
                await run(round_seed, workdir, parts[kind])
            except BaseException:
                print(f"seed {round_seed}: {kind} failed; servers' data and logs in {workdir}")
                raise
            print(f"seed {round_seed}: {kind} {parts[kind].line()}", flush=True)
        round_seed += 1
        if time.monotonic() >= end:
            break
    shutil.rmtree(workdir)
    figures = Figures()
    for part in parts.values():
        figures.add(part)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=5)
    args = parser.parse_args()
    # TOTE_TEST_ENGINE=postgresql: every round on a throwaway PostgreSQL (tests/postgres.py)
    server = start_server() if default_engine() == "postgresql" else None
    if server is not None:
        engines.use(TestDatabases("postgresql", server))
    try:
        figures = trio.run(soak, args.seed, args.minutes)
    finally:
        if server is not None:
            server.stop()
    print(f"soak seed {args.seed}, {args.minutes} min, {default_engine()}: {figures.line()}")
    raise SystemExit(0 if figures.lost == figures.stale_writes == 0 else 1)


if __name__ == "__main__":
    main()
