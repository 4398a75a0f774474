"""The betslip endpoint (seed 002) and the partner keys that may call it.

The desk (``actors.betslips``) places a slip and keeps its final answer; this blueprint
reads the request, renders outcomes in the seed's bodies, and maps every error onto the
seed's codes and statuses (``GENERAL_EXCEPTION`` 500, ``REQUEST_TIMED_OUT`` 503 when the
slip is certainly not placed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid

from quart import Blueprint, Response, request

from actors.betslip_protocol import SlipPlaced, SlipRefused
from actors.services import Services
from domain.betslip import SlipAnswer, failure_body, placed_body
from domain.codec import DecodeError, decode, encode
from domain.errors import NOT_APPLIED, DomainError, ErrorCode
from storage import partners
from transport.httpkit import drain_body, json_response, operator_only

log = logging.getLogger(__name__)

#: HTTP status of each error code a betslip answers with (seed 002, and the two of the
#: idempotency rule); any other error is a GENERAL_EXCEPTION (500).
SLIP_STATUS: dict[str, int] = {
    ErrorCode.INVALID_USER: 400,
    ErrorCode.INVALID_BET_DETAILS: 400,
    ErrorCode.INVALID_STAKE: 400,
    ErrorCode.INSUFFICIENT_FUNDS: 400,
    ErrorCode.USER_BLOCKED: 400,
    ErrorCode.MISSING_PARAMETER: 400,
    ErrorCode.INVALID_SESSION: 401,
    ErrorCode.AUTHENTICATION_FAILED: 403,
    ErrorCode.REQUEST_IN_PROGRESS: 409,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    ErrorCode.GENERAL_EXCEPTION: 500,
    ErrorCode.REQUEST_TIMED_OUT: 503,
}


def render(outcome: SlipPlaced | SlipRefused) -> SlipAnswer:
    """A final outcome as its seed-002 body: what is stored and replayed byte for byte."""
    match outcome:
        case SlipPlaced(slip, bets, at):
            return SlipAnswer(None, encode(placed_body(slip, bets, at)))
        case SlipRefused(error, failed_bets):
            return SlipAnswer(error.code, encode(failure_body(error, failed_bets)))


def answer_status(answer: SlipAnswer) -> int:
    """The HTTP status of a final answer: 200 placed, else its refusal's (400 for a code
    the seed does not list)."""
    return 200 if answer.refusal is None else SLIP_STATUS.get(answer.refusal, 400)


def slip_error(error: DomainError) -> Response:
    """An answer that is not final (never stored)."""
    if error.code in NOT_APPLIED:
        error = DomainError(ErrorCode.REQUEST_TIMED_OUT, f"The slip was not placed: {error.text}")
    elif error.code not in SLIP_STATUS:
        log.error("betslip failed: %s", error)
        error = DomainError(ErrorCode.GENERAL_EXCEPTION, "The betslip could not be processed.")
    return Response(
        encode(failure_body(error)),
        status=SLIP_STATUS[error.code],
        content_type="application/json",
    )


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def betslips_blueprint(services: Services) -> Blueprint:
    routes = Blueprint("betslips", __name__)
    operator_key = services.operator_key.encode()

    async def caller_may_place() -> bool:
        """The operator key, or a partner key not revoked (read from storage each time:
        a revocation takes effect at once, in every process)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 256:
            return False
        if hmac.compare_digest(token.encode(), operator_key):
            return True
        digest = key_hash(token)
        return await services.storage.read(lambda db: partners.key_is_live(db, digest))

    @routes.errorhandler(DomainError)
    async def refused(error: DomainError) -> Response:
        await drain_body()
        return slip_error(error)

    @routes.post("/v1/betslips")
    async def place_betslip() -> Response:
        if not await caller_may_place():
            raise DomainError(
                "AUTHENTICATION_FAILED", "This call needs the operator key or a partner key."
            )
        key = request.headers.get("X-Idempotency-Key", "").strip()
        if not key:
            raise DomainError("MISSING_PARAMETER", "The X-Idempotency-Key header is required.")
        try:
            key = str(uuid.UUID(key))
        except ValueError:
            raise DomainError("MISSING_PARAMETER", "X-Idempotency-Key must be a UUID.") from None
        data = await request.get_data()
        try:
            body = decode(data)
        except DecodeError:  # refused as unreadable: the refusal is final for this key
            body = data.decode("utf-8", "replace")
        answer = await services.betslips.place(key, body, render, request.remote_addr or "")
        return Response(answer.body, status=answer_status(answer), content_type="application/json")

    return routes


def partners_blueprint(services: Services) -> Blueprint:
    """Partner keys, minted and revoked by the operator (operator API errors)."""
    routes = Blueprint("partners", __name__)
    operator = operator_only(services)

    @routes.post("/v1/partners")
    @operator
    async def create_partner() -> Response:
        partner_id, key = str(uuid.uuid4()), secrets.token_hex(32)
        await services.storage.commit(
            [partners.new_partner(partner_id, key_hash(key), services.clock.now_ms())]
        )
        return json_response({"partner_id": partner_id, "key": key, "scope": "betslips"}, 201)

    @routes.delete("/v1/partners/<partner_id>")
    @operator
    async def revoke_partner(partner_id: str) -> Response:
        if not await services.storage.read(lambda db: partners.partner_exists(db, partner_id)):
            raise DomainError("NOT_FOUND", f"There is no partner {partner_id!r}.")
        await services.storage.commit([partners.revocation(partner_id, services.clock.now_ms())])
        return json_response({"partner_id": partner_id, "revoked": True})

    return routes
