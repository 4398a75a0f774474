"""Remote wallet mode (seed 004): the operator keeps the money; tote debits through its
``/bets`` and pays through its ``/winners``, and never loses or creates a cent.

- ``OperatorClient`` sends one signed call and says what the answer means: done,
  refused (402 on /bets), or unknown (anything else: it may have happened).
- ``debit`` is how a placement (a websocket bet, a betslip) is paid for: a durable intent
  first, then /bets with one idempotency key until the operator answers or the player's
  time is up. The bets commit with a check that the intent is still theirs.
- ``CallbacksActor`` is the durable outbox's worker: it asks again about every debit of
  unknown fate (and refunds one that placed nothing), and delivers every /winners call,
  with growing pauses and jitter, forever, across restarts, until a 2xx.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import trio

from actors.services import Services
from domain import remote
from domain.codec import encode
from domain.errors import DomainError
from domain.money import exponent_of, parse_amount
from domain.remote import Answer, CallKind, CallState
from kit.runtime import Actor, Mailbox
from storage import remote_calls as calls_store
from storage.changes import Change, Check, Insert, Update
from storage.database import Database
from storage.remote_calls import Backlog, RemoteCall

log = logging.getLogger(__name__)

#: Calls the worker has in flight at once.
PARALLEL_CALLS = 8
#: How many due calls one pass of the worker takes.
PASS_SIZE = 100
#: How often the worker looks for due calls.
POLL_SECONDS = 1.0  # at most; sooner when the first retry is sooner


class OperatorClient:
    """Signed POSTs to the operator's wallet. Each call has one total deadline
    (``wallet_timeout``: connecting, sending, the answer's head and what is read of its
    body) and reads at most ``MAX_ANSWER_BYTES`` of the body. The status line is the
    answer: no status in time (or none we can read) is UNKNOWN."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        assert settings.wallet_url and settings.wallet_secret
        self.url = settings.wallet_url.rstrip("/")
        self.secret = settings.wallet_secret
        self.clock = services.clock
        self.deadline = settings.wallet_timeout
        self.http = httpx.AsyncClient(timeout=settings.wallet_timeout)

    async def post(self, path: str, payload: Any, key: str) -> tuple[Answer, str]:
        """One call and what its answer means, with the reason of an UNKNOWN or the
        operator's text of a refusal; nothing the operator does makes it raise."""
        body = encode(payload)
        headers = {
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",  # the bound counts the bytes that arrive
            "X-Idempotency-Key": key,
            "X-Tote-Signature": remote.signature(self.secret, self.clock.now_ms() // 1000, body),
        }
        reply = _Reply()
        with trio.move_on_after(self.deadline):
            try:
                async with self.http.stream(
                    "POST", self.url + path, content=body, headers=headers
                ) as response:
                    reply.status = response.status_code
                    await _read_bounded(response, reply)
            except httpx.HTTPError as error:  # refused, reset, a broken body: see the status
                reply.error = f"{type(error).__name__}: {error}"
        return _meaning(path, reply, self.deadline)

    async def aclose(self) -> None:
        await self.http.aclose()


#: The most of an operator's answer tote reads: a 402's ``error`` fits; more is dropped
#: unread and the connection closed (the status line alone is the answer).
MAX_ANSWER_BYTES = 16 * 1024


@dataclass(slots=True)
class _Reply:
    """What came back of one call: the status (None if no head arrived in time), up to
    ``MAX_ANSWER_BYTES`` of the body, and what went wrong."""

    status: int | None = None
    content: bytes = b""
    error: str = ""


async def _read_bounded(response: httpx.Response, reply: _Reply) -> None:
    """The body into ``reply.content`` until it ends or passes the bound; leaving the
    stream unfinished makes httpx close the connection instead of reusing it."""
    content = bytearray()
    async for chunk in response.aiter_raw():
        content += chunk[: MAX_ANSWER_BYTES + 1 - len(content)]
        if len(content) > MAX_ANSWER_BYTES:
            reply.error = f"answer over {MAX_ANSWER_BYTES} bytes: the rest dropped"
            break
    reply.content = bytes(content)


def _meaning(path: str, reply: _Reply, deadline: float) -> tuple[Answer, str]:
    """A 2xx is done and a 402 to /bets refused, whatever became of the body (the
    operator decided); anything else, or no status in time, may or may not have happened."""
    if reply.status is None:
        return Answer.UNKNOWN, reply.error or f"no answer within {deadline} s"
    if 200 <= reply.status < 300:
        return Answer.DONE, ""
    if reply.status == 402 and path == "/bets":
        return Answer.REFUSED, _error_text(b"" if reply.error else reply.content)
    return Answer.UNKNOWN, f"HTTP {reply.status}"


def _error_text(content: bytes) -> str:
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return "The operator refused the bet."
    error = body.get("error") if isinstance(body, dict) else None
    return str(error)[:200] if error else "The operator refused the bet."


# -- debits -----------------------------------------------------------------------------


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
    key = str(uuid.uuid4())
    payload = remote.bets_payload(services.settings.wallet_client, entries, ip=ip)
    now = services.clock.now_ms()
    await services.storage.commit(
        [
            _new_call(
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


def winners_call(pool_id: str, now: int) -> Insert:
    """The outbox row of a settled pool's /winners, committed with the settlement."""
    return _new_call(f"winners:{pool_id}", CallKind.WINNERS, CallState.QUEUED, now, pool_id=pool_id)


def _new_call(
    key: str,
    kind: CallKind,
    state: CallState,
    now: int,
    *,
    user_id: int | None = None,
    pool_id: str | None = None,
    payload: str = "",
) -> Insert:
    """A new outbox row, due now, not tried yet."""
    return Insert(
        "remote_calls",
        {
            "key": key,
            "kind": kind,
            "state": state,
            "user_id": user_id,
            "pool_id": pool_id,
            "payload": payload,
            "created_at": now,
            "attempts": 0,
            "next_at": now,
            "last_error": "",
        },
    )


# -- the worker ---------------------------------------------------------------------------


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
                changes.append(_refund_call(row, services.clock.now_ms()))
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


def _refund_call(row: RemoteCall, now: int) -> Insert:
    return _new_call(
        f"refund:{row.key}",
        CallKind.REFUND,
        CallState.QUEUED,
        now,
        user_id=row.user_id,
        payload=row.payload,
    )


def _due(db: Database, now: int, stale: int) -> list[RemoteCall]:
    """The calls to send now: unknown outcomes and queued credits, and debits whose placer
    has been gone since ``stale``."""
    retry = (CallState.UNKNOWN.value, CallState.QUEUED.value)
    return calls_store.due_calls(db, now, retry, CallState.PLACING.value, stale, PASS_SIZE)


def backlog(db: Database) -> Backlog:
    """Read from storage, not asked of the worker: a pass stuck on a hanging operator
    must not hold up the audit."""
    pending = (CallState.UNKNOWN.value, CallState.QUEUED.value, CallState.PLACING.value)
    return calls_store.backlog(db, pending)


def _credit_payload(db: Database, row: RemoteCall, services: Services) -> dict[str, Any]:
    """The /winners body, built from storage (the same for every retry): a settled
    pool's every bet, or a refund of the bets of a debit that placed nothing."""
    client = services.settings.wallet_client
    if row.kind == CallKind.WINNERS:
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
