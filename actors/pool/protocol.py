"""The pool actor's protocol, in one place: the messages it takes (each declares its
reply: ``class PlaceBet(Ask[BetPlaced | BetHeld])``), the results it answers with, and
the events it publishes to its game's subscribers. A settlement's event also answers the
request that settled it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from actors.hub import Broadcast
from actors.remote import Debit
from actors.wallet import StakeItem
from domain.errors import DomainError
from domain.pool import Bet
from kit.runtime import Ask, Request

# -- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceBet(Ask["BetPlaced | BetHeld"]):
    user_id: int
    target: Any
    amount: Any
    ip: str = ""  # the bettor's address, for the operator's /bets in remote wallet mode


@dataclass(frozen=True, slots=True)
class GetDistribution(Ask["PoolDistribution"]):
    user_id: int
    everything: bool


@dataclass(frozen=True, slots=True)
class Describe(Ask["PoolDescription"]):
    """The pool's listing entry for a user (with their bets, or every bet)."""

    user_id: int
    everything: bool


@dataclass(frozen=True, slots=True)
class Info(Ask["PoolInfo"]):
    """What a game needs to know of its pool (cheap: no bets)."""


@dataclass(frozen=True, slots=True)
class Announcement(Ask["PoolOpened"]):
    """The full pool as res 352 shows it."""


@dataclass(frozen=True, slots=True)
class Block(Ask["PoolBlocked | PoolAllowed"]):
    at: int | None = None


@dataclass(frozen=True, slots=True)
class Allow(Ask["PoolBlocked | PoolAllowed"]):
    at: int | None = None


@dataclass(frozen=True, slots=True)
class ResolveByEvent(Ask["PoolResolved | PoolExpired | None"]):
    target_id: str
    happened_at: int


@dataclass(frozen=True, slots=True)
class HaltForEvent(Ask[None]):
    """An event that resolves this pool is committed (its ``pending_resolutions`` row):
    take no more bets, and settle on ``ResolveByEvent`` or, failing that, by itself."""

    target_id: str
    happened_at: int


@dataclass(frozen=True, slots=True)
class ResolveByHand(Ask["PoolResolved | PoolExpired"]):
    target: Any


@dataclass(frozen=True, slots=True)
class Void(Ask["PoolResolved | PoolExpired"]):
    pass


@dataclass(frozen=True, slots=True)
class CloseForGame(Ask["PoolClosure"]):
    """The game closes: parimutuel pools resolve to none (time-based ones expire),
    binary pools are blocked. Answers a ``PoolClosure``."""


@dataclass(frozen=True, slots=True)
class SlipStake:
    """One bet of a betslip for this pool: its place in the slip, target and exact stake
    (major units), and the slip's own columns of its bet row."""

    index: int
    target: Any
    stake: Decimal
    columns: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reserve(Ask["Reserved"]):
    """Check a betslip's bets for this pool as bets are checked, and hold them until
    ``Release``: meanwhile they count for the one-target rule, and the pool settles only
    after it knows whether they were placed. ``until`` (trio time) is when the desk stops
    trying to commit them. Answers ``Reserved``."""

    slip_key: str
    user_id: int
    game_id: str
    action: str
    stakes: list[SlipStake]
    until: float


@dataclass(frozen=True, slots=True)
class Release(Ask[None]):
    """The desk's decision on a reserved slip: placed (the bets join the book) or not;
    None when the desk could not learn it (the pool then decides it from storage)."""

    slip_key: str
    placed: bool | None


# -- results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reserved:
    """What the pool holds for a slip (its bets with their rows and stake items), and
    the refusal of each bet it could not take, by the bet's place in the slip."""

    pool_id: str
    exponent: int
    held: list[tuple[int, Bet, StakeItem]]
    refusals: list[tuple[int, DomainError]]


@dataclass(frozen=True, slots=True)
class PoolDistribution:
    """The answer to ``GetDistribution`` (res 360's fields, see
    ``transport.presenters.distribution_fields``): ``omitted_bets`` counts the bets left
    out of ``distribution``."""

    pool_id: str
    target_level: int
    distribution: dict[str, Any]
    omitted_bets: int = 0


@dataclass(frozen=True, slots=True)
class PoolDescription:
    """The answer to ``Describe``: the pool's listing entry (as the 353 to 3535 lists
    show it), whether it is open and whether the user bet in it."""

    listing: dict[str, Any]
    open: bool
    has_bet: bool


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """What a game needs to know of its pool (the answer to ``Info``)."""

    open: bool
    action: str
    pool_type: int
    start_at: int
    targets: list[str]
    game_id: str


@dataclass(frozen=True, slots=True)
class BetPlaced:
    """A bet committed: its stake in minor units of the pool's currency."""

    pool_id: str
    bet_id: str
    target: str
    amount: int
    currency: str
    exponent: int


@dataclass(frozen=True, slots=True)
class BetHeld:
    """A bet held for the pool's bet delay (decisions §11): ``decision`` is answered
    once, at ``due_at`` (epoch ms), with its ``BetPlaced`` or its refusal."""

    pool_id: str
    bet_id: str
    due_at: int
    decision: Request


class PoolClosure(Enum):
    """What closing its game did to a pool."""

    ALREADY_SETTLED = "already settled"
    SETTLED = "settled"
    BLOCKED = "blocked"  # a binary pool: it waits for its admin to resolve it


# -- events (to the game's subscribers; a settlement's also answers its request) -----


class PoolOpened(Broadcast):
    """The full pool, when it opens."""


class BetsDistributed(Broadcast):
    """The bets since the last such event, and the pool's totals now (coalesced)."""


class PoolResolved(Broadcast):
    """The pool settled: winners, losers, refunds."""


class PoolExpired(Broadcast):
    """A time-based pool settled at its finish time."""


class PoolBlocked(Broadcast):
    """No bets are taken (now, or from ``blocked_at`` when scheduled)."""


class PoolAllowed(Broadcast):
    """Bets are taken again."""


PoolSettled = PoolResolved | PoolExpired


@dataclass(frozen=True, slots=True)
class Debited(Ask[None]):
    """The pool's note to itself (remote wallet mode): the operator answered the debits
    of checked bets (``accepted``: each request with its bet), started outside the serve
    loop; the pool now commits the debited ones and answers each request."""

    accepted: list[tuple[Request, Bet]]
    debits: dict[str, Debit]  # by bet id
    refusals: dict[str, DomainError]  # by bet id: why its debit could not be asked
