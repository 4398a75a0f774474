"""Scenario 2, crash recovery: ``tote serve`` as a subprocess under load, ``kill -9`` at
seeded moments, restarted each time, with a client-side history of every confirmation.

The load: websocket bets on two pools, betslips over HTTP, deposits (internal wallet), and
an admin who opens pools of another action, has a player bet on them and registers the
event that resolves them, so that a kill may land in a settlement (two cycles in three
kill once a seeded event is committed, when its settlements are seen under way). In a
remote wallet round (``remote=True``) the server debits and pays through
tests/fake_operator.py, running here, which serves late, dropped and failed answers at
seeded moments (``faults``).

After every restart: nothing confirmed is missing (bets, deposits that replay as
duplicates, slips that replay byte for byte), every slip is whole or absent, settlements
interrupted by the kill resume (no pending resolution is left, every pool whose event
was confirmed is settled), each settled pool was settled once and its escrow holds
exactly its active stakes, ``PRAGMA integrity_check`` and the audit pass; remote: no
callback effect doubled and every stored bet debited exactly once. At the end every pool
settles, and remote: once the outbox drains (waited for on the operator's counters),
every bet and every debit that placed nothing is credited exactly once and the
operator's money plus tote's escrow and house is the money there was."""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import trio

from domain.codec import decode
from domain.remote import CallKind, CallState, number_id
from tests.conftest import WsClient, setup_game
from tests.fake_operator import FakeOperator, Mode
from tests.reliability.invariants import pool_problems
from tests.reliability.load import (
    STAKE,
    TARGETS,
    DatabaseFile,
    Figures,
    History,
    Reader,
    bet_plan,
    choose_sides,
    database_of,
    open_pools,
    replayed_differently,
    send_slip,
    slip_body,
    slip_problems,
)
from tests.test_crash_match import Match
from tests.test_crash_recovery import client, running_server

SECRET = "soak-operator-secret"
START = Decimal(1000)  # each player's money, at tote (a deposit) or at the operator
BETTORS = ("p0", "p1", "p2")  # websocket bets on the round's two pools
EVENT_BETTOR = "p3"  # bets on the pools the admin's events resolve
LEAVES = ("argentina:1", "brazil:7")
FAULTS = (Mode.LATE, Mode.DROP, Mode.FAIL)
#: Remote rounds: a debit without an answer in 0.4 s is asked again, one unknown after
#: 1 s goes to the worker, and an intent orphaned by a kill is taken over after 6 s.
REMOTE_FLAGS = ("--request-timeout=2", "--wallet-timeout=0.4", "--wallet-retry-seconds=0.05")
#: How long a restarted server may take to finish what it found pending.
SETTLE_SECONDS = 60
POLL_SECONDS = 0.05


@dataclass
class Crashing:
    """One crash round's server (its data and log), its clients' sessions, and in remote
    wallet mode the fake operator it debits and pays."""

    data_dir: Path
    log: Path
    operator: FakeOperator | None
    match: Match = field(default_factory=lambda: Match(None))

    @asynccontextmanager
    async def server(self) -> AsyncIterator[tuple[trio.Process, Any, int]]:
        """The server, started on the round's data; yields it, an HTTP client, its ws port."""
        flags: tuple[str, ...] = ()
        if self.operator is not None:
            wallet = (f"--wallet-url={self.operator.url}", f"--wallet-secret={SECRET}")
            flags = (*wallet, *REMOTE_FLAGS)
        async with (
            running_server(self.data_dir, self.log, *flags) as (proc, url, ws_port),
            client(url) as http,
        ):
            self.match.http = http
            yield proc, http, ws_port

    @property
    def database(self) -> Reader:
        return database_of(self.data_dir)

    @property
    def honest_errors(self) -> set[str]:
        """A bet whose debit's fate is unknown in time is not placed (docs/wallet.md)."""
        return {"REQUEST_TIMED_OUT"} if self.operator else set()

    @property
    def honest_slip_statuses(self) -> set[int]:
        return {200, 503} if self.operator else {200}


async def crash_round(
    seed: int, workdir: Path, figures: Figures, *, kills: int = 2, remote: bool = False
) -> None:
    """``kills`` cycles of load then ``kill -9`` then the checks of a restart, then every
    pool settled (see the module's docstring)."""
    rng = random.Random(seed)
    history = History()
    kind = "remote" if remote else "crash"
    async with trio.open_nursery() as nursery:
        operator = FakeOperator(SECRET) if remote else None
        if operator is not None:
            await nursery.start(operator.serve)
        crashing = Crashing(workdir / f"{kind}-{seed}", workdir / f"{kind}-{seed}.log", operator)
        game_id, pool_ids = await provision(crashing)
        sides = {name: choose_sides(rng, pool_ids) for name in BETTORS}
        for _ in range(kills):
            await _load_then_kill(rng, crashing, game_id, sides, history, figures)
            figures.kills += 1
            figures.lost += await _missing_after_restart(crashing, history)
            figures.invariants_checked += 1
            figures.restarts += 1
        await settle_everything(crashing, game_id)
        figures.invariants_checked += 1
        if operator is not None:
            figures.faults += sum(operator.misbehaved.values())
        nursery.cancel_scope.cancel()
    assert figures.lost == 0, (kind, seed, figures)
    figures.rounds += 1


async def provision(crashing: Crashing) -> tuple[str, list[str]]:
    """An admin, the players with their money, a live game with two pools."""
    async with crashing.server() as (_, _, ws_port):
        match = crashing.match
        await match.user("admin", ["developer"], "1")
        for name in (*BETTORS, EVENT_BETTOR):
            await match.user(name, [], str(START))  # refused in remote mode: no deposits
            user_id = match.users[name]["user_id"]
            if crashing.operator is not None:
                crashing.operator.balances[user_id] = START
            else:
                assert await _balance(match.http, user_id) == START, name
        async with match.connect(ws_port, "admin") as raw:
            admin = WsClient(raw, 0)
            game_id = await setup_game(admin)
            return game_id, await open_pools(admin, game_id, 2)


async def _balance(http: Any, user_id: int) -> Decimal:
    """What the player may stake now (internal wallet)."""
    r = await http.get(f"/v1/users/{user_id}/balances")
    return decode(r.content)["EUR"]["available"]


class Faults:
    """Queues a seeded misbehaviour (late, dropped, failed) on a seeded path of the fake
    operator after a seeded number of confirmations; nothing without an operator."""

    def __init__(self, rng: random.Random, operator: FakeOperator | None) -> None:
        self.rng, self.operator = rng, operator
        self.countdown = rng.randint(1, 8)

    def tick(self) -> None:
        if self.operator is None:
            return
        self.countdown -= 1
        if self.countdown <= 0:
            path = self.rng.choice(("/bets", "/winners"))
            self.operator.modes[path].append(self.rng.choice(FAULTS))
            self.countdown = self.rng.randint(1, 8)


async def _load_then_kill(
    rng: random.Random,
    crashing: Crashing,
    game_id: str,
    sides: dict[str, dict[str, str]],
    history: History,
    figures: Figures,
) -> None:
    """Bets, betslips, deposits and events until a seeded number of confirmations (or
    while a seeded event's settlements are under way), then SIGKILL."""
    enough = trio.Event()
    wanted = rng.randint(10, 60)
    kill_after_event = rng.choice((None, 2, 3))
    plans = {name: bet_plan(rng, player_sides, 1000) for name, player_sides in sides.items()}
    events = [(rng.randint(1, 3), rng.choice(TARGETS), rng.choice(LEAVES)) for _ in range(100)]
    faults = Faults(rng, crashing.operator)
    match = crashing.match
    this_cycle = 0

    def confirmed() -> None:
        nonlocal this_cycle
        figures.operations += 1
        figures.confirmed += 1
        this_cycle += 1
        faults.tick()
        if this_cycle >= wanted and kill_after_event is None:
            enough.set()

    def answered_bet(reply: dict[str, Any]) -> None:
        if reply["res"] == 356:
            history.bets.add(reply["bet_id"])
            confirmed()
        else:
            assert reply.get("error_code") in crashing.honest_errors, reply
            figures.operations += 1
            figures.refused += 1

    async with crashing.server() as (proc, http, ws_port):

        async def bettor(name: str) -> None:
            async with match.connect(ws_port, name) as raw:
                ws = WsClient(raw, 0)
                for pool_id, target in plans[name]:
                    answered_bet(await ws.call(392, pool_id=pool_id, target=target, amount=STAKE))

        async def depositor(name: str) -> None:
            user_id = match.users[name]["user_id"]
            while True:
                reference = f"soak-{secrets.token_hex(6)}"
                r = await http.post(
                    f"/v1/users/{user_id}/deposits",
                    json={"currency": "EUR", "amount": "0.01", "reference": reference},
                )
                assert r.status_code == 201, r.text
                history.deposits[reference] = (user_id, "0.01")
                confirmed()

        async def slipper(name: str) -> None:
            """Slips over both pools, on the player's sides."""
            while True:
                user = match.users[name]
                _, r = await send_slip(http, history, slip_body(user, game_id, sides[name]))
                if r.status_code not in crashing.honest_slip_statuses:
                    balances = (await http.get(f"/v1/users/{user['user_id']}/balances")).text
                    raise AssertionError(f"{r.text}; balances {balances}")
                if r.status_code == 200:
                    confirmed()
                else:
                    figures.operations += 1
                    figures.refused += 1

        async def eventer() -> None:
            """Opens a pool of another action, has a player bet on it, and registers the
            event that resolves it (and any such pool a kill left open)."""
            async with (
                match.connect(ws_port, "admin") as raw_admin,
                match.connect(ws_port, EVENT_BETTOR) as raw_player,
            ):
                admin, player = WsClient(raw_admin, 0), WsClient(raw_player, 0)
                for sent, (bets, side, leaf) in enumerate(events, 1):
                    (pool_id,) = await open_pools(admin, game_id, 1, action="offside")
                    confirmed()
                    for _ in range(bets):
                        answered_bet(
                            await player.call(392, pool_id=pool_id, target=side, amount=STAKE)
                        )
                    request_id = await admin.send(
                        395, game_id=game_id, action_id="offside", target_id=leaf
                    )
                    async with trio.open_nursery() as watch:
                        if sent == kill_after_event:
                            watch.start_soon(_kill_when_resolving, crashing.database, enough)
                        reply = await admin.expect((366, 666), request_id=request_id)
                        watch.cancel_scope.cancel()
                    if sent == kill_after_event:
                        enough.set()  # settled before the watch saw it: kill now
                    assert reply["res"] == 366, reply
                    history.resolved.add(pool_id)
                    confirmed()

        killed = False
        try:
            async with trio.open_nursery() as nursery:
                for name in plans:
                    nursery.start_soon(bettor, name)
                if crashing.operator is None:  # the operator keeps the money otherwise
                    nursery.start_soon(depositor, "p0")
                nursery.start_soon(slipper, "p1")
                nursery.start_soon(eventer)
                await enough.wait()
                killed = True
                proc.kill()  # SIGKILL under load
                await proc.wait()
        except BaseExceptionGroup as group:  # the clients lose their server: expected
            if group.subgroup(AssertionError) or not killed:
                raise
    database = crashing.database
    if isinstance(database, DatabaseFile):  # PostgreSQL checks its own pages
        (ok,) = await database.read(lambda db: [db.scalar("PRAGMA integrity_check")])
        assert ok == "ok", ok
    pending = await database.read(lambda db: db.scalar("SELECT COUNT(*) FROM pending_resolutions"))
    figures.resumed += pending


async def _kill_when_resolving(database: Reader, kill: trio.Event) -> None:
    """Call for the kill once an event's resolutions are durable and not yet all settled
    (``pending_resolutions`` rows, read from the running server's database)."""
    while True:
        if await database.read(lambda db: db.scalar("SELECT COUNT(*) FROM pending_resolutions")):
            kill.set()
            return


async def _missing_after_restart(crashing: Crashing, history: History) -> int:
    """Restart, let it finish what the kill interrupted, count what was confirmed but is
    not there, and check the books."""
    async with crashing.server() as (_, http, _):
        missing, stored, problems = await confirmed_but_missing(crashing.database, http, history)
        if crashing.operator is not None:
            problems += _operator_problems(crashing.operator, stored)
        audit = (await http.get("/v1/audit")).json()
        assert audit["ok"], audit
    assert problems == [], problems
    return missing


async def confirmed_but_missing(
    database: Reader, http: Any, history: History
) -> tuple[int, set[str], list[str]]:
    """Once pending settlements are finished: how many confirmed bets, settlements and
    deposits are not stored (a deposit sent again must be a duplicate) or replay
    differently, the ids of the bets stored, and the pools' and slips' problems."""
    await until_none(database, "SELECT COUNT(*) FROM pending_resolutions")
    stored, settled = await database.read(
        lambda db: (
            {r["id"] for r in db.rows("SELECT id FROM bets")},
            {
                r["id"].removeprefix("settle:")
                for r in db.rows("SELECT id FROM transactions WHERE id LIKE 'settle:%'")
            },
        )
    )
    missing = len(history.bets - stored) + len(history.resolved - settled)
    for reference, (user_id, amount) in history.deposits.items():
        r = await http.post(
            f"/v1/users/{user_id}/deposits",
            json={"currency": "EUR", "amount": amount, "reference": reference},
        )
        missing += r.status_code != 200 or r.json().get("duplicate") is not True
    missing += await replayed_differently(http, history)
    problems = await pool_problems(SimpleNamespace(storage=database))
    problems += await database.read(lambda db: slip_problems(db, history))
    return missing, stored, problems


def _operator_problems(operator: FakeOperator, bet_ids: set[str]) -> list[str]:
    """No callback effect doubled; every bet tote stored was debited exactly once."""
    problems = [
        f"bet uid {uid}: {what} {times} times"
        for what, counter in (("debited", operator.debited), ("credited", operator.credited))
        for uid, times in counter.items()
        if times > 1
    ]
    problems += [
        f"bet {bet_id}: debited {operator.debited[number_id(bet_id)]} times"
        for bet_id in bet_ids
        if operator.debited[number_id(bet_id)] != 1
    ]
    return problems


async def settle_everything(crashing: Crashing, game_id: str) -> None:
    """Events resolve every pool still open: each pool settles exactly once; remote: the
    outbox drains and the money adds up."""
    database = crashing.database
    async with crashing.server() as (_, http, ws_port):
        async with crashing.match.connect(ws_port, "admin") as raw:
            admin = WsClient(raw, 0)
            for action, leaf in (("goal", "brazil:7"), ("offside", "argentina:1")):
                await admin.call(395, 366, game_id=game_id, action_id=action, target_id=leaf)
        await until_none(database, "SELECT COUNT(*) FROM pending_resolutions")
        problems = await pool_problems(SimpleNamespace(storage=database))
        unsettled, pools, settlements = await database.read(
            lambda db: (
                db.scalar("SELECT COUNT(*) FROM pools WHERE status = 'open'"),
                db.scalar("SELECT COUNT(*) FROM pools"),
                db.scalar("SELECT COUNT(*) FROM transactions WHERE id LIKE 'settle:%'"),
            )
        )
        assert (unsettled, settlements) == (0, pools), (unsettled, settlements, pools)
        if crashing.operator is not None:
            problems += await _drained_and_even(crashing.operator, database)
        audit = (await http.get("/v1/audit")).json()
        assert audit["ok"], audit
    assert problems == [], problems


async def _drained_and_even(operator: FakeOperator, database: Reader) -> list[str]:
    """Wait, on the operator's counters, until every bet and every debit that placed
    nothing is credited; then each exactly once, nothing else credited, and the
    operator's money plus tote's escrow and house is what the players started with."""
    owed = await database.read(_owed_credits)
    with trio.fail_after(SETTLE_SECONDS):
        await operator.wait_until(lambda: owed <= set(operator.credited))
    await until_none(
        database,
        "SELECT COUNT(*) FROM remote_calls WHERE state IN (?, ?, ?)",
        (CallState.PLACING, CallState.UNKNOWN, CallState.QUEUED),
    )
    problems = _operator_problems(operator, set())
    if set(operator.credited) != owed:
        problems.append(f"credited {set(operator.credited) - owed} owed nothing")
    held = await database.read(
        lambda db: db.scalar(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger"
            " WHERE account LIKE 'escrow:%' OR account = 'house'"
        )
    )
    players = len((*BETTORS, EVENT_BETTOR))
    if operator.total() + Decimal(held) / 100 != START * players:
        problems.append(f"operator {operator.total()} + tote {held} cents != {START} each")
    return problems


def _owed_credits(db: Any) -> set[int]:
    """The uids the operator must be credited once: every bet (all settled by now), and
    the bets of every debit that placed nothing (refunded)."""
    owed = {number_id(row["id"]) for row in db.rows("SELECT id FROM bets")}
    for row in db.rows(
        "SELECT payload FROM remote_calls WHERE kind = ? AND state NOT IN (?, ?)",
        (CallKind.BETS, CallState.PLACED, CallState.REFUSED),
    ):
        owed |= {entry["bet"]["uid"] for entry in msgspec.json.decode(row["payload"])["bets"]}
    return owed


async def until_none(database: Reader, sql: str, params: tuple = ()) -> None:
    """Wait until the count ``sql`` reads is 0 (what a restart resumes, finished). The
    work is in another process: its database is all there is to watch, so this looks
    again every ``POLL_SECONDS`` (it assumes nothing about when it ends)."""
    with trio.fail_after(SETTLE_SECONDS):
        while True:
            if not await database.read(lambda db: db.scalar(sql, params)):
                return
            await trio.sleep(POLL_SECONDS)
