"""The one exception type the domain raises for a request it refuses.

The transport layer turns it into a ``res 666`` reply, so it carries exactly what that
reply needs: a stable machine code, a human sentence, and optional extra fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class DomainError(Exception):
    """A request broke a business rule; nothing was changed.

    ``code`` is a stable UPPER_CASE error code (clients switch on it), ``text`` a human
    sentence (clients show it), ``extra`` any further fields for the error message, such as
    ``{"limit": "max_stake"}``.
    """

    def __init__(self, code: str, text: str, **extra: Any) -> None:
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


#: Every error code a client can see, with what it means. docs/protocol.md lists them;
#: a test keeps the code, this table and the docs in step.
ERROR_CODES: dict[str, str] = {
    "MALFORMED_MESSAGE": "The message is not one JSON object with an integer op, or its "
    "header or request_id cannot be echoed, or an object in it repeats a key.",
    "UNKNOWN_OP": "No such op code.",
    "MISSING_PARAMETER": "A required field is missing or blank.",
    "INVALID_PARAMETER": "A field has the wrong type or an impossible value.",
    "INVALID_AMOUNT": "A deposit or withdrawal amount is not a positive exact amount.",
    "INVALID_STAKE": "A stake is not positive, has too many decimals, or breaks a limit.",
    "INVALID_TARGET": "Not a target of this game or pool, or a second target in one pool.",
    "INVALID_STATE": "The game or source is not in a state that allows this.",
    "INSUFFICIENT_FUNDS": "The available balance does not cover it.",
    "POOL_CLOSED": "The pool is resolved, finished or no longer accepts bets.",
    "POOL_BLOCKED": "Betting in the pool is blocked.",
    "USER_BLOCKED": "The operator blocked this user from moving money, or the player is in "
    "a cool-down or excluded themselves (excluded_until).",
    "LIMIT_REACHED": "The deposit or stake would pass a limit the player set (limit, period "
    "and what is left of it).",
    "NOT_AUTHORIZED": "Your role does not allow this.",
    "NOT_FOUND": "No such user, source, game or pool.",
    "CONFLICT": "The name is taken.",
    "IDEMPOTENCY_CONFLICT": "The reference was already used with a different payload.",
    "AUTHENTICATION_FAILED": "Unknown user, wrong digest or password, expired session.",
    "RATE_LIMITED": "Too many messages a second on this connection.",
    "TOO_MANY_CONNECTIONS": "HTTP 429: at a websocket handshake, the user has the most "
    "websocket connections allowed open; on the websocket port before the handshake is "
    "read, the client address has the most websocket connections allowed open "
    "(ws_connections_per_address); on the HTTP port, the client address has the most "
    "HTTP connections allowed open (http_connections_per_address).",
    "ORIGIN_REFUSED": "Handshake only (HTTP 403): a browser page whose Origin is not "
    "allowed (Settings.allowed_origins) may not open a websocket.",
    "REQUEST_TIMED_OUT": "The actor behind the request did not answer in time.",
    "ACTOR_RESTARTED": "The actor crashed while handling the request and was restarted; "
    "check before retrying.",
    "UNAVAILABLE": "The server is shutting down, or the actor is out of service.",
    "STORAGE_FAILURE": "The database could not save the change; nothing was confirmed.",
    "STORAGE_CONFLICT": "The database refused the change; nothing was confirmed.",
    "METHOD_NOT_ALLOWED": "HTTP only: the route does not take this method.",
    "PAYLOAD_TOO_LARGE": "HTTP only: the request body is over 64 KiB.",
    "BODY_TOO_SLOW": "HTTP only (408): the request body did not arrive within "
    "http_body_seconds; the connection is closed.",
    "INTERNAL_ERROR": "The server failed to process the message.",
    "GENERAL_EXCEPTION": "The HTTP API failed to process the request.",
    "POOL_CHANGED": "Internal: a betslip reached a pool while it settled; the pool reloads "
    "and settles again (its caller sees ACTOR_RESTARTED).",
    "REMOTE_WALLET": "Remote wallet mode: the operator keeps the money (no deposits, "
    "withdrawals or balances here; 840 shows the exposure).",
    "INVALID_USER": "Betslip: userId is not a user of this operator.",
    "INVALID_SESSION": "Betslip: the session token is unknown, expired or another user's.",
    "INVALID_BET_DETAILS": "Betslip: a bet names no open game, pool or target of ours, or "
    "does not match it; failedBets lists them.",
    "IDEMPOTENCY_KEY_REUSED": "Betslip: this X-Idempotency-Key came with another body.",
    "REQUEST_IN_PROGRESS": "Betslip: a request with this X-Idempotency-Key is still running.",
}
