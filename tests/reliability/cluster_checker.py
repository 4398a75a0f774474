"""A Jepsen-style checker for the cluster's scenarios (issue 22 §5): from the client side's
history (every request and what it was told; every broadcast each subscriber received)
and the database read afterwards, the problems found, and the figures.

What must hold:
- every confirmed request's effect is stored exactly once; a refused one's is absent; an
  unknown one's (UNAVAILABLE, REQUEST_TIMED_OUT, ACTOR_RESTARTED, no answer) at most once;
- the books balance (the audit's problems, read by the caller);
- each pool is settled at most once, and every pool whose resolution was confirmed once;
- no epoch of the owner lease wrote after the next epoch's first write (``fence_log``);
- ``seq`` never goes back on any subscriber, within a game;
- every 362 (a pool resolved) reached every subscriber that stayed connected throughout.

Pure: no trio, no database; the scenario gathers ``Stored`` and calls ``check``.
"""

from __future__ import annotations

import enum
import statistics
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from storage.leases import EpochWrites

#: What a request may honestly be told when the node it went to, or the owner behind it,
#: died under it: it may or may not have been applied.
UNKNOWN_CODES = frozenset({"UNAVAILABLE", "REQUEST_TIMED_OUT", "ACTOR_RESTARTED"})
#: The broadcast of a resolved pool.
RESOLVED = 362


class Outcome(enum.Enum):
    CONFIRMED = "confirmed"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Request:
    """One request: ``key`` names its effect in the database (the caller's choice, e.g.
    user, pool and a stake unique to the request), ``outcome`` what the client was told."""

    key: Hashable
    outcome: Outcome
    said: str = ""


@dataclass(frozen=True)
class Broadcast:
    """A broadcast as one subscriber received it."""

    game_id: str
    seq: int
    res: int
    pool_id: str = ""


@dataclass
class Subscriber:
    """What one subscriber received, in order; ``stayed``: connected from before the first
    request to after the last broadcast, without a reconnection."""

    name: str
    received: list[Broadcast] = field(default_factory=list)
    stayed: bool = True


@dataclass
class History:
    """The client side's record of a scenario."""

    requests: list[Request] = field(default_factory=list)
    subscribers: list[Subscriber] = field(default_factory=list)
    #: pools whose resolution (an event, 366) was confirmed
    resolved: set[str] = field(default_factory=set)
    #: seconds from a kill of the owner to the first request accepted after it
    failovers: list[float] = field(default_factory=list)

    def record(self, key: Hashable, outcome: Outcome, said: str = "") -> None:
        self.requests.append(Request(key, outcome, said))

    def subscriber(self, name: str) -> Subscriber:
        found = Subscriber(name)
        self.subscribers.append(found)
        return found


@dataclass
class Stored:
    """The database afterwards: how many times each request's effect is there (keys as the
    history's), the audit's problems, each pool's settle transactions, the fence log."""

    effects: Counter[Hashable]
    audit: list[str] = field(default_factory=list)
    settlements: Counter[str] = field(default_factory=Counter)
    fence_log: list[EpochWrites] = field(default_factory=list)


@dataclass
class Verdict:
    """The problems (empty: the history is sound) and the figures."""

    problems: list[str]
    lost: int
    stale_writes: int
    confirmed: int
    refused: int
    unknown: int
    failovers: list[float]
    #: what the requests not confirmed were told, and how often
    said: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        told = ", ".join(f"{text} {n}" for text, n in self.said.most_common())
        return (
            f"confirmed {self.confirmed}, refused {self.refused}, unknown {self.unknown} "
            f"(told: {told or 'nothing else'}), lost {self.lost}, "
            f"stale_writes {self.stale_writes}, "
            f"{failover_line(self.failovers)}"
        )


def failover_line(seconds: list[float]) -> str:
    """``failover s p50 X max Y (n N)``, or that there was none."""
    if not seconds:
        return "failover none"
    p50, top = statistics.median(seconds), max(seconds)
    return f"failover s p50 {p50:.2f} max {top:.2f} (n {len(seconds)})"


def check(history: History, stored: Stored) -> Verdict:
    """Every rule of the module's docstring over ``history`` and ``stored``."""
    effects = effect_problems(history.requests, stored.effects)
    stale = stale_writes(stored.fence_log)
    problems = [
        *effects,
        *(f"audit: {problem}" for problem in stored.audit),
        *settlement_problems(history.resolved, stored.settlements),
        *stale,
        *seq_problems(history.subscribers),
        *missed_resolutions(history.subscribers),
    ]
    outcomes = Counter(request.outcome for request in history.requests)
    return Verdict(
        problems,
        lost=sum(problem.startswith("lost") for problem in effects),
        stale_writes=len(stale),
        confirmed=outcomes[Outcome.CONFIRMED],
        refused=outcomes[Outcome.REFUSED],
        unknown=outcomes[Outcome.UNKNOWN],
        failovers=list(history.failovers),
        said=Counter(r.said for r in history.requests if r.outcome is not Outcome.CONFIRMED),
    )


def effect_problems(requests: Iterable[Request], effects: Counter[Hashable]) -> list[str]:
    """Confirmed: stored once; refused: absent; unknown: at most once; nothing stored that
    no request asked for. A confirmed request stored nowhere is ``lost``."""
    problems = []
    asked = Counter(request.key for request in requests)
    for request in requests:
        found = effects[request.key]
        if asked[request.key] > 1:
            problems.append(f"history: key {request.key!r} used by {asked[request.key]} requests")
        elif request.outcome is Outcome.CONFIRMED and found == 0:
            problems.append(f"lost: {request.key!r} was confirmed and is not stored")
        elif request.outcome is Outcome.REFUSED and found:
            problems.append(f"phantom: {request.key!r} was refused ({request.said}) but stored")
        elif found > 1:
            problems.append(f"duplicate: {request.key!r} stored {found} times")
    problems += [f"stray: {key!r} stored, never asked" for key in effects if key not in asked]
    return problems


def settlement_problems(resolved: set[str], settlements: Counter[str]) -> list[str]:
    """Each pool settled at most once; every pool whose resolution was confirmed, once."""
    problems = [f"pool {pool}: settled {n} times" for pool, n in settlements.items() if n > 1]
    problems += [f"pool {pool}: resolved, never settled" for pool in resolved - set(settlements)]
    return problems


def stale_writes(log: list[EpochWrites]) -> list[str]:
    """Each epoch whose last committed write came after a later epoch's first one."""
    problems = []
    for i, earlier in enumerate(log):
        later = [e for e in log[i + 1 :] if e.epoch > earlier.epoch]
        overtaken = [e for e in later if e.first_ms < earlier.last_ms]
        if overtaken:
            problems.append(
                f"stale write: epoch {earlier.epoch} ({earlier.node_id}) wrote at "
                f"{earlier.last_ms}, after epoch {overtaken[0].epoch}'s first write at "
                f"{overtaken[0].first_ms}"
            )
    return problems


def seq_problems(subscribers: Iterable[Subscriber]) -> list[str]:
    """A subscriber that got a broadcast of a game whose seq is not above the last one it
    got of that game."""
    problems = []
    for subscriber in subscribers:
        last: dict[str, int] = {}
        for broadcast in subscriber.received:
            before = last.get(broadcast.game_id)
            if before is not None and broadcast.seq <= before:
                problems.append(
                    f"{subscriber.name}: seq {broadcast.seq} (res {broadcast.res}) after "
                    f"{before} in game {broadcast.game_id}"
                )
            last[broadcast.game_id] = broadcast.seq
    return problems


def missed_resolutions(subscribers: Iterable[Subscriber]) -> list[str]:
    """Every pool resolved (a 362 any subscriber got) must have reached every subscriber
    that stayed connected."""
    subscribers = list(subscribers)
    resolved = {b.pool_id for s in subscribers for b in s.received if b.res == RESOLVED}
    problems = []
    for subscriber in subscribers:
        if not subscriber.stayed:
            continue
        got = {b.pool_id for b in subscriber.received if b.res == RESOLVED}
        problems += [f"{subscriber.name}: no 362 for pool {pool}" for pool in resolved - got]
    return problems
