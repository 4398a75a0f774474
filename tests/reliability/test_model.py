"""Scenario 4, model-based: hypothesis writes programs of steps over one game (new pools,
some with a betting deadline; bets; betslips over 1-3 pools, some replayed with their
key; events; resolving and voiding by hand; time passing; actors killed and rebuilt
from storage) and runs each on the actors under trio's autojump clock. A simple model
predicts each answer and every player's money (a slip is placed whole when every bet
would be taken and the player can pay for all of them, else refused with nothing
changed; a replayed key answers the same bytes); after every step the database, the
actors' memory (the wallet's balances, each open pool's bets) and the model must agree,
and the books and pools must hold their invariants (tests/reliability/invariants.py).

The programs are generated as lists of steps rather than by hypothesis'
RuleBasedStateMachine, whose sync runner cannot own trio's mock clock: a list of steps
shrinks the same way. New kinds of step are a new ``STEPS`` entry and a new ``Model``
method.

The same programs run in remote wallet mode too (a quarter as many, up to 20 steps):
the fake operator (tests/fake_operator.py, on loopback in the same trio run) holds the
money, bets and slips are debited there, settlements credited by the outbox; once the
outbox drains after every step, the operator's balances are the model's."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actors import game as g
from actors import pool as p
from actors.registry import CreateSession
from domain.errors import DomainError
from domain.pool import PoolStatus
from kit.runtime import Mailbox
from tests.conftest import ActorHarness, Match, open_match
from tests.fake_operator import FakeOperator
from tests.reliability.invariants import all_problems, pool_memory_problems
from tests.reliability.world import drained, remote_actors, running_actors, slip_body
from transport.routes_betslips import render

#: Programs per run: 60 in ``make test``; a deeper one-off run sets the variable.
MODEL_EXAMPLES = int(os.environ.get("TOTE_MODEL_EXAMPLES", "60"))
DEPOSIT = 100_00
PLAYERS = 3
TARGETS = ("a", "b", "c")
LEAVES = ("a:1", "a:2", "b:1", "c")  # what events name (open_match's target tree)
#: What a bet may be refused for when the model does not know better (a second bet in a
#: pool, on another target or past a per-user limit).
DISCRETIONARY = {"ALREADY_BET", "INVALID_PARAMETER", "INVALID_TARGET", "BET_TOO_LARGE"}


@dataclass
class ModelPool:
    pool_id: str
    box: Mailbox
    stop_at: int | None
    status: PoolStatus = PoolStatus.OPEN
    bets: dict[int, int] = field(default_factory=dict)  # player -> staked cents


@dataclass
class Model:
    """What the world should look like; ``check`` compares it with the real one."""

    h: ActorHarness
    match: Match
    players: list[int]
    balances: dict[int, int]
    sessions: dict[int, str]  # player -> session key (a slip's sessionToken)
    pools: list[ModelPool] = field(default_factory=list)
    checks: int = 0
    operator: FakeOperator | None = None  # remote wallet mode: it holds the money

    def pick(self, index: int) -> ModelPool | None:
        return self.pools[index % len(self.pools)] if self.pools else None

    @property
    def now(self) -> int:
        return self.h.services.clock.now_ms()

    async def new_pool(self, deadline_s: int | None) -> None:
        stop_at = None if deadline_s is None else self.now + deadline_s * 1000
        fields = {} if stop_at is None else {"stop_accepting_bets_at": stop_at}
        pool_id, box = await self.match.pool(targets=",".join(TARGETS), **fields)
        self.pools.append(ModelPool(pool_id, box, stop_at))

    async def bet(self, pool_index: int, player_index: int, target: str, cents: int) -> None:
        pool = self.pick(pool_index)
        if pool is None:
            return
        player = self.players[player_index % len(self.players)]
        must_refuse = not self._taking(pool) or cents > self.balances[player]
        try:
            placed = await pool.box.ask(p.PlaceBet(player, target, _amount(cents)))
        except DomainError as error:
            assert must_refuse or (player in pool.bets and error.code in DISCRETIONARY), error
            return
        assert not must_refuse, ("accepted a bet the model refuses", pool, player, cents)
        assert placed.amount == cents
        pool.bets[player] = pool.bets.get(player, 0) + cents
        self.balances[player] -= cents

    async def slip(self, legs: list[tuple[int, str, int]], player_index: int, replay: bool) -> None:
        """A betslip with a bet per leg (pool index, target, cents) over distinct pools:
        placed whole when every bet would be taken and the player can pay for all,
        refused with nothing changed otherwise; its key replays the same answer."""
        chosen = {
            id(pool): (pool, target, cents)
            for index, target, cents in legs
            if (pool := self.pick(index)) is not None
        }
        if not chosen:
            return
        player = self.players[player_index % len(self.players)]
        bets = list(chosen.values())
        total = sum(cents for _, _, cents in bets)
        must_refuse = total > self.balances[player] or not all(
            self._taking(pool) for pool, _, _ in bets
        )
        # a player's second bet in a pool may be refused (another target, a limit)
        may_refuse = any(player in pool.bets for pool, _, _ in bets)
        key = str(uuid.uuid4())
        legs = [(pool.pool_id, target, _amount(cents)) for pool, target, cents in bets]
        body = slip_body(self.match.game_id, player, self.sessions[player], legs)
        desk = self.h.services.betslips
        answer = await desk.place(key, body, render)
        if answer.placed:
            assert not must_refuse, ("placed a slip the model refuses", bets, player)
            for pool, _, cents in bets:
                pool.bets[player] = pool.bets.get(player, 0) + cents
            self.balances[player] -= total
        else:
            assert must_refuse or may_refuse, ("refused a slip the model places", answer)
        if replay:
            assert await desk.place(key, body, render) == answer

    def _taking(self, pool: ModelPool) -> bool:
        return pool.status is PoolStatus.OPEN and (pool.stop_at is None or self.now < pool.stop_at)

    async def resolve(self, pool_index: int, target: str) -> None:
        pool = self.pick(pool_index)
        if pool is None:
            return
        try:
            await pool.box.ask(p.ResolveByHand(target))
        except DomainError as error:
            assert pool.status is not PoolStatus.OPEN, error
            return
        assert pool.status is PoolStatus.OPEN, "a finished pool resolved again"
        await self._settled(pool)

    async def event(self, target: str) -> None:
        """An event on the game's one action resolves every open pool (to the branch of
        the target tree the leaf is on)."""
        await self.match.game.ask(g.RegisterEvent(self.match.admin, "goal", target, None))
        await trio.testing.wait_all_tasks_blocked()
        for pool in self.pools:
            if pool.status is PoolStatus.OPEN:
                await self._settled(pool)

    async def void(self, pool_index: int) -> None:
        pool = self.pick(pool_index)
        if pool is None:
            return
        try:
            await pool.box.ask(p.Void())
        except DomainError as error:
            assert pool.status is not PoolStatus.OPEN, error
            return
        assert pool.status is PoolStatus.OPEN, "a finished pool voided again"
        for player, staked in pool.bets.items():  # a void refunds to the cent
            self.balances[player] += staked
        pool.status = PoolStatus.VOIDED

    async def _settled(self, pool: ModelPool) -> None:
        """The pool was paid out: winners get at least their stake back, the rest was
        lost; the model takes the payouts from the settled bets."""
        rows = await self.h.services.storage.read(
            lambda db: db.rows(
                "SELECT user_id, amount, status, payout FROM bets WHERE pool_id = ?",
                (pool.pool_id,),
            )
        )
        status = await self.h.services.storage.read(
            lambda db: db.scalar("SELECT status FROM pools WHERE id = ?", (pool.pool_id,))
        )
        pool.status = PoolStatus(status)
        assert pool.status is not PoolStatus.OPEN
        for row in rows:
            assert row["status"] != "active", row
            if row["status"] == "won":
                assert row["payout"] >= row["amount"], row
            self.balances[row["user_id"]] += row["payout"] or 0

    async def wait(self, seconds: int) -> None:
        await trio.sleep(seconds)

    async def kill(self, victim: str, index: int) -> None:
        names = {
            "wallet": "wallet",
            "storage": "storage",
            "registry": "registry",
            "game": f"game:{self.match.game_id}",
        }
        pool = self.pick(index)
        name = names.get(victim) or (f"pool:{pool.pool_id}" if pool else "wallet")
        self.h.services.supervisor.kill(name)
        await trio.testing.wait_all_tasks_blocked()

    async def check(self) -> None:
        """After every step: the invariants, and the model equals the world."""
        assert await all_problems(self.h.services, self.players) == []
        still_open = [pool.pool_id for pool in self.pools if pool.status is PoolStatus.OPEN]
        assert await pool_memory_problems(self.h.services, still_open) == []
        stored = await self.h.services.storage.read(
            lambda db: {r["id"]: r["status"] for r in db.rows("SELECT id, status FROM pools")}
        )
        for pool in self.pools:
            assert stored[pool.pool_id] == pool.status.value, pool
        held = await self._money()
        for player in self.players:
            assert held.get(player, 0) == self.balances[player], (player, held)
        self.checks += 1

    async def _money(self) -> dict[int, int]:
        """Each player's money in cents: their wallet's ledger sum, or in remote wallet
        mode their balance at the operator once the outbox has drained."""
        services = self.h.services
        if self.operator is not None:
            await drained(services, self.operator)
            return {
                player: int(self.operator.balances.get(player, 0) * 100) for player in self.players
            }
        return await services.storage.read(
            lambda db: {
                int(r["account"].removeprefix("wallet:")): r["total"]
                for r in db.rows(
                    "SELECT account, SUM(amount) AS total FROM ledger "
                    "WHERE account LIKE 'wallet:%' GROUP BY account"
                )
            }
        )


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


INDEX = st.integers(min_value=0, max_value=7)
#: A slip's bet: mostly affordable, sometimes more than the player holds.
LEG = st.tuples(
    INDEX, st.sampled_from(TARGETS), st.integers(1, DEPOSIT // 10) | st.integers(1, DEPOSIT)
)
BET = st.tuples(st.just("bet"), INDEX, INDEX, st.sampled_from(TARGETS), st.integers(1, DEPOSIT + 1))
STEPS = st.one_of(
    st.tuples(st.just("new_pool"), st.none() | st.sampled_from([5, 60])),
    BET,
    BET,  # bets are most of what a pool sees
    BET,
    st.tuples(st.just("slip"), st.lists(LEG, min_size=1, max_size=3), INDEX, st.booleans()),
    st.tuples(st.just("resolve"), INDEX, st.sampled_from(TARGETS)),
    st.tuples(st.just("event"), st.sampled_from(LEAVES)),
    st.tuples(st.just("void"), INDEX),
    st.tuples(st.just("wait"), st.sampled_from([1, 10, 61])),
    st.tuples(
        st.just("kill"), st.sampled_from(["wallet", "storage", "registry", "game", "pool"]), INDEX
    ),
)


@asynccontextmanager
async def actors_in(remote: bool) -> AsyncIterator[tuple[ActorHarness, FakeOperator | None]]:
    """The actors, with tote's own wallet or in remote wallet mode with a fake operator."""
    if remote:
        async with remote_actors() as (h, operator):
            yield h, operator
    else:
        async with running_actors() as h:
            yield h, None


#: A program every run includes: money in, an actor lost, a refund, slips refused and
#: placed, a settlement by event.
ALWAYS = [
    ("bet", 0, 0, "a", 500),
    ("bet", 0, 1, "b", 300),
    ("kill", "wallet", 0),
    ("void", 0),
    ("new_pool", 60),
    ("bet", 1, 0, "a", 700),
    ("bet", 1, 2, "c", 900),
    ("kill", "pool", 1),
    ("slip", [(0, "a", 100), (1, "b", 200)], 1, True),  # pool 0 is void: none placed
    ("slip", [(1, "b", 200)], 1, True),  # placed, and its key replayed
    ("wait", 10),
    ("event", "a:1"),
]


async def run_program(steps: list[tuple[Any, ...]], remote: bool = False) -> int:
    async with actors_in(remote) as (h, operator):
        match = await open_match(h)
        players = [await match.player(f"p{n}", 0 if operator else DEPOSIT) for n in range(PLAYERS)]
        if operator is not None:
            operator.balances.update(dict.fromkeys(players, Decimal(DEPOSIT) / 100))
        sessions = {
            player: (await h.services.ask_registry(CreateSession(player))).session_key
            for player in players
        }
        model = Model(
            h, match, players, dict.fromkeys(players, DEPOSIT), sessions, operator=operator
        )
        await model.new_pool(None)
        for name, *args in steps:
            await getattr(model, name)(*args)
            await model.check()
        return model.checks


@settings(
    max_examples=MODEL_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(steps=st.lists(STEPS, min_size=8, max_size=30))
@example(steps=ALWAYS)
def test_the_world_follows_the_model_after_every_step(steps: list[tuple[Any, ...]]) -> None:
    trio.run(run_program, steps, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(
    max_examples=max(1, MODEL_EXAMPLES // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(steps=st.lists(STEPS, min_size=8, max_size=20))
@example(steps=ALWAYS)
def test_the_operator_follows_the_model_in_remote_wallet_mode(
    steps: list[tuple[Any, ...]],
) -> None:
    """The same programs with the money at the fake operator: debits on bets and slips,
    credits from /winners once the outbox drains; the model predicts its balances."""
    trio.run(run_program, steps, True, clock=trio.testing.MockClock(autojump_threshold=0))
