"""The one exception type the domain raises for a request it refuses.

The transport layer turns it into a ``res 666`` reply, so it carries exactly what that
reply needs: a stable machine code, a human sentence, and optional extra fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any


class DomainError(Exception):
    """A request broke a business rule; nothing was changed.

    ``code`` is a stable UPPER_CASE error code (clients switch on it), ``text`` a human
    sentence (clients show it), ``extra`` any further fields for the error message, such as
    ``{"limit": "max_stake"}``.
    """

    def __init__(self, code: ErrorCode | str, text: str, **extra: Any) -> None:
        super().__init__(text)
        self.code: str = code
        self.text: str = text
        self.extra: dict[str, Any] = dict(extra)

    def __str__(self) -> str:
        return f"{self.code}: {self.text}"

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.extra.items())
        return f"DomainError({self.code!r}, {self.text!r}{extra})"


@contextmanager
def about(parameter: str) -> Iterator[None]:
    """Name ``parameter`` on a DomainError raised inside that names no field yet: helpers
    shared by several fields (target lists, action names) need not know which one."""
    try:
        yield
    except DomainError as error:
        error.extra.setdefault("parameter", parameter)
        raise


class ErrorCode(StrEnum):
    """Every error code a client can see: the one home of the names (``ERROR_CODES`` gives
    their meanings). A member equals its string, so the wire and stored answers keep it."""

    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    UNKNOWN_OP = "UNKNOWN_OP"
    MISSING_PARAMETER = "MISSING_PARAMETER"
    INVALID_PARAMETER = "INVALID_PARAMETER"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_STAKE = "INVALID_STAKE"
    INVALID_TARGET = "INVALID_TARGET"
    INVALID_STATE = "INVALID_STATE"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    POOL_CLOSED = "POOL_CLOSED"
    POOL_BLOCKED = "POOL_BLOCKED"
    USER_BLOCKED = "USER_BLOCKED"
    LIMIT_REACHED = "LIMIT_REACHED"
    NOT_AUTHORIZED = "NOT_AUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    ORIGIN_REFUSED = "ORIGIN_REFUSED"
    REQUEST_TIMED_OUT = "REQUEST_TIMED_OUT"
    ACTOR_RESTARTED = "ACTOR_RESTARTED"
    UNAVAILABLE = "UNAVAILABLE"
    STORAGE_FAILURE = "STORAGE_FAILURE"
    STORAGE_CONFLICT = "STORAGE_CONFLICT"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    BODY_TOO_SLOW = "BODY_TOO_SLOW"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    GENERAL_EXCEPTION = "GENERAL_EXCEPTION"
    POOL_CHANGED = "POOL_CHANGED"
    REMOTE_WALLET = "REMOTE_WALLET"
    INVALID_USER = "INVALID_USER"
    INVALID_SESSION = "INVALID_SESSION"
    INVALID_BET_DETAILS = "INVALID_BET_DETAILS"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"


#: Every error code a client can see, with what it means. docs/protocol.md lists them;
#: a test keeps the code, this table and the docs in step.
ERROR_CODES: dict[ErrorCode, str] = {
    ErrorCode.MALFORMED_MESSAGE: "The message is not one JSON object with an integer op, or its "
    "header or request_id cannot be echoed, or an object in it repeats a key.",
    ErrorCode.UNKNOWN_OP: "No such op code.",
    ErrorCode.MISSING_PARAMETER: "A required field is missing or blank.",
    ErrorCode.INVALID_PARAMETER: "A field has the wrong type or an impossible value.",
    ErrorCode.INVALID_AMOUNT: "A deposit or withdrawal amount is not a positive exact amount.",
    ErrorCode.INVALID_STAKE: "A stake is not positive, has too many decimals, or breaks a limit.",
    ErrorCode.INVALID_TARGET: "Not a target of this game or pool, or a second target in one pool.",
    ErrorCode.INVALID_STATE: "The game or source is not in a state that allows this.",
    ErrorCode.INSUFFICIENT_FUNDS: "The available balance does not cover it.",
    ErrorCode.POOL_CLOSED: "The pool is resolved, finished or no longer accepts bets.",
    ErrorCode.POOL_BLOCKED: "Betting in the pool is blocked.",
    ErrorCode.USER_BLOCKED: "The operator blocked this user from moving money, or the player is in "
    "a cool-down or excluded themselves (excluded_until).",
    ErrorCode.LIMIT_REACHED: "The deposit or stake would pass a limit the player set (limit, "
    "period and what is left of it).",
    ErrorCode.NOT_AUTHORIZED: "Your role does not allow this.",
    ErrorCode.NOT_FOUND: "No such user, source, game or pool.",
    ErrorCode.CONFLICT: "The name is taken.",
    ErrorCode.IDEMPOTENCY_CONFLICT: "The reference was already used with a different payload.",
    ErrorCode.AUTHENTICATION_FAILED: "Unknown user, wrong digest or password, expired session.",
    ErrorCode.RATE_LIMITED: "Too many messages a second on this connection.",
    ErrorCode.TOO_MANY_CONNECTIONS: "HTTP 429: at a websocket handshake, the user has the most "
    "websocket connections allowed open; on the websocket port before the handshake is "
    "read, the client address has the most websocket connections allowed open "
    "(ws_connections_per_address); on the HTTP port, the client address has the most "
    "HTTP connections allowed open (http_connections_per_address).",
    ErrorCode.ORIGIN_REFUSED: "Handshake only (HTTP 403): a browser page whose Origin is not "
    "allowed (Settings.allowed_origins) may not open a websocket.",
    ErrorCode.REQUEST_TIMED_OUT: "The actor behind the request did not answer in time.",
    ErrorCode.ACTOR_RESTARTED: "The actor crashed while handling the request and was restarted; "
    "check before retrying.",
    ErrorCode.UNAVAILABLE: "The server is shutting down, or the actor is out of service.",
    ErrorCode.STORAGE_FAILURE: "The database could not save the change; nothing was confirmed.",
    ErrorCode.STORAGE_CONFLICT: "The database refused the change; nothing was confirmed.",
    ErrorCode.METHOD_NOT_ALLOWED: "HTTP only: the route does not take this method.",
    ErrorCode.PAYLOAD_TOO_LARGE: "HTTP only: the request body is over 64 KiB.",
    ErrorCode.BODY_TOO_SLOW: "HTTP only (408): the request body did not arrive within "
    "http_body_seconds; the connection is closed.",
    ErrorCode.INTERNAL_ERROR: "The server failed to process the message.",
    ErrorCode.GENERAL_EXCEPTION: "The HTTP API failed to process the request.",
    ErrorCode.POOL_CHANGED: "Internal: a betslip reached a pool while it settled; the pool reloads "
    "and settles again (its caller sees ACTOR_RESTARTED).",
    ErrorCode.REMOTE_WALLET: "Remote wallet mode: the operator keeps the money (no deposits, "
    "withdrawals or balances here; 840 shows the exposure).",
    ErrorCode.INVALID_USER: "Betslip: userId is not a user of this operator.",
    ErrorCode.INVALID_SESSION: "Betslip: the session token is unknown, expired or another user's.",
    ErrorCode.INVALID_BET_DETAILS: "Betslip: a bet names no open game, pool or target of ours, or "
    "does not match it; failedBets lists them.",
    ErrorCode.IDEMPOTENCY_KEY_REUSED: "Betslip: this X-Idempotency-Key came with another body.",
    ErrorCode.REQUEST_IN_PROGRESS: "Betslip: a request with this X-Idempotency-Key is still "
    "running.",
}


class OutcomeUnknown(DomainError):
    """The request reached its actor but no answer came back: it may have been applied.

    Its code is what the client sees (``REQUEST_TIMED_OUT``, ``ACTOR_RESTARTED`` or
    ``UNAVAILABLE``); its type is what an actor's kit acts on."""


#: The codes of a request its actor did not answer (timed out, crashed, out of service),
#: as an ``OutcomeUnknown`` or withdrawn while queued: no refusal of the request itself,
#: so a coordinator passes them on instead of answering them as its own refusal.
RETRYABLE: frozenset[ErrorCode] = frozenset(
    {ErrorCode.REQUEST_TIMED_OUT, ErrorCode.ACTOR_RESTARTED, ErrorCode.UNAVAILABLE}
)
#: What a coordinator that has settled every uncertain outcome (the betslip desk reads
#: the stored truth first) may still raise: the request is certainly not applied and may be
#: sent again (answered ``REQUEST_TIMED_OUT``).
NOT_APPLIED: frozenset[ErrorCode] = RETRYABLE | {ErrorCode.STORAGE_FAILURE}
#: The wallet's refusals that are a betslip's final answer: stored under its idempotency
#: key and replayed, as a refusal of the slip (the slip is not placed, and never will be).
FINAL: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.INSUFFICIENT_FUNDS,
        ErrorCode.USER_BLOCKED,
        ErrorCode.INVALID_BET_DETAILS,
        ErrorCode.LIMIT_REACHED,
    }
)
