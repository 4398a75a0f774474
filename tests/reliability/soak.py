"""Scenarios 1 and 2, actor chaos under load and crash recovery, as seeded rounds that
report figures. The suite runs one short round of each (test_soak.py); ``make soak
SEED=... MINUTES=...`` runs rounds until the time is up and prints what it did:

    python -m tests.reliability.soak --seed 7 --minutes 10

A round is fixed by its seed: which pools each client bets on, how much, and after how
many operations which actor is cancelled or when the process is killed all come from
``random.Random(seed)``, and the kills ride on the clients' progress rather than the
clock, so a failing seed replays the same schedule. Betslips are a client loop of
the crash rounds (each placed slip replays byte for byte after every restart); further
kinds (remote wallet callbacks) are new loops beside ``bettor``, ``depositor`` and
``slipper``, feeding the same ``Figures`` and ``History``."""

from __future__ import annotations

import argparse
import random
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import trio

from tests.conftest import WsClient, running_harness, setup_game
from tests.reliability.invariants import all_problems
from tests.test_betslip_crash import slip_bet
from tests.test_crash_match import Match
from tests.test_crash_recovery import client, running_server

#: What a request may honestly answer while the actor behind it is being cancelled.
CHAOS_ERRORS = {"ACTOR_RESTARTED", "REQUEST_TIMED_OUT", "UNAVAILABLE"}
STAKE = "0.25"
TARGETS = ("argentina", "brazil")


@dataclass
class Figures:
    """What the rounds did and found; ``lost`` must stay 0. ``kills`` are actor
    cancellations in chaos rounds and ``kill -9`` in crash rounds; ``restarts`` are the
    actors' or the process's restarts that followed."""

    rounds: int = 0
    operations: int = 0
    confirmed: int = 0
    refused: int = 0
    kills: int = 0
    restarts: int = 0
    invariants_checked: int = 0
    lost: int = 0

    def line(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in vars(self).items())


@dataclass
class History:
    """The client side's record of every confirmation, to find after the chaos."""

    bets: set[str] = field(default_factory=set)
    deposits: dict[str, tuple[int, str]] = field(default_factory=dict)  # ref -> user, amount
    #: placed betslips: idempotency key -> (request body, the answer's exact bytes)
    slips: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)


async def open_pools(admin: WsClient, game_id: str, count: int) -> list[str]:
    pools = []
    for _ in range(count):
        created = await admin.call(
            385, 350, game_id=game_id, action="goal", targets=",".join(TARGETS)
        )
        pools.append(created["pool_id"])
    return pools


def choose_sides(rng: random.Random, pool_ids: list[str]) -> dict[str, str]:
    """The one target a player backs in each pool (a pool takes one target per user)."""
    return {pool_id: rng.choice(TARGETS) for pool_id in pool_ids}


def bet_plan(rng: random.Random, sides: dict[str, str], length: int) -> list[tuple[str, str]]:
    """Which pool to bet on next, ``length`` times, on the player's side in it."""
    return [(pool_id, sides[pool_id]) for pool_id in rng.choices(list(sides), k=length)]


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


async def chaos_round(seed: int, figures: Figures, *, players: int = 4, bets: int = 15) -> None:
    """Many clients bet over the websocket across several pools while random actors
    (game, pools, wallet, registry, storage) are cancelled; then every confirmed bet must
    be stored once, every request answered, every pool settled once, the books clean."""
    rng = random.Random(seed)
    async with running_harness() as harness:
        harness.services.settings.request_timeout = 2  # clients wait 5 s: answered first
        admin = await harness.user("admin", roles=["developer"])
        users = [await harness.user(f"p{n}", deposit="1000") for n in range(players)]
        history = History()
        async with harness.connect(admin) as aws:
            game_id = await setup_game(aws)
            pool_ids = await open_pools(aws, game_id, 3)
            victims = ["wallet", "registry", "storage", f"game:{game_id}"]
            chaos = Chaos(rng, harness.services, victims + [f"pool:{p}" for p in pool_ids])
            plans = [bet_plan(rng, choose_sides(rng, pool_ids), bets) for _ in users]

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

            async with trio.open_nursery() as nursery:
                for user, plan in zip(users, plans, strict=True):
                    nursery.start_soon(bettor, user, plan)
            figures.kills += chaos.kills
            supervisor = harness.services.supervisor
            figures.restarts += sum(supervisor.restarts(name) for name in set(chaos.victims))
            stored = await harness.services.storage.read(
                lambda db: {r["id"] for r in db.rows("SELECT id FROM bets")}
            )
            figures.lost += len(history.bets - stored)
            await aws.call(395, 366, game_id=game_id, action_id="goal", target_id="argentina:1")
            for _ in pool_ids:  # every pool is resolved, each announced once
                await aws.expect(362)
        problems = await all_problems(harness.services, [u["user_id"] for u in users])
        settled = await harness.services.storage.read(
            lambda db: db.scalar("SELECT COUNT(*) FROM transactions WHERE id LIKE 'settle:%'")
        )
        assert settled == len(pool_ids), settled
        figures.invariants_checked += 1
        assert problems == [] and figures.lost == 0, (seed, problems, figures)
    figures.rounds += 1


async def crash_round(seed: int, workdir: Path, figures: Figures, *, kills: int = 2) -> None:
    """The server as a subprocess under bets and deposits, ``kill -9`` after a seeded
    number of confirmations, restarted each time: nothing confirmed is missing, the
    database passes ``PRAGMA integrity_check``, the audit passes, each pool settles once
    and every confirmed deposit replays as a duplicate."""
    rng = random.Random(seed)
    data_dir, log = workdir / f"data-{seed}", workdir / f"server-{seed}.log"
    history = History()
    async with running_server(data_dir, log) as (proc, url, ws_port), client(url) as http:
        match = Match(http)
        await match.user("admin", ["developer"], "1")
        for n in range(3):
            await match.user(f"p{n}", [], "1000")
        async with match.connect(ws_port, "admin") as raw:
            admin = WsClient(raw, 0)
            game_id = await setup_game(admin)
            pool_ids = await open_pools(admin, game_id, 2)
        proc.kill()
        await proc.wait()
    sides = {name: choose_sides(rng, pool_ids) for name in ("p0", "p1", "p2")}
    for _ in range(kills):
        await _load_then_kill(rng, data_dir, log, match, game_id, sides, history, figures)
        figures.kills += 1
        figures.lost += await _missing_after_restart(data_dir, log, match, pool_ids, history)
        figures.invariants_checked += 1
        figures.restarts += 1
    async with running_server(data_dir, log) as (proc, url, ws_port), client(url) as http:
        async with match.connect(ws_port, "admin") as raw:
            admin = WsClient(raw, 0)
            await admin.call(363, 333, game_id=game_id)
            await admin.call(395, 366, game_id=game_id, action_id="goal", target_id="brazil:7")
            for _ in pool_ids:
                await admin.expect(362)
        assert (await http.get("/v1/audit")).json()["ok"]
        proc.kill()
        await proc.wait()
    with sqlite3.connect(data_dir / "tote.db") as db:
        settled = db.execute("SELECT COUNT(*) FROM transactions WHERE id LIKE 'settle:%'")
        assert settled.fetchone()[0] == len(pool_ids)
    assert figures.lost == 0, (seed, figures)
    figures.rounds += 1


async def _load_then_kill(
    rng: random.Random,
    data_dir: Path,
    log: Path,
    match: Match,
    game_id: str,
    sides: dict[str, dict[str, str]],
    history: History,
    figures: Figures,
) -> None:
    """Bets, betslips and deposits until a seeded number of confirmations, then SIGKILL."""
    enough = trio.Event()
    wanted = rng.randint(5, 30)
    plans = {name: bet_plan(rng, player_sides, 1000) for name, player_sides in sides.items()}

    this_cycle = 0

    def confirmed() -> None:
        nonlocal this_cycle
        figures.confirmed += 1
        this_cycle += 1
        if this_cycle >= wanted:
            enough.set()

    async with running_server(data_dir, log) as (proc, url, ws_port), client(url) as http:
        match.http = http

        async def bettor(name: str) -> None:
            async with match.connect(ws_port, name) as raw:
                ws = WsClient(raw, 0)
                for pool_id, target in plans[name]:
                    reply = await ws.call(392, pool_id=pool_id, target=target, amount=STAKE)
                    figures.operations += 1
                    assert reply["res"] == 356, reply
                    history.bets.add(reply["bet_id"])
                    confirmed()

        async def depositor(name: str) -> None:
            user_id = match.users[name]["user_id"]
            while True:
                reference = f"soak-{secrets.token_hex(6)}"
                r = await http.post(
                    f"/v1/users/{user_id}/deposits",
                    json={"currency": "EUR", "amount": "0.01", "reference": reference},
                )
                figures.operations += 1
                assert r.status_code == 201, r.text
                history.deposits[reference] = (user_id, "0.01")
                confirmed()

        async def slipper(name: str) -> None:
            """Slips over both pools, on the player's sides (seed 002)."""
            user = match.users[name]
            while True:
                body = {
                    "requestId": secrets.token_hex(8),
                    "userId": str(user["user_id"]),
                    "sessionToken": user["session_key"],
                    "timestamp": "1795000000000",
                    "bets": [
                        slip_bet(game_id, pool_id, target, STAKE)
                        for pool_id, target in sides[name].items()
                    ],
                }
                key = str(uuid.uuid4())
                r = await http.post("/v1/betslips", json=body, headers={"X-Idempotency-Key": key})
                figures.operations += 1
                assert r.status_code == 200, r.text
                history.slips[key] = (body, r.content)
                confirmed()

        try:
            async with trio.open_nursery() as nursery:
                for name in plans:
                    nursery.start_soon(bettor, name)
                nursery.start_soon(depositor, "p0")
                nursery.start_soon(slipper, "p1")
                await enough.wait()
                proc.kill()  # SIGKILL under load
                await proc.wait()
        except BaseExceptionGroup as group:  # the clients lose their server: expected
            if group.subgroup(AssertionError):
                raise
    with sqlite3.connect(data_dir / "tote.db") as db:
        (ok,) = db.execute("PRAGMA integrity_check").fetchone()
        assert ok == "ok", ok


async def _missing_after_restart(
    data_dir: Path, log: Path, match: Match, pool_ids: list[str], history: History
) -> int:
    """Restart and count what was confirmed but is not there."""
    async with running_server(data_dir, log) as (proc, url, ws_port), client(url) as http:
        match.http = http
        async with match.connect(ws_port, "admin") as raw:
            admin = WsClient(raw, 0)
            stored: set[str] = set()
            for pool_id in pool_ids:
                dist = await admin.call(393, 360, pool_id=pool_id)
                stored |= {b for t in dist["distribution"].values() for b in t["bets"]}
        missing = len(history.bets - stored)
        for reference, (user_id, amount) in history.deposits.items():
            r = await http.post(
                f"/v1/users/{user_id}/deposits",
                json={"currency": "EUR", "amount": amount, "reference": reference},
            )
            missing += r.status_code != 200 or r.json().get("duplicate") is not True
        for key, (body, answer) in history.slips.items():  # placed, byte for byte
            r = await http.post("/v1/betslips", json=body, headers={"X-Idempotency-Key": key})
            missing += r.content != answer
        audit = (await http.get("/v1/audit")).json()
        assert audit["ok"], audit
        proc.kill()
        await proc.wait()
    return missing


async def soak(seed: int, minutes: float) -> Figures:
    """Chaos and crash rounds, alternating, seeds ``seed``, ``seed + 1``, ... until the
    time is up; at least one of each."""
    figures = Figures()
    chaos, crash = Figures(), Figures()
    end = time.monotonic() + minutes * 60
    round_seed = seed
    with TemporaryDirectory(prefix="tote-soak-") as workdir:
        while True:
            await chaos_round(round_seed, chaos, players=8, bets=40)
            await crash_round(round_seed, Path(workdir), crash, kills=3)
            print(f"seed {round_seed}: chaos {chaos.line()}")
            print(f"seed {round_seed}: crash {crash.line()}", flush=True)
            round_seed += 1
            if time.monotonic() >= end:
                break
    for part in (chaos, crash):
        for name, value in vars(part).items():
            setattr(figures, name, getattr(figures, name) + value)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=5)
    args = parser.parse_args()
    figures = trio.run(soak, args.seed, args.minutes)
    print(f"soak seed {args.seed}, {args.minutes} min: {figures.line()}")
    raise SystemExit(0 if figures.lost == 0 else 1)


if __name__ == "__main__":
    main()
