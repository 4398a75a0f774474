"""The outbox's worker (``CallbacksActor``): it asks again about every debit of unknown
fate (and refunds one that placed nothing), and delivers every /winners call, with
growing pauses and jitter, forever, across restarts, until a 2xx.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import msgspec
import trio

from actors.remote.outbox import refund_call
from actors.services import Services
from domain import remote
from domain.errors import DomainError
from domain.money import exponent_of, parse_amount
from domain.remote import Answer, CallKind, CallState
from kit.runtime import Actor, Mailbox
from storage import remote_calls as calls_store
from storage.changes import Change, Check, Update
from storage.database import Database
from storage.remote_calls import RemoteCall

log = logging.getLogger(__name__)

#: Calls the worker has in flight at once.
PARALLEL_CALLS = 8
#: How many due calls one pass of the worker takes.
PASS_SIZE = 100
#: How often the worker looks for due calls.
POLL_SECONDS = 1.0  # at most; sooner when the first retry is sooner


class CallbacksActor(Actor):
    """Delivers the outbox. Each pass (every second at most) starts the due calls in the
    background and returns: at most ``PARALLEL_CALLS`` in flight, one at a time per pool
    (its lane), so a slow operator answer holds up only its own call, and that for at
    most ``wallet_timeout``."""

    def __init__(self, inbox: Mailbox, services: Services) -> None:
        super().__init__(inbox)
        self.services = services
        self.next_pass = trio.current_time()
        self.busy: set[str] = set()  # the lanes with a call in flight
        self._calls: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The serve loop, holding the calls in flight; they end with it (their rows stay
        due, and the next incarnation sends them again under the same keys)."""
        async with trio.open_nursery() as calls:
            self._calls = calls
            await super().run(task_status=task_status)
            calls.cancel_scope.cancel()

    def next_deadline(self) -> float:
        return self.next_pass

    async def on_deadline(self) -> None:
        self.next_pass = trio.current_time() + min(
            POLL_SECONDS, self.services.settings.wallet_retry_seconds
        )
        assert self._calls is not None
        busy_before = set(self.busy)  # a call that ends during the read was seen busy
        now = self.services.clock.now_ms()
        stale = now - int(3 * self.services.settings.request_timeout * 1000)
        due = await self.services.storage.read(lambda db: _due(db, now, stale))
        for row in due:
            lane = row.pool_id or row.key
            if len(self.busy) >= PARALLEL_CALLS:
                break
            if lane not in busy_before and lane not in self.busy:
                self.busy.add(lane)
                self._calls.start_soon(self._delivery, lane, row)

    async def _delivery(self, lane: str, row: RemoteCall) -> None:
        """One call and its record; whatever fails ends this attempt only."""
        try:
            await self._deliver(row)
        except Exception as error:  # a storage failure, a bug: try again later
            log.exception("callback %s: attempt failed", row.key)
            await self._later(row, f"{type(error).__name__}: {error}")
        finally:
            self.busy.discard(lane)

    async def _deliver(self, row: RemoteCall) -> None:
        services = self.services
        client = services.operator
        assert client is not None  # the worker runs in remote wallet mode only
        key, kind, state = row.key, CallKind(row.kind), CallState(row.state)
        if kind is CallKind.BETS:
            answer, reason = await client.post("/bets", msgspec.json.decode(row.payload), key)
            if answer is Answer.UNKNOWN:
                await self._later(row, reason)
                return
            decided = Update(
                "remote_calls",
                {"key": key},
                {"state": CallState.REFUSED if answer is Answer.REFUSED else CallState.DONE},
            )
            changes: list[Change] = [_still(key, state), decided]
            if answer is Answer.DONE:  # debited for bets never placed: give it back
                changes.append(refund_call(row, services.clock.now_ms()))
            await _commit_quietly(services, changes, key)
            return
        payload = await services.storage.read(lambda db: _credit_payload(db, row, services))
        answer, reason = await client.post("/winners", payload, key)
        if answer is Answer.DONE:
            await _commit_quietly(
                services,
                [
                    _still(key, state),
                    Update("remote_calls", {"key": key}, {"state": CallState.DONE}),
                ],
                key,
            )
        else:
            await self._later(row, reason)

    async def _later(self, row: RemoteCall, reason: str) -> None:
        attempts = row.attempts + 1
        first = self.services.settings.wallet_retry_seconds
        wait_ms = int(remote.retry_delay(attempts, random.random(), first) * 1000)
        log.info("callback %s failed (%s); attempt %d in %d ms", row.key, reason, attempts, wait_ms)
        await _commit_quietly(
            self.services,
            [
                Update(
                    "remote_calls",
                    {"key": row.key},
                    {
                        "attempts": attempts,
                        "next_at": self.services.clock.now_ms() + wait_ms,
                        "last_error": reason[:500],
                    },
                )
            ],
            row.key,
        )


def _still(key: str, state: CallState) -> Check:
    return calls_store.state_is(
        key, state.value, "INVALID_STATE", "The call was decided meanwhile."
    )


async def _commit_quietly(services: Services, changes: list[Change], key: str) -> None:
    """A worker's record: if it is lost, the next pass does the (idempotent) call again."""
    try:
        await services.storage.commit(changes)
    except DomainError as error:
        log.warning("callback %s: not recorded (%s); retried on the next pass", key, error)


def _due(db: Database, now: int, stale: int) -> list[RemoteCall]:
    """The calls to send now: unknown outcomes and queued credits, and debits whose placer
    has been gone since ``stale``."""
    retry = (CallState.UNKNOWN.value, CallState.QUEUED.value)
    return calls_store.due_calls(db, now, retry, CallState.PLACING.value, stale, PASS_SIZE)


def _credit_payload(db: Database, row: RemoteCall, services: Services) -> dict[str, Any]:
    """The /winners body, built from storage (the same for every retry): a settled
    pool's every bet, or a refund of the bets of a debit that placed nothing."""
    client = services.settings.wallet_client
    if row.kind == CallKind.WINNERS:
        assert row.pool_id is not None  # a /winners row names its pool (outbox.winners_call)
        bets = calls_store.pool_bets_for_credit(db, row.pool_id)
        currency = bets[0].currency if bets else services.settings.default_currency
        return remote.winners_payload(client, {"id": row.pool_id, "currency": currency}, bets)
    debited = msgspec.json.decode(row.payload)["bets"]
    name = calls_store.user_name(db, row.user_id)
    names = {} if name is None else {row.user_id: name}
    pools: list[dict[str, Any]] = []
    for entry in debited:
        currency = entry["pool"]["currency"]
        amount = parse_amount(entry["bet"]["amount"], exponent_of(currency))
        bet = remote.CreditBet(
            id=str(entry["bet"]["uid"]),
            uid=entry["bet"]["uid"],
            user_id=entry["user"]["uid"],
            name=names.get(entry["user"]["uid"], ""),
            amount=amount,
            payout=amount,
            status="refunded",
            price=None,
            target="",
            currency=currency,
        )
        pool = {"id": "", "uid": entry["pool"]["uid"], "currency": currency}
        pools += remote.winners_payload(client, pool, [bet])["pools"]
    return {"pools": pools}
