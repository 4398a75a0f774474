"""A betslip (seed 002) as data: reading the request, the price record, and the answer and
refusal bodies. No trio, no storage: the betslip desk wraps this with plumbing.

The seed's error codes are the only ones a slip answers with. A field that is there but
has no usable value is ``MISSING_PARAMETER`` at the top level (the seed has no "invalid
parameter"), ``INVALID_USER``/``INVALID_SESSION`` for who is betting,
``INVALID_BET_DETAILS`` inside a bet, and ``INVALID_STAKE`` for its stake.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Any

import msgspec

from domain import params
from domain.errors import DomainError
from domain.money import to_wire

#: Bets one slip may hold: a slip is one transaction, and one answer.
MAX_BETS = 50
#: Longest label or id a caller may send, in characters.
MAX_TEXT = 256
#: Decimal odds: above 1 (a price of 1 pays nothing back), at most this, 4 decimals.
MAX_PRICE = Decimal(1_000_000)
PRICE_DECIMALS = 4

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: BetDetails fields the seed requires, all strings but the two decimals.
REQUIRED_TEXT = (
    "betId",
    "sportId",
    "sportName",
    "sportDisplayName",
    "eventId",
    "eventName",
    "eventDisplayName",
    "eventStage",
    "competitionId",
    "competitionName",
    "competitionDisplayName",
    "marketTypeId",
    "marketId",
    "marketName",
    "marketDisplayName",
    "marketStage",
    "selectionId",
    "selectionName",
    "selectionDisplayName",
)
OPTIONAL_TEXT = ("eventAltId",)
#: What identifies a bet in ``failedBets``.
FAILED_BET_KEYS = ("betId", "sportId", "eventId", "marketId", "selectionId")


class Stage(StrEnum):
    IN_PLAY = "IN_PLAY"
    PRE_PLAY = "PRE_PLAY"


@dataclass(frozen=True, slots=True)
class SlipBet:
    """One BetDetails, read: the caller's fields as sent (echoed back), and ours."""

    index: int
    details: dict[str, Any]  # every text field, as sent
    stage: Stage
    price: Decimal
    stake: Decimal  # exact, in major units (the pool knows its currency's minor units)

    @property
    def bet_id(self) -> str:
        return self.details["betId"]

    def potential_payout(self) -> Decimal:
        """stake * decimalPrice, exactly (seed 002)."""
        with localcontext() as context:
            context.prec = 80
            return self.stake * self.price

    def answer(self, exponent: int, minor: int) -> dict[str, Any]:
        """The bet as the PLACED answer shows it: as sent, with exact numbers."""
        return {
            **self.details,
            "decimalPrice": self.price,
            "stake": to_wire(minor, exponent),
            "potentialPayout": self.potential_payout(),
        }

    def failed(self, reason: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            **{key: self.details[key] for key in FAILED_BET_KEYS},
            "reason": reason or {},
        }


@dataclass(frozen=True, slots=True)
class Slip:
    request_id: str
    user_id: int
    session_token: str
    timestamp: str
    raw_bets: list[Any]
    fingerprint: str = field(compare=False)


def fingerprint(body: Any) -> str:
    """The same request however its keys are ordered or its blanks spaced."""
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()


def read_slip(body: dict[str, Any]) -> Slip:
    """Who is betting, and the request's envelope; the bets are read (``read_bets``) once
    the session is known to be good, as the seed orders the checks."""
    request_id = _top_text(body, "requestId")
    user_text = _top_text(body, "userId")
    session_token = _top_text(body, "sessionToken")
    timestamp = _top_text(body, "timestamp")
    raw_bets = body.get("bets")
    if raw_bets is None or raw_bets == []:
        raise DomainError("MISSING_PARAMETER", "bets is required.", parameter="bets")
    if not isinstance(raw_bets, list) or len(raw_bets) > MAX_BETS:
        raise DomainError(
            "MISSING_PARAMETER",
            f"bets must be an array of 1 to {MAX_BETS} BetDetails.",
            parameter="bets",
        )
    try:
        params.epoch_ms({"timestamp": timestamp}, "timestamp")
    except DomainError:
        raise DomainError(
            "MISSING_PARAMETER",
            "timestamp must be epoch milliseconds as a string.",
            parameter="timestamp",
        ) from None
    if not (user_text.isascii() and user_text.isdigit() and len(user_text) <= 18):
        raise DomainError("INVALID_USER", "userId is not a user of this operator.")
    return Slip(request_id, int(user_text), session_token, timestamp, raw_bets, fingerprint(body))


def read_bets(slip: Slip) -> tuple[list[SlipBet], list[BetRefusal]]:
    """Every bet of the slip read, and the refusal of each that is unusable. A missing
    field is ``MISSING_PARAMETER`` for the whole slip (raised); a bad one is its bet's."""
    bets: list[SlipBet] = []
    refusals: list[BetRefusal] = []
    seen: set[str] = set()
    for index, raw in enumerate(slip.raw_bets):
        try:
            bet = _read_bet(index, raw)
        except BetRefusal as refusal:
            refusals.append(refusal)
            continue
        if bet.bet_id in seen:
            refusals.append(
                BetRefusal(
                    "INVALID_BET_DETAILS",
                    f"bets[{index}]: betId {bet.bet_id!r} appears twice.",
                    bet.failed(),
                )
            )
            continue
        seen.add(bet.bet_id)
        bets.append(bet)
    return bets, refusals


def _top_text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DomainError("MISSING_PARAMETER", f"{name} is required.", parameter=name)
    if not isinstance(value, str) or len(value) > MAX_TEXT or _CONTROL.search(value):
        raise DomainError(
            "MISSING_PARAMETER",
            f"{name} must be a string of at most {MAX_TEXT} printable characters.",
            parameter=name,
        )
    return value


class BetRefusal(DomainError):
    """A bet that cannot be placed; ``failed`` is its ``failedBets`` entry."""

    def __init__(self, code: str, text: str, failed: dict[str, Any]) -> None:
        super().__init__(code, text)
        self.failed = failed


def _read_bet(index: int, raw: Any) -> SlipBet:
    where = f"bets[{index}]"
    if not isinstance(raw, dict):
        raise DomainError("MISSING_PARAMETER", f"{where} must be a BetDetails object.")
    details: dict[str, Any] = {}
    for name in REQUIRED_TEXT + OPTIONAL_TEXT:
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if name in OPTIONAL_TEXT:
                continue
            raise DomainError(
                "MISSING_PARAMETER", f"{where}.{name} is required.", parameter=f"{where}.{name}"
            )
        details[name] = value
    for name in ("decimalPrice", "stake"):
        if raw.get(name) is None or raw.get(name) == "":
            raise DomainError(
                "MISSING_PARAMETER", f"{where}.{name} is required.", parameter=f"{where}.{name}"
            )
    # Every required field is there: from here a fault is this bet's, in failedBets.
    bad_text = [
        name
        for name, value in details.items()
        if not isinstance(value, str) or len(value) > MAX_TEXT or _CONTROL.search(value)
    ]
    ids = {key: details[key] if isinstance(details[key], str) else "" for key in FAILED_BET_KEYS}
    failed = {**ids, "reason": {}}
    if bad_text:
        raise BetRefusal(
            "INVALID_BET_DETAILS",
            f"{where}: {', '.join(bad_text)} must be strings of at most {MAX_TEXT} characters.",
            failed,
        )
    if details["eventStage"] not in Stage.__members__:
        raise BetRefusal(
            "INVALID_BET_DETAILS", f"{where}: eventStage must be IN_PLAY or PRE_PLAY.", failed
        )
    price = _price(raw["decimalPrice"])
    if price is None:
        raise BetRefusal(
            "INVALID_BET_DETAILS",
            f"{where}: decimalPrice must be a decimal above 1 and at most {MAX_PRICE}, "
            f"with at most {PRICE_DECIMALS} decimals.",
            failed,
        )
    stake = _decimal(raw["stake"])
    if stake is None or stake <= 0:
        raise BetRefusal(
            "INVALID_STAKE", f"{where}: stake must be a positive exact decimal.", failed
        )
    return SlipBet(index, details, Stage(details["eventStage"]), price, stake)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str) and value.strip() and len(value) <= 40:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def _price(value: Any) -> Decimal | None:
    price = _decimal(value)
    if price is None or not 1 < price <= MAX_PRICE:
        return None
    exponent = price.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -PRICE_DECIMALS:
        return None
    return price


def placed_body(slip: Slip, bets: list[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    """The PLACED answer of seed 002."""
    return {
        "requestId": slip.request_id,
        "userId": str(slip.user_id),
        "sessionToken": slip.session_token,
        "timestamp": str(now_ms),
        "status": "PLACED",
        "bets": bets,
    }


def failure_body(error: DomainError, failed_bets: list[dict[str, Any]] | None = None) -> dict:
    """The FAILURE answer of seed 002."""
    body: dict[str, Any] = {
        "status": "FAILURE",
        "errorCode": error.code,
        "errorMessage": error.text,
    }
    if "reason" in error.extra:  # USER_BLOCKED by the player's own limit
        body["reason"] = error.extra["reason"]
    if failed_bets:
        body["failedBets"] = failed_bets
    return body


@dataclass(frozen=True, slots=True)
class SlipAnswer:
    """A slip's final answer, kept under its idempotency key and replayed byte for byte:
    the code that refused it (None: placed) and the seed-002 body as rendered. What it
    comes to on a wire (an HTTP status) is the transport's to say."""

    refusal: str | None
    body: bytes

    @property
    def placed(self) -> bool:
        return self.refusal is None
