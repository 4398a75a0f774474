"""The operator's wallet callbacks (seed 004) as data: signatures, payloads, numeric ids
and the retry schedule. No trio, no HTTP: ``actors/remote/`` sends what this builds.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from domain.money import decimal_text, exponent_of, fixed_text

#: The ``game`` field the seed fixes; tote names itself.
GAME = "tote"
#: Retry schedule of a callback: 1 s doubling to 5 minutes, each with +-50 % jitter.
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
#: An operator should refuse a signed call whose ``t`` is further than this from its clock.
SIGNATURE_WINDOW_SECONDS = 300


class Answer(Enum):
    """What an operator's wallet call came to: done, refused, or not known (no answer in
    time, or an answer that says nothing)."""

    DONE = "done"
    REFUSED = "refused"
    UNKNOWN = "unknown"


class CallKind(StrEnum):
    BETS = "bets"  # a debit: POST /bets
    WINNERS = "winners"  # a settled pool: POST /winners
    REFUND = "refund"  # a debit that placed nothing, given back: POST /winners


class CallState(StrEnum):
    PLACING = "placing"  # a debit being tried by whoever placed the bet
    PLACED = "placed"  # debited, and the bets committed with it
    REFUSED = "refused"  # the operator said no (402): nothing to give back
    UNKNOWN = "unknown"  # a debit of unknown fate: the worker asks again until it knows
    QUEUED = "queued"  # a credit (winners, refund) waiting for its 2xx
    DONE = "done"  # the operator answered 2xx


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Tote-Signature``: ``t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: int) -> bool:
    """What an operator does with the header (the fake operator in the tests does it)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > SIGNATURE_WINDOW_SECONDS:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def number_id(text: str) -> int:
    """A stable numeric id for one of our string ids (the seed's ``uid`` fields are
    numbers): 52 bits of its SHA-256, exact in every JSON reader."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 12


def retry_delay(attempts: int, jitter: float, first: float = FIRST_RETRY_SECONDS) -> float:
    """Seconds before attempt ``attempts + 1``; ``jitter`` in [0, 1) spreads a crowd."""
    base = min(MAX_RETRY_SECONDS, first * 2 ** min(attempts, 20))
    return base * (0.5 + jitter)


def money(minor: int, currency: str) -> str:
    """An amount for the operator: the currency's decimals, always (``"4.50"``)."""
    return fixed_text(minor, exponent_of(currency))


def bets_payload(client: str, entries: list[dict[str, Any]], *, ip: str = "") -> dict[str, Any]:
    """POST /bets for one placement (a websocket bet, or a whole betslip). Each entry:
    user_id, pool_id, bet_id, currency, amount (minor), potential (a betslip bet's exact
    potential payout, a Decimal, or None)."""
    return {
        "bets": [
            {
                "user": {"client": client, "uid": entry["user_id"], "ip": ip},
                "pool": {
                    "client": client,
                    "currency": entry["currency"],
                    "game": GAME,
                    "uid": number_id(entry["pool_id"]),
                    "overdraw": _potential(entry["potential"], entry["currency"]),
                },
                "bet": {
                    "uid": number_id(entry["bet_id"]),
                    "amount": money(entry["amount"], entry["currency"]),
                },
            }
            for entry in entries
        ]
    }


@dataclass(frozen=True, slots=True)
class CreditBet:
    """A bet as a /winners body reports it: amounts in minor units of ``currency``,
    ``price`` a betslip bet's fixed odds as text (None: parimutuel), ``external_bet_id``
    a betslip's own ``betId``, ``uid`` the number when it was fixed earlier (a refund
    repeats the debit's numbers; None: derived from ``id``)."""

    id: str
    user_id: int
    name: str
    amount: int
    payout: int
    status: str
    price: str | None
    target: str
    currency: str
    external_bet_id: str | None = None
    uid: int | None = None


def _potential(value: Decimal | None, currency: str) -> str:
    """A betslip bet's potential payout (stake x price, exact: never rounded), with at
    least the currency's decimals; empty for a parimutuel bet, which has none."""
    return "" if value is None else decimal_text(value, exponent_of(currency))


def winners_payload(client: str, pool: dict[str, Any], bets: list[CreditBet]) -> dict[str, Any]:
    """POST /winners for one settled pool (every bet, won or not), or for a refund of
    debits that placed nothing. ``pool``: id, currency, and ``uid`` when the number was
    fixed earlier (a refund repeats the debit's numbers)."""
    currency = pool["currency"]
    return {
        "pools": [
            {
                "pool": {
                    "client": client,
                    "game": GAME,
                    "uid": pool.get("uid") or number_id(pool["id"]),
                    "currency": currency,
                    "overdraw": money(sum(b.payout for b in bets), currency),
                    "cost": money(sum(b.amount for b in bets), currency),
                    "guaranteed": True,
                },
                "bets": [_settled_bet(client, currency, bet) for bet in bets],
            }
        ]
    }


def _settled_bet(client: str, currency: str, bet: CreditBet) -> dict[str, Any]:
    payout = money(bet.payout, currency)
    odds = Decimal(bet.price) if bet.price else _odds(bet.amount, bet.payout)
    return {
        "user": {"client": client, "uid": str(bet.user_id), "name": bet.name},
        "bet": {
            "uid": bet.uid or number_id(bet.id),
            "currency": currency,
            "amount": money(bet.amount, currency),
            "odds": odds,
            "rake": 0,
            "payout": payout,
            "base_payout": Decimal(payout),
            "result": bet.status,
            "extra": _extra(bet),
        },
    }


def _extra(bet: CreditBet) -> dict[str, Any]:
    """For the operator's reports: our bet id and target, and a betslip bet's own
    ``betId``, so the operator can match the bet it was sent."""
    extra = {"bet_id": bet.id, "target": bet.target}
    if bet.external_bet_id:
        extra["betId"] = bet.external_bet_id
    return extra


def _odds(amount: int, payout: int) -> Decimal:
    """The dividend a bet got (payout / stake, 4 decimals, rounded down); 0 for a loss."""
    if not amount or not payout:
        return Decimal(0)
    return (Decimal(payout) / Decimal(amount)).quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
