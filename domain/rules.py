"""Pool rules operators sell (decisions §11): a minimum dividend, a guarantee, a carry-over
of a pot nobody won, and a delay before an in-play bet is placed.

A game holds the defaults of its pools; a pool holds its own. The defaults keep the
behaviour of a pool without rules: winners get at least their stake back, nothing is
guaranteed, an unwon pot is refunded and a bet is placed at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from domain import params
from domain.errors import DomainError
from domain.money import parse_amount, parse_currency, parse_factor, rate_text, stored_rate, to_wire

__all__ = [
    "MAX_BET_DELAY_MS",
    "MAX_MIN_DIVIDEND",
    "RULE_FIELDS",
    "PoolRules",
    "parse_rules",
]

#: The longest an in-play bet may be held before it is placed (decisions §11).
MAX_BET_DELAY_MS = 15_000
#: The highest minimum dividend: a house promising more than 100 times the stake is a typo.
MAX_MIN_DIVIDEND = Fraction(100)
#: Decimals a minimum dividend may have (1.1, 1.02, 1.025).
MIN_DIVIDEND_PLACES = 4
#: The request fields that set rules (op 370/3701/373 for a game, 385 for a pool).
#: Why remote wallet mode takes no pool with a bet delay (decisions §11): the operator
#: debits a bet when it is placed, and holding its money for a delay is not built.
REMOTE_DELAY = (
    "A bet delay is not available in remote wallet mode: the operator debits each bet "
    "when it is placed."
)
#: The role of the users the operator lets commit the house's money: only they open a
#: pool with a guarantee or a minimum dividend above 1 (a game admin resolves pools, so
#: any other could pay the house's money to an accomplice's cent).
HOUSE_ROLE = "house"
RULE_FIELDS = ("min_dividend", "guarantee", "guarantee_currency", "carry_over", "bet_delay_ms")


@dataclass(frozen=True)
class PoolRules:
    """What a pool promises beyond plain parimutuel: amounts in the pool's minor units."""

    min_dividend: Fraction = Fraction(1)
    guarantee: int | None = None
    carry_over: bool = False
    bet_delay_ms: int = 0

    def house_money(self) -> str | None:
        """The rule by which the pool can cost the house, or None: its guarantee, or a
        minimum dividend above 1."""
        if self.guarantee:
            return "guarantee"
        if self.min_dividend > 1:
            return "min_dividend"
        return None

    def to_doc(self) -> dict[str, Any]:
        return {
            "min_dividend": rate_text(self.min_dividend),
            "guarantee": self.guarantee,
            "carry_over": self.carry_over,
            "bet_delay_ms": self.bet_delay_ms,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> PoolRules:
        """The stored rules; a document written before rules existed has the defaults."""
        doc = doc or {}
        return cls(
            stored_rate(doc.get("min_dividend", "1")),
            doc.get("guarantee"),
            bool(doc.get("carry_over", False)),
            int(doc.get("bet_delay_ms", 0)),
        )

    def wire(self, exponent: int) -> dict[str, Any]:
        """The rules as 352, 342 and the listings show them."""
        return {
            "min_dividend": Decimal(rate_text(self.min_dividend)),
            "guarantee": None if self.guarantee is None else to_wire(self.guarantee, exponent),
            "carry_over": self.carry_over,
            "bet_delay_ms": self.bet_delay_ms,
        }


def parse_rules(
    fields: dict[str, Any], currency: str, exponent: int, defaults: PoolRules
) -> PoolRules:
    """The rules a request sets, each field absent or null keeping ``defaults``.

    Raises ``INVALID_PARAMETER`` naming the field: a minimum dividend outside 1..100 or
    with more than 4 decimals, a guarantee that is not a positive amount of the currency
    (or names another currency), a delay outside 0..15,000 ms, a carry-over not boolean.
    """
    rules = defaults
    if not params.is_null(fields.get("min_dividend")):
        rules = replace(
            rules,
            min_dividend=parse_factor(
                fields["min_dividend"],
                field="min_dividend",
                minimum=Fraction(1),
                maximum=MAX_MIN_DIVIDEND,
                places=MIN_DIVIDEND_PLACES,
            ),
        )
    if not params.is_null(fields.get("guarantee")):
        named = parse_currency(
            fields.get("guarantee_currency"), field="guarantee_currency", default=currency
        )
        if named != currency:
            raise DomainError(
                "INVALID_PARAMETER",
                f"The guarantee is paid in the pool's currency, {currency}, not {named}.",
                parameter="guarantee_currency",
            )
        amount = parse_amount(
            fields["guarantee"], exponent, field="guarantee", code="INVALID_PARAMETER"
        )
        rules = replace(rules, guarantee=amount)
    if not params.is_null(fields.get("carry_over")):
        rules = replace(rules, carry_over=params.boolean(fields, "carry_over"))
    delay = params.integer(fields, "bet_delay_ms", minimum=0, maximum=MAX_BET_DELAY_MS)
    if delay is not None:
        rules = replace(rules, bet_delay_ms=delay)
    return rules


def check_house_role(rules: PoolRules, roles: Collection[str]) -> None:
    """NOT_AUTHORIZED, naming the rule, when ``rules`` can cost the house and ``roles``
    (the pool's creator's) lack ``HOUSE_ROLE``."""
    rule = rules.house_money()
    if rule is not None and HOUSE_ROLE not in roles:
        raise DomainError(
            "NOT_AUTHORIZED",
            f"Only a user with the {HOUSE_ROLE} role may open a pool whose {rule} can cost "
            "the house (set by the pool or by its game's defaults).",
            parameter=rule,
        )
