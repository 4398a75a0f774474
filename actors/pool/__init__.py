"""The pool actor, one per betting pool, as a package:

- ``protocol``: what it takes and answers, and the events it publishes (one place);
- ``changes``: the rows it commits, built from the pool as data;
- ``settlement``: the pay-out and its rows (pure, run off the event loop);
- ``reservations``: what it holds outside its book (slips, debits in flight, delays);
- ``actor``: ``PoolActor``, the kit's hooks and one small handler per message.

Callers import from here (``from actors import pool``); the book, block/allow and the
pending resolution are ``domain.pool``'s."""

from actors.pool.actor import HANDLERS, MAX_BATCH, PoolActor
from actors.pool.changes import broadcast_change, pool_row, slip_checks
from actors.pool.protocol import (
    Allow,
    Announcement,
    BetHeld,
    BetPlaced,
    BetsDistributed,
    Block,
    CloseForGame,
    Debited,
    Describe,
    GetDistribution,
    HaltForEvent,
    Info,
    PlaceBet,
    PoolAllowed,
    PoolBlocked,
    PoolClosure,
    PoolDescription,
    PoolDistribution,
    PoolExpired,
    PoolInfo,
    PoolOpened,
    PoolResolved,
    PoolSettled,
    Release,
    Reserve,
    Reserved,
    ResolveByEvent,
    ResolveByHand,
    SlipStake,
    Void,
)
from actors.pool.reservations import NO_USER, Delayed, Reservations
from actors.pool.settlement import settlement_changes
from storage.pools import load_pool

__all__ = [
    "HANDLERS",
    "MAX_BATCH",
    "NO_USER",
    "Allow",
    "Announcement",
    "BetHeld",
    "BetPlaced",
    "BetsDistributed",
    "Block",
    "CloseForGame",
    "Debited",
    "Delayed",
    "Describe",
    "GetDistribution",
    "HaltForEvent",
    "Info",
    "PlaceBet",
    "PoolActor",
    "PoolAllowed",
    "PoolBlocked",
    "PoolClosure",
    "PoolDescription",
    "PoolDistribution",
    "PoolExpired",
    "PoolInfo",
    "PoolOpened",
    "PoolResolved",
    "PoolSettled",
    "Release",
    "Reservations",
    "Reserve",
    "Reserved",
    "ResolveByEvent",
    "ResolveByHand",
    "SlipStake",
    "Void",
    "broadcast_change",
    "load_pool",
    "pool_row",
    "settlement_changes",
    "slip_checks",
]
