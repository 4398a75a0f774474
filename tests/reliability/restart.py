"""Scenario 2 on PostgreSQL, the database crashing rather than tote: ``tote serve`` as a
subprocess under websocket bets, betslips and deposits while its PostgreSQL is restarted
with ``pg_ctl restart -m immediate`` (every backend killed, crash recovery from the WAL),
at seeded counts of confirmations; tote itself is never restarted.

Requests caught by the restart are answered as failures (a commit whose connection was
lost in COMMIT as of unknown outcome; the next batch reconnects; the actors that saw the
unknown outcome reload from the database). The clients do what a client should: a slip
is sent again with its idempotency key and a deposit with its reference until they get
a final answer; a websocket bet has no key, so one answered with a failure may or may
not be stored. An admin opens pools, has a player bet on them and registers the events
that resolve them, so that payouts are in flight too. After every restart the same
process must serve again (a count of new confirmations, not a wait) and then: every
confirmed bet, slip, deposit and settlement is stored, every slip refused for good is
absent, no more websocket bets are stored than were confirmed, answered as of unknown
outcome or left unanswered, each pool's escrow holds its stakes, the wallet's memory is
the stored balances, the audit (stored balances included) is clean. At the end events
settle every pool, each exactly once."""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from domain.codec import decode
from tests import postgres as engines
from tests.conftest import WsClient
from tests.reliability.crash import (
    BETTORS,
    EVENT_BETTOR,
    LEAVES,
    POLL_SECONDS,
    SETTLE_SECONDS,
    Crashing,
    confirmed_but_missing,
    provision,
    settle_everything,
)
from tests.reliability.load import (
    STAKE,
    TARGETS,
    Figures,
    History,
    bet_plan,
    choose_sides,
    send_slip,
    slip_body,
)

#: What a bet may answer while the database is down or just back when it may have been
#: stored: its commit's outcome unknown (UNAVAILABLE: the connection lost in COMMIT, or
#: an actor not loadable yet; ACTOR_RESTARTED), or no answer within the request timeout.
UNKNOWN_OUTCOME = {"UNAVAILABLE", "ACTOR_RESTARTED", "REQUEST_TIMED_OUT"}
#: ... and the one that says it was not stored: the database unreachable or the
#: connection lost before COMMIT.
OUTAGE_ERRORS = {*UNKNOWN_OUTCOME, "STORAGE_FAILURE"}
#: Slip and deposit answers that are not final: the client sends the same key again.
RETRIED_STATUSES = {500, 503}
#: Confirmations after a restart that show the same process serves again.
AFTER_RESTART = 15
#: How long a round may take at most: only a tote that never recovers takes this long.
ROUND_SECONDS = 240


@dataclass
class Outage:
    """One round's client-side tally of what the restarts caught."""

    #: websocket bets answered as of unknown outcome, or unanswered when the load
    #: stopped: each maybe stored
    unknown_bets: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    refused_slips: set[str] = field(default_factory=set)  # final refusals: never stored


async def restart_round(seed: int, workdir: Path, figures: Figures, *, restarts: int = 2) -> None:
    """``restarts`` cycles of load, ``pg_ctl restart -m immediate`` after a seeded count of
    confirmations, load until tote confirms again, then the checks (module docstring)."""
    server = engines.current.server
    assert server is not None, "a PostgreSQL restart round needs the PostgreSQL engine"
    rng = random.Random(seed)
    history, outage = History(), Outage()
    crashing = Crashing(workdir / f"pgrestart-{seed}", workdir / f"pgrestart-{seed}.log", None)
    game_id, pool_ids = await provision(crashing)
    sides = {name: choose_sides(rng, pool_ids) for name in BETTORS}
    with trio.fail_after(ROUND_SECONDS):
        async with crashing.server() as (_, http, ws_port):
            for _ in range(restarts):
                load = Load(rng, crashing, game_id, sides, history, outage, figures)
                await load.run(ws_port, http, server.restart_immediately)
                figures.kills += 1
                figures.restarts += 1
                figures.lost += await _missing(crashing, http, history, outage)
                figures.invariants_checked += 1
    await settle_everything(crashing, game_id)
    figures.invariants_checked += 1
    figures.refused += sum(outage.codes.values())
    assert figures.lost == 0, ("pgrestart", seed, figures, outage)
    figures.rounds += 1


class Load:
    """Bets, slips and deposits; PostgreSQL restarted after a seeded count of
    confirmations, the load stopped after ``AFTER_RESTART`` more."""

    def __init__(
        self,
        rng: random.Random,
        crashing: Crashing,
        game_id: str,
        sides: dict[str, dict[str, str]],
        history: History,
        outage: Outage,
        figures: Figures,
    ) -> None:
        self.rng, self.crashing, self.game_id, self.sides = rng, crashing, game_id, sides
        self.history, self.outage, self.figures = history, outage, figures
        self.plans = {name: bet_plan(rng, side, 400) for name, side in sides.items()}
        self.restart_after = rng.randint(10, 60)
        self.confirmed = self.after = 0  # confirmations in all, and after the restart
        self.restart_now, self.restarted, self.enough = trio.Event(), trio.Event(), trio.Event()
        self.restarting = False

    def confirm(self) -> None:
        self.figures.operations += 1
        self.figures.confirmed += 1
        self.confirmed += 1
        if self.confirmed >= self.restart_after:
            self.restart_now.set()
        if self.restarted.is_set():
            self.after += 1
            if self.after >= AFTER_RESTART:
                self.enough.set()

    def failed(self, code: str) -> None:
        """An outage error: honest only once the restart was asked for."""
        assert self.restarting and code in OUTAGE_ERRORS, code
        self.figures.operations += 1
        self.outage.codes[code] += 1

    async def run(self, ws_port: int, http: Any, restart: Callable[[], None]) -> None:
        async with trio.open_nursery() as nursery:
            for name in self.plans:
                nursery.start_soon(self.bettor, ws_port, name)
            nursery.start_soon(self.depositor, http, "p0")
            nursery.start_soon(self.slipper, http, "p1")
            nursery.start_soon(self.eventer, ws_port)
            await self.restart_now.wait()
            self.restarting = True
            await trio.to_thread.run_sync(restart)
            self.restarted.set()
            await self.enough.wait()
            nursery.cancel_scope.cancel()

    async def bettor(self, ws_port: int, name: str) -> None:
        async with self.crashing.match.connect(ws_port, name) as raw:
            ws = WsClient(raw, 0)
            for pool_id, target in self.plans[name]:
                await self.bet(ws, pool_id, target)

    async def bet(self, ws: WsClient, pool_id: str, target: str) -> None:
        """A websocket bet: confirmed, refused, or of unknown outcome (maybe stored)."""
        self.outage.unknown_bets += 1  # until answered: the load may stop first
        reply = await ws.call(392, pool_id=pool_id, target=target, amount=STAKE)
        self.outage.unknown_bets -= 1
        if reply["res"] == 356:
            self.history.bets.add(reply["bet_id"])
            self.confirm()
        else:
            self.failed(reply.get("error_code", ""))
            self.outage.unknown_bets += reply.get("error_code") in UNKNOWN_OUTCOME

    async def eventer(self, ws_port: int) -> None:
        """Opens a pool of another action, has a player bet on it, and registers the
        event that resolves it: its settlement's payouts are in flight at a restart. A
        pool whose event failed stays open (the end of the round resolves it)."""
        match = self.crashing.match
        async with (
            match.connect(ws_port, "admin") as raw_admin,
            match.connect(ws_port, EVENT_BETTOR) as raw_player,
        ):
            admin, player = WsClient(raw_admin, 0), WsClient(raw_player, 0)
            while True:
                created = await admin.call(
                    385, game_id=self.game_id, action="offside", targets=",".join(TARGETS)
                )
                if created["res"] != 350:
                    self.failed(created.get("error_code", ""))
                    continue
                await self._bet_and_resolve(admin, player, created["pool_id"])

    async def _bet_and_resolve(self, admin: WsClient, player: WsClient, pool_id: str) -> None:
        self.confirm()
        await self.bet(player, pool_id, self.rng.choice(TARGETS))
        leaf = self.rng.choice(LEAVES)
        reply = await admin.call(395, game_id=self.game_id, action_id="offside", target_id=leaf)
        if reply["res"] != 366:
            self.failed(reply.get("error_code", ""))
            return
        self.history.resolved.add(pool_id)
        self.confirm()

    async def depositor(self, http: Any, name: str) -> None:
        """Deposits of a cent, each sent again with its reference until it is in."""
        user_id = self.crashing.match.users[name]["user_id"]
        while True:
            reference = f"pgrestart-{secrets.token_hex(6)}"
            body = {"currency": "EUR", "amount": "0.01", "reference": reference}
            url = f"/v1/users/{user_id}/deposits"
            while (r := await http.post(url, json=body)).status_code in RETRIED_STATUSES:
                self.failed(_code(r))
                await trio.sleep(POLL_SECONDS)  # a pause between tries, not a wait for it
            assert r.status_code in (200, 201), r.text
            self.history.deposits[reference] = (user_id, "0.01")
            self.confirm()

    async def slipper(self, http: Any, name: str) -> None:
        """Slips over both pools, each sent again with its key until a final answer."""
        user = self.crashing.match.users[name]
        while True:
            body = slip_body(user, self.game_id, self.sides[name])
            key, r = await send_slip(http, self.history, body)
            while r.status_code in RETRIED_STATUSES:
                self.failed(_code(r))
                await trio.sleep(POLL_SECONDS)
                key, r = await send_slip(http, self.history, body, key)
            if r.status_code == 200:
                self.confirm()
            else:  # a final refusal: it must leave nothing behind
                self.outage.refused_slips.add(key)
                self.outage.codes[f"slip {r.status_code} {_code(r)}"] += 1


def _code(r: Any) -> str:
    """The error code of an HTTP answer (slips say ``code``, the rest ``error_code``)."""
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}"
    return str(body.get("error_code") or body.get("code") or body.get("errorCode") or body)


async def _missing(crashing: Crashing, http: Any, history: History, outage: Outage) -> int:
    """Confirmed but not stored, counted; the books checked (module docstring)."""
    database = crashing.database
    missing, _, problems = await confirmed_but_missing(database, http, history)
    by_socket = await database.read(
        lambda db: {r["id"] for r in db.rows("SELECT id FROM bets WHERE slip_key IS NULL")}
    )
    stored_refused = await database.read(
        lambda db: [
            key
            for key in outage.refused_slips
            if db.scalar("SELECT COUNT(*) FROM bets WHERE slip_key = ?", (key,))
        ]
    )
    problems += [f"slip {key}: refused but stored" for key in stored_refused]
    unconfirmed = len(by_socket - history.bets)  # a refused bet (not saved) is never stored
    if unconfirmed > outage.unknown_bets:
        problems.append(f"{unconfirmed} bets stored unconfirmed, {outage.unknown_bets} unknown")
    await _wallet_agrees(crashing, http)
    audit = (await http.get("/v1/audit")).json()
    assert audit["ok"], audit
    assert problems == [], problems
    return missing


async def _wallet_agrees(crashing: Crashing, http: Any) -> None:
    """Wait until each player's money in the wallet's memory is the stored balance (a
    request the stopped clients left in flight may still hold a reservation); a wallet
    whose memory disagrees with the database for good fails the round."""
    users = {crashing.match.users[name]["user_id"] for name in (*BETTORS, EVENT_BETTOR)}
    with trio.fail_after(SETTLE_SECONDS):
        while True:
            stored = await crashing.database.read(
                lambda db: {
                    r["account"]: r["balance"]
                    for r in db.rows("SELECT account, balance FROM balances WHERE currency = 'EUR'")
                }
            )
            memory = {
                user: round(decode((await http.get(f"/v1/users/{user}/balances")).content)
                            ["EUR"]["available"] * 100)
                for user in users
            }  # fmt: skip
            if all(memory[user] == stored.get(f"wallet:{user}", 0) for user in users):
                return
            await trio.sleep(POLL_SECONDS)
