"""Player limits and self-exclusion on the wire, the same for the websocket ops and the
operator's HTTP routes (decisions §12): amounts as exact decimal strings."""

from __future__ import annotations

from typing import Any

from actors.wallet import Exclude, LimitsView, SetLimits
from domain import params
from domain.errors import DomainError
from domain.limits import Kind, read_changes
from domain.money import exponent_of, parse_currency, to_wire


def limits_wire(view: LimitsView) -> dict[str, Any]:
    """``{"currency", "deposit": {period: amount}, "loss": {...}, "pending": [...],
    "left": {"deposit": {...}, "loss": {...}}, "excluded_until"}``."""
    exp = exponent_of(view.currency)

    def amount(minor: int | None) -> str | None:
        return None if minor is None else str(to_wire(minor, exp))

    in_force = {
        kind.value: {p.value: amount(a) for p, a in view.limits.in_force(kind, view.now).items()}
        for kind in Kind
    }
    return {
        "user_id": view.user_id,
        "currency": view.currency,
        **in_force,
        "pending": [
            {
                "kind": w.kind.value,
                "period": w.period.value,
                "amount": amount(w.amount),
                "from": w.starts,
            }
            for w in view.limits.waiting(view.now)
        ],
        "left": {
            kind.value: {p.value: amount(a) for p, a in periods.items()}
            for kind, periods in view.left.items()
        },
        "excluded_until": view.excluded_until,
    }


def limits_currency(body: dict[str, Any], default: str) -> str:
    return parse_currency(body.get("currency"), default=default)


def set_limits_request(user_id: int, body: dict[str, Any], default_currency: str) -> SetLimits:
    """The change a body asks for: ``currency`` (default the server's) and the periods
    named under ``deposit`` and ``loss``; INVALID_PARAMETER names a bad field."""
    currency = limits_currency(body, default_currency)
    return SetLimits(user_id, currency, read_changes(body, exponent_of(currency)))


def exclude_request(user_id: int, body: dict[str, Any]) -> Exclude:
    """A self-exclusion until ``until`` (epoch ms or s); MISSING_PARAMETER without it."""
    until = params.epoch_ms(body, "until")
    if until is None:
        raise DomainError("MISSING_PARAMETER", "until is required.", parameter="until")
    return Exclude(user_id, until)
