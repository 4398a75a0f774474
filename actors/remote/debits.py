"""The debit protocol: how a placement (a websocket bet, a betslip) is paid for in
remote wallet mode. A durable intent first, then /bets with one idempotency key until
the operator answers or the player's time is up; the bets commit with a check that the
intent is still theirs (``Debit.changes``), and a placer that will not commit them gives
the debit up to the outbox worker (``give_up``), which refunds it if the operator took
the money.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

import trio

from actors.remote.outbox import new_call
from actors.services import Services
from domain import remote
from domain.codec import encode
from domain.errors import DomainError
from domain.remote import Answer, CallKind, CallState
from storage import remote_calls as calls_store
from storage.changes import Change, Update

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Debit:
    """A placement's debit: ``answer`` DONE means debited (commit the bets with
    ``changes``); REFUSED carries the operator's reason; UNKNOWN means not placed."""

    key: str
    answer: Answer
    reason: str = ""

    @property
    def changes(self) -> list[Change]:
        """What the bets' commit must hold and record: the intent is still this placer's."""
        return [
            calls_store.state_is(
                self.key,
                CallState.PLACING.value,
                "REQUEST_TIMED_OUT",
                "The debit's outcome was handed to the callback worker.",
            ),
            Update("remote_calls", {"key": self.key}, {"state": CallState.PLACED}),
        ]


async def debit(
    services: Services, entries: list[dict[str, Any]], ip: str, deadline: float
) -> Debit:
    """Ask the operator to debit one placement, until it answers or ``deadline`` (trio
    time) passes; a debit still unknown then goes to the worker, which refunds it if the
    operator did take the money."""
    client = services.operator
    assert client is not None  # debits are made in remote wallet mode only
    key = str(uuid.uuid4())
    payload = remote.bets_payload(services.settings.wallet_client, entries, ip=ip)
    now = services.clock.now_ms()
    await services.storage.commit(
        [
            new_call(
                key,
                CallKind.BETS,
                CallState.PLACING,
                now,
                user_id=entries[0]["user_id"],
                payload=encode(payload).decode(),
            )
        ]
    )
    attempts = 0
    with trio.move_on_at(deadline):
        while True:
            answer, reason = await client.post("/bets", payload, key)
            attempts += 1
            if answer is Answer.REFUSED:
                await services.storage.commit(
                    [Update("remote_calls", {"key": key}, {"state": CallState.REFUSED})]
                )
            if answer is not Answer.UNKNOWN:
                return Debit(key, answer, reason)
            await trio.sleep(
                remote.retry_delay(
                    attempts - 1, random.random(), services.settings.wallet_retry_seconds
                )
            )
    await give_up(services, key)
    return Debit(key, Answer.UNKNOWN, "The operator did not answer in time.")


async def give_up(services: Services, key: str) -> None:
    """The placer will not commit this debit's bets: the worker finds out what the
    operator did, and refunds it if it took the money. (If this commit is lost, the
    worker takes the intent over once it is stale.)"""
    try:
        await services.storage.commit(
            [
                calls_store.state_is(
                    key, CallState.PLACING.value, "INVALID_STATE", "Already decided."
                ),
                Update("remote_calls", {"key": key}, {"state": CallState.UNKNOWN}),
            ]
        )
    except DomainError as error:
        log.warning("debit %s: left to the worker as stale: %s", key, error)
