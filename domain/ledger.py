"""Double-entry ledger rules: every movement of money is a set of lines summing to zero.

A line credits (positive) or debits (negative) one account's balance in one currency.
Storage writes the lines of one transaction atomically; this module only decides which
lines a movement produces and checks the books.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from domain.parimutuel import Settlement

__all__ = [
    "HOUSE",
    "OPERATOR",
    "WALLET_PREFIX",
    "Line",
    "audit",
    "balances",
    "check_balanced",
    "escrow",
    "missing_balance",
    "settlement_lines",
    "transfer",
    "wallet",
    "wrong_balance",
]

HOUSE = "house"
OPERATOR = "operator"

#: A player's wallet account is this prefix and the user id.
WALLET_PREFIX = "wallet:"
#: Account prefixes whose balance may never go below zero (the house may: it covers minus
#: pools). Of these, the wallets also have their total stored in the ``balances`` table,
#: where the database itself refuses an overdraft (docs/decisions.md, "Money").
NON_NEGATIVE_PREFIXES = (WALLET_PREFIX, "escrow:")


@dataclass(frozen=True)
class Line:
    """One leg of a transaction; ``amount`` in signed minor units, positive = credit."""

    account: str
    currency: str
    amount: int

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"ledger amounts are integer minor units, got {self.amount!r}")


def wallet(user_id: int) -> str:
    """A user's wallet account (one balance per currency): ``"wallet:17"``."""
    return f"{WALLET_PREFIX}{user_id}"


def escrow(pool_id: str) -> str:
    """The account holding a pool's stakes until it settles: ``"escrow:<pool id>"``."""
    return f"escrow:{pool_id}"


def transfer(source: str, dest: str, currency: str, amount: int) -> list[Line]:
    """Move ``amount`` from ``source`` to ``dest``: a debit line and a credit line."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"a transfer needs a positive integer amount, got {amount!r}")
    if source == dest:
        raise ValueError(f"a transfer needs two different accounts, got {source!r} twice")
    return [Line(source, currency, -amount), Line(dest, currency, amount)]


def check_balanced(lines: Sequence[Line]) -> None:
    """Raise ``ValueError`` unless the lines sum to zero in every currency."""
    sums: dict[str, int] = defaultdict(int)
    for line in lines:
        sums[line.currency] += line.amount
    off = {cur: total for cur, total in sums.items() if total}
    if off:
        raise ValueError(f"unbalanced ledger lines: {off}")


def settlement_lines(
    pool_id: str,
    currency: str,
    settlement: Settlement,
    user_of_bet: Mapping[str, int],
    successor: str | None = None,
) -> list[Line]:
    """The one balanced transaction that settles a pool and empties its escrow.

    The house's contributions come in first, each its own transfer (the minimum-dividend
    cover, then the guarantee's top-up); then escrow pays each user (aggregated, by user
    id); then the takeout and the breakage go to the house as separate lines so each
    stays visible; last a carry-over moves to the ``successor``'s escrow, or carried-in
    money nobody can take goes to the house. ``ValueError`` for a carry-over without a
    successor.
    """
    pot = escrow(pool_id)
    lines: list[Line] = []
    for contribution in (settlement.house_cover, settlement.guarantee_topup):
        if contribution:
            lines += transfer(HOUSE, pot, currency, contribution)
    per_user = _payouts_by_user(settlement, user_of_bet)
    for user_id in sorted(per_user):
        if per_user[user_id]:
            lines += transfer(pot, wallet(user_id), currency, per_user[user_id])
    if settlement.takeout:
        lines += transfer(pot, HOUSE, currency, settlement.takeout)
    if settlement.breakage:
        lines += transfer(pot, HOUSE, currency, settlement.breakage)
    if settlement.carried_out:
        if successor is None:
            raise ValueError("a carry-over needs the successor pool")
        lines += transfer(pot, escrow(successor), currency, settlement.carried_out)
    if settlement.unclaimed:
        lines += transfer(pot, HOUSE, currency, settlement.unclaimed)
    check_balanced(lines)
    return lines


def _payouts_by_user(settlement: Settlement, user_of_bet: Mapping[str, int]) -> dict[int, int]:
    """The settlement's payouts summed by user id; ``ValueError`` for a bet of no known
    user, or (unless it is a money return) totals that differ from its winners."""
    per_user: dict[int, int] = defaultdict(int)
    for bet_id, amount in settlement.payouts.items():
        if bet_id not in user_of_bet:
            raise ValueError(f"no user known for bet {bet_id!r}")
        per_user[user_of_bet[bet_id]] += amount
    if not settlement.is_money_return and dict(per_user) != settlement.winners:
        raise ValueError("settlement winners do not match its payouts")
    return dict(per_user)


def balances(
    lines: Iterable[Line | tuple[str, str, str, int] | tuple[str, str, int]],
) -> dict[tuple[str, str], int]:
    """``(account, currency) -> balance`` by summing lines.

    Takes :class:`Line` objects, ``(account, currency, amount)`` or stored rows
    ``(tx_id, account, currency, amount)``.
    """
    out: dict[tuple[str, str], int] = defaultdict(int)
    for row in lines:
        if isinstance(row, Line):
            account, currency, amount = row.account, row.currency, row.amount
        elif len(row) == 4:
            _, account, currency, amount = row
        else:
            account, currency, amount = row
        out[(account, currency)] += amount
    return dict(out)


def audit(
    lines: Iterable[tuple[str, str, str, int]],
    stored: Mapping[tuple[str, str], object] | None = None,
) -> list[str]:
    """Check stored rows ``(tx_id, account, currency, amount)``; returns the problems found.

    An empty list means the books balance: every transaction sums to zero per currency and
    no wallet or escrow balance is negative (the house may be: it covers minus pools).
    With ``stored`` (the ``balances`` table: ``(account, currency) -> balance``), each
    stored balance must also equal its account's ledger total, and every wallet whose
    total is not zero must have one.
    """
    rows = list(lines)
    problems: list[str] = []
    per_tx: dict[tuple[str, str], int] = defaultdict(int)
    for tx_id, _account, currency, amount in rows:
        if isinstance(amount, bool) or not isinstance(amount, int):
            problems.append(f"transaction {tx_id} has a non-integer amount {amount!r}")
            continue
        per_tx[(tx_id, currency)] += amount
    for (tx_id, currency), total in per_tx.items():
        if total:
            problems.append(f"transaction {tx_id} does not balance in {currency}: off by {total}")
    valid = [r for r in rows if isinstance(r[3], int) and not isinstance(r[3], bool)]
    totals = balances(valid)
    for (account, currency), balance in sorted(totals.items()):
        if balance < 0 and account.startswith(NON_NEGATIVE_PREFIXES):
            problems.append(f"account {account} is negative in {currency}: {balance}")
    if stored is not None:
        problems += stored_balance_problems(totals, stored)
    return problems


def stored_balance_problems(
    totals: Mapping[tuple[str, str], int], stored: Mapping[tuple[str, str], object]
) -> list[str]:
    """Where the stored balances disagree with the ledger's ``totals``, by account and
    currency: a stored balance that is not its account's total, a wallet with a total
    other than zero and no stored balance."""
    problems: list[str] = []
    wallets = {key for key, total in totals.items() if total and key[0].startswith(WALLET_PREFIX)}
    for account, currency in sorted(wallets | set(stored)):
        total = totals.get((account, currency), 0)
        if (account, currency) not in stored:
            problems.append(missing_balance(account, currency, total))
        elif stored[(account, currency)] != total:
            problems.append(wrong_balance(account, currency, stored[(account, currency)], total))
    return problems


def missing_balance(account: str, currency: str, total: int) -> str:
    """The audit's words for a wallet with a ledger total and no stored balance."""
    return f"account {account} has no stored balance in {currency}: its ledger total is {total}"


def wrong_balance(account: str, currency: str, stored: object, total: int) -> str:
    """The audit's words for a stored balance that is not its account's ledger total."""
    return (
        f"account {account} has a stored balance of {stored!r} in {currency}: "
        f"its ledger total is {total}"
    )
