"""Fan-out of what actors announce: to a game's subscribers, and to a user's connections.

Actors publish domain events (the ``Broadcast`` kinds declared beside each actor); they
never see frames or connections. A subscriber is an address: a function that queues bytes
without waiting (a connection's bounded outbox closes the client when it is full, so a
slow client never slows an actor or the others). The transport gives the hub its
``render``: each event becomes bytes once, and the same bytes go to every recipient.

Each game's broadcasts are numbered (``seq``, decisions §9) and the latest are kept, so a
client that dropped can join again and receive exactly what it missed. The numbers a
game may use are reserved in storage by its game actor before the hub hands them out
(``reserve``), so they never go back, across restarts too.

A big audience is not served in the publishing actor's turn: the hub's own fan-out task
(``run``) delivers its broadcasts a slice at a time, so a game with 10,000 subscribers
costs its actor one render and one append, and bets keep flowing between the slices.

In a cluster (docs/cluster.md, "Broadcasts on every node") the owner's hub hands each
message it sends to its ``mirror`` (a ``Mirrored``: the same bytes, for the other nodes),
and an edge's hub takes them back with ``deliver_remote`` / ``deliver_user``: it keeps
them for resuming as the owner does, drops what it already delivered, and closes a
game's subscribers (``CLOSE_GAP``) when some of its broadcasts are lost for good. On a
single node ``mirror`` is None and nothing of this costs anything.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import trio

from domain.errors import DomainError

log = logging.getLogger(__name__)

#: Where a subscriber's messages go: queues them without waiting.
Address = Callable[[bytes], None]
#: How the transport renders an event once: ``render(event, header)``, where ``header``
#: holds the response_header fields the hub adds (``game_id``, and ``seq`` for a
#: broadcast all of the game's subscribers get).
Render = Callable[[object, dict[str, Any]], bytes]

#: A game's broadcasts kept for resuming: at least this many, and at least those of the
#: last ``HISTORY_SECONDS`` (decisions §9).
HISTORY_COUNT = 10_000
HISTORY_SECONDS = 60.0
#: How many numbers a game actor reserves at a time; it reserves again when half are used.
RESERVE_AHEAD = 100_000
#: A broadcast goes out in the publisher's turn when it has at most this many recipients
#: and nothing waits before it; a bigger audience is handed to the fan-out task.
INLINE_ADDRESSES = 64
#: Deliveries the fan-out task makes before it lets other tasks run (about a millisecond).
DELIVERIES_PER_SLICE = 256
#: What may wait for the fan-out task: deliveries (a fraction of a second of work at a few
#: microseconds each, so that subscribers lag by no more than that), and bytes (its
#: broadcasts' and 8 an address of their recipient lists). Past either, the publisher
#: delivers the oldest itself until the queue is back under both (nothing is lost, the
#: order is kept, and a loop too busy to fan out slows the publishers down).
QUEUE_DELIVERIES = 100_000
QUEUE_BYTES = 16 * 1024 * 1024
#: How an edge closes a game's subscribers when broadcasts they should have had are lost
#: for good (1012, "service restart": reconnect and join again with ``since_seq``).
CLOSE_GAP = (1012, "broadcasts lost: join again")


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Something an actor announces; ``fields`` is its shape in the seeds (decisions §1)."""

    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Mirrored:
    """What the owner's hub sent, as the other nodes get it (their hubs deliver ``data``,
    the same bytes). Three kinds: a numbered broadcast (``k`` 0: ``seq``, and ``prev``,
    this run's previous numbered one of the game, 0 for its first); an unnumbered one to
    some of the game's users (``k`` >= 1: the k-th after broadcast ``seq``, to
    ``user_ids``); a push to one user's connections (``game_id`` None, ``user_ids`` the
    user)."""

    data: bytes
    game_id: str | None = None
    seq: int = 0
    prev: int = 0
    k: int = 0
    user_ids: tuple[int, ...] = ()


#: The owner hub's copy of what it sends, for the other nodes (cluster/broadcasts.py).
Mirror = Callable[[Mirrored], None]


class Delivery(Enum):
    """What an edge's hub did with a remote entry (``Hub.deliver_remote``)."""

    DELIVERED = "delivered"
    DUPLICATE = "duplicate"  # at or below what was delivered: dropped
    GAP = "gap"  # broadcasts before it are missing: not delivered, mend and try again


@dataclass(frozen=True, slots=True)
class Joined:
    """A join's answer: the game's latest ``seq`` and, when the client gave ``since_seq``,
    whether every broadcast after it follows (``resumed``)."""

    game_id: str
    seq: int
    resumed: bool | None = None
    viewers: int = 0  # subscribers, this one included: the page's count to start from


@dataclass(slots=True)
class _Channel:
    """One game's subscribers, its numbering and the broadcasts kept for resuming."""

    seq: int  # the last number used
    reserved: int  # the highest number storage holds as reserved
    on_low: Callable[[], bool]  # asks the game actor to reserve more; False: not now
    asked: bool = False
    subscribers: set[Address] = field(default_factory=set)
    #: (seq, prev, trio time, bytes), oldest first; ``prev`` is the seq its sender sent
    #: before it (0: the first of an owner's run, which follows whatever came before)
    history: deque[tuple[int, int, float, bytes]] = field(default_factory=deque)
    run_last: int = 0  # the seq this hub last sent in its run (the next one's ``prev``)
    k: int = 0  # unnumbered messages sent since broadcast ``seq``
    remote: bool = False  # an edge's copy: fed by ``deliver_remote``, not numbered here
    cursor: tuple[int, int] = (0, 0)  # an edge's copy: the last stream id (seq, k) taken


class Hub:
    """Who listens to which game, which addresses belong to which user, and each game's
    numbered broadcasts."""

    def __init__(self, render: Render, *, adopt: Callable[[bytes], bytes] = bytes) -> None:
        """``adopt`` turns bytes another node rendered into what ``render`` returns (the
        transport's frame type), so remote bytes are delivered as they came."""
        self._render = render
        self._adopt = adopt
        #: the owner's copy of everything it sends, for the other nodes (None: one node)
        self.mirror: Mirror | None = None
        self._channels: dict[str, _Channel] = {}
        self._users: dict[int, set[Address]] = defaultdict(set)
        #: how to close an address's connection (for ``CLOSE_GAP``), given by ``connect``
        self._closers: dict[Address, Callable[[int, str], None]] = {}
        self._joined: dict[Address, set[str]] = defaultdict(set)  # address -> its games
        #: broadcasts for the fan-out task: [recipients at publication, bytes, next index]
        self._queue: deque[list[Any]] = deque()
        self._queued_bytes = 0
        self._queued_deliveries = 0
        self._wake = trio.Event()
        self._fanning_out = False  # run() is running

    # -- users ------------------------------------------------------------------------

    def connect(
        self, user_id: int, address: Address, close: Callable[[int, str], None] | None = None
    ) -> None:
        """A connection of the user; ``close(code, reason)`` closes it (an edge closes a
        game's subscribers so that they resume when its broadcasts were lost)."""
        self._users[user_id].add(address)
        if close is not None:
            self._closers[address] = close

    def disconnect(self, user_id: int, address: Address) -> None:
        self._closers.pop(address, None)
        members = self._users.get(user_id)
        if members is not None:
            members.discard(address)
            if not members:
                del self._users[user_id]
        for game_id in self._joined.pop(address, ()):
            if channel := self._channels.get(game_id):
                channel.subscribers.discard(address)

    def to_user(self, user_id: int, event: object) -> None:
        addresses = self._users.get(user_id)
        if not addresses and self.mirror is None:
            return
        data = self._render(event, {})
        if self.mirror is not None:  # the user may be connected to another node
            self.mirror(Mirrored(data, user_ids=(user_id,)))
        for address in list(addresses or ()):
            address(data)

    def deliver_user(self, user_id: int, data: bytes) -> None:
        """Another node's push to a user (815): the same bytes to this node's connections
        of the user."""
        addresses = self._users.get(user_id)
        if addresses:
            data = self._adopt(data)
            for address in list(addresses):
                address(data)

    # -- numbering ----------------------------------------------------------------------

    def reserve(
        self, game_id: str, reserved_before: int, reserved: int, on_low: Callable[[], bool]
    ) -> None:
        """Storage now holds numbers up to ``reserved`` for the game (committed by its
        actor). A game new to this process starts above ``reserved_before``, the previous
        reservation, so it never reuses a number an earlier run may have sent."""
        channel = self._channels.get(game_id)
        if channel is None:
            self._channels[game_id] = _Channel(reserved_before, reserved, on_low)
            return
        if channel.remote:  # this node took the game over: a new run, above the last
            channel.remote = False
            channel.seq, channel.run_last, channel.k = max(channel.seq, reserved_before), 0, 0
        channel.reserved = max(channel.reserved, reserved)
        channel.on_low = on_low
        channel.asked = False

    def last_seq(self, game_id: str) -> int:
        channel = self._channels.get(game_id)
        return 0 if channel is None else channel.seq

    # -- games ------------------------------------------------------------------------

    def subscribed(self, game_id: str, address: Address) -> bool:
        channel = self._channels.get(game_id)
        return channel is not None and address in channel.subscribers

    def viewers(self, game_id: str) -> int:
        channel = self._channels.get(game_id)
        return 0 if channel is None else len(channel.subscribers)

    def join(
        self,
        game_id: str,
        address: Address,
        *,
        since_seq: int | None = None,
        greet: Callable[[Joined], None] | None = None,
        replay_bytes: int = 1 << 20,
    ) -> tuple[Joined, bool]:
        """Subscribe ``address`` (the bool: it was not subscribed yet). With ``since_seq``,
        ``greet`` gets the answer first, then the broadcasts numbered above ``since_seq``
        follow, oldest first, before any live one (nothing can come between: no await).
        ``resumed`` is False when they are no longer all kept, or would take more than
        ``replay_bytes``. Raises INVALID_PARAMETER for a ``since_seq`` past the latest."""
        channel = self._channel(game_id)
        missed: list[bytes] = []
        resumed = None
        if since_seq is not None:
            if since_seq > channel.seq:
                raise DomainError(
                    "INVALID_PARAMETER",
                    f"since_seq {since_seq} is past this game's latest seq ({channel.seq}).",
                    parameter="since_seq",
                )
            missed = _since(channel.history, since_seq, channel.seq, replay_bytes) or []
            resumed = since_seq == channel.seq or bool(missed)
        added = address not in channel.subscribers
        channel.subscribers.add(address)
        self._joined[address].add(game_id)
        joined = Joined(game_id, channel.seq, resumed, len(channel.subscribers))
        if greet is not None:
            greet(joined)
        for data in missed:
            address(data)
        return joined, added

    def leave(self, game_id: str, address: Address) -> bool:
        """Unsubscribe; False when ``address`` was not subscribed."""
        channel = self._channels.get(game_id)
        if channel is None or address not in channel.subscribers:
            return False
        channel.subscribers.discard(address)
        games = self._joined.get(address)
        if games is not None:
            games.discard(game_id)
            if not games:
                del self._joined[address]
        return True

    def to_game(self, game_id: str, event: object) -> None:
        """Number the broadcast, keep it for resuming, and queue the same bytes to every
        subscriber."""
        channel = self._channels.get(game_id)
        if channel is None:
            # no reservation: the game's actor is not running (a closed game's pool
            # sending its last result after a restart), so nobody is subscribed; a
            # client resuming later is told to read the game again
            log.info("game %s: broadcast with no seq reserved, not sent", game_id)
            return
        channel.seq += 1
        seq, prev = channel.seq, channel.run_last
        channel.run_last, channel.k = seq, 0
        data = self._render(event, {"game_id": game_id, "seq": seq})
        self._keep(channel, seq, prev, data)
        if self.mirror is not None:
            self.mirror(Mirrored(data, game_id, seq, prev))
        if channel.subscribers:
            self._fan_out(channel.subscribers, data)
        left = channel.reserved - channel.seq
        if left < 0:
            log.error("game %s: seq %d past its reservation", game_id, channel.seq)
        if not channel.asked and left < RESERVE_AHEAD // 2:
            channel.asked = channel.on_low()

    def _fan_out(self, addresses: set[Address], data: bytes) -> None:
        """The same bytes to every address of now (a later join does not get them): at
        once for a small audience, else through the fan-out task. A broadcast queued
        behind one not yet started for the same recipients joins its bytes, so a task
        that falls behind catches up with fewer, bigger writes."""
        if not self._fanning_out or (not self._queue and len(addresses) <= INLINE_ADDRESSES):
            for address in list(addresses):
                address(data)
            return
        recipients = tuple(addresses)
        last = self._queue[-1] if self._queue else None
        if last is not None and last[2] == 0 and last[0] == recipients:
            # the task is behind: one write per recipient for both (of the render's type)
            last[1] = type(last[1])(last[1] + data)
            self._queued_bytes += len(data)
        else:
            self._queue.append([recipients, data, 0])
            self._queued_bytes += len(data) + 8 * len(recipients)
            self._queued_deliveries += len(recipients)
            self._wake.set()
        # over a bound: the oldest, delivered here, until back under both
        while self._queued_bytes > QUEUE_BYTES or self._queued_deliveries > QUEUE_DELIVERIES:
            addresses, _, start = self._queue[0]
            self._deliver(len(addresses) - start)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The fan-out task: big audiences' broadcasts, oldest first, a slice at a time."""
        self._fanning_out = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self._queue:
                    self._deliver(DELIVERIES_PER_SLICE)
                    await trio.lowlevel.checkpoint()
        finally:
            self._fanning_out = False
            self._deliver(math.inf)  # what was queued still goes out (sends never wait)

    def _deliver(self, budget: float) -> None:
        """Up to ``budget`` deliveries from the head of the fan-out queue."""
        queue = self._queue
        while queue and budget > 0:
            item = queue[0]
            addresses, data, start = item
            end = int(min(len(addresses), start + budget))
            for i in range(start, end):
                addresses[i](data)
            budget -= end - start
            self._queued_deliveries -= end - start
            if end < len(addresses):
                item[2] = end
            else:
                queue.popleft()
                self._queued_bytes -= len(data) + 8 * len(addresses)

    def to_game_users(self, game_id: str, user_ids: Iterable[int], event: object) -> None:
        """Send an event to those of the game's subscribers that belong to ``user_ids``
        (its admins): not numbered, it is not for everyone."""
        channel = self._channels.get(game_id)
        if channel is None:
            return
        users = tuple(user_ids)
        targets = self._users_of(channel, users)
        if self.mirror is not None:
            channel.k += 1
            data = self._render(event, {"game_id": game_id})
            self.mirror(Mirrored(data, game_id, channel.seq, 0, channel.k, users))
        elif targets:
            data = self._render(event, {"game_id": game_id})
        for address in targets:
            address(data)

    def _users_of(self, channel: _Channel, user_ids: Iterable[int]) -> list[Address]:
        """The channel's subscribers that are connections of ``user_ids``."""
        return [
            address
            for user_id in user_ids
            for address in self._users.get(user_id, ())
            if address in channel.subscribers
        ]

    # -- an edge's copy of the owner's broadcasts ---------------------------------------

    def follow(self, game_id: str, seq: int) -> int:
        """An edge starts a copy of the game's broadcasts after ``seq`` (the owner's latest,
        when it has none yet); the copy's latest seq (it may have one already)."""
        channel = self._channels.get(game_id)
        if channel is None:
            channel = self._channels[game_id] = _remote_channel(seq)
        return channel.seq

    def cursor(self, game_id: str) -> tuple[int, int] | None:
        """The id (seq, k) of the last entry delivered from the game's stream; None when
        this node does not copy the game."""
        channel = self._channels.get(game_id)
        return channel.cursor if channel is not None and channel.remote else None

    def remote_games(self) -> list[str]:
        """The games this node copies that have local subscribers."""
        return [g for g, c in self._channels.items() if c.remote and c.subscribers]

    def forget_idle_copies(self, keep: Collection[str]) -> int:
        """Drop the copies of games (an edge's) with no local subscriber and nothing
        broadcast for ``HISTORY_SECONDS`` (nobody can resume from them any more), but
        those in ``keep`` (a join is waiting for them); how many were dropped."""
        idle_before = trio.current_time() - HISTORY_SECONDS
        idle = [
            game_id
            for game_id, channel in self._channels.items()
            if channel.remote
            and not channel.subscribers
            and game_id not in keep
            and (not channel.history or channel.history[-1][2] < idle_before)
        ]
        for game_id in idle:
            del self._channels[game_id]
        return len(idle)

    def deliver_remote(self, entry: Mirrored, *, gap_ok: bool = False) -> Delivery:
        """An entry of the game's stream (an edge): the same bytes to the local subscribers
        (or to those of ``entry.user_ids``), kept for resuming when numbered. Dropped when
        at or below what was delivered. A numbered one whose ``prev`` is above the last
        delivered is a GAP (not delivered) unless ``gap_ok`` (what is missing is lost for
        good): then the game's subscribers are closed (``CLOSE_GAP``) and it is taken."""
        assert entry.game_id is not None
        channel = self._channels.get(entry.game_id)
        if channel is None:
            channel = self._channels[entry.game_id] = _remote_channel(0)
        if not channel.remote:  # this node owns the game now: a late entry of the last
            return Delivery.DUPLICATE
        if (entry.seq, entry.k) <= channel.cursor or (not entry.k and entry.seq <= channel.seq):
            return Delivery.DUPLICATE
        data = self._adopt(entry.data)
        if entry.k:  # to some users; a numbered one missing before it shows in the next
            channel.cursor = (entry.seq, entry.k)
            for address in self._users_of(channel, entry.user_ids):
                address(data)
            return Delivery.DELIVERED
        if entry.prev > channel.seq:
            if not gap_ok:
                return Delivery.GAP
            self.close_subscribers(entry.game_id)
        channel.seq, channel.cursor = entry.seq, (entry.seq, 0)
        self._keep(channel, entry.seq, entry.prev, data)
        if channel.subscribers:
            self._fan_out(channel.subscribers, data)
        return Delivery.DELIVERED

    def close_subscribers(self, game_id: str) -> int:
        """Close the game's local subscribers (``CLOSE_GAP``) so that they resume; how many.
        An address with no way to close it is unsubscribed."""
        channel = self._channels.get(game_id)
        if channel is None:
            return 0
        closed = list(channel.subscribers)
        for address in closed:
            self.leave(game_id, address)
            if close := self._closers.get(address):
                close(*CLOSE_GAP)
        log.warning("game %s: broadcasts lost, %d subscribers closed", game_id, len(closed))
        return len(closed)

    def _channel(self, game_id: str) -> _Channel:
        channel = self._channels.get(game_id)
        if channel is None:  # a bug: a game's actor reserves before anything is sent
            raise RuntimeError(f"no seq reserved for game {game_id}")
        return channel

    @staticmethod
    def _keep(channel: _Channel, seq: int, prev: int, data: bytes) -> None:
        now = trio.current_time()
        history = channel.history
        history.append((seq, prev, now, data))
        while len(history) > HISTORY_COUNT and history[0][2] < now - HISTORY_SECONDS:
            history.popleft()


def _not_now() -> bool:
    """An edge's copy reserves no numbers (the owner's game actor does)."""
    return False


def _remote_channel(seq: int) -> _Channel:
    """An edge's copy of a game's broadcasts, from after ``seq``."""
    return _Channel(seq, 0, _not_now, remote=True, cursor=(seq, 0))


def _since(
    history: deque[tuple[int, int, float, bytes]], since_seq: int, last: int, max_bytes: int
) -> list[bytes] | None:
    """The kept broadcasts numbered above ``since_seq``, oldest first; None when some of
    them are not kept or they add up to more than ``max_bytes``. Numbers may jump (a new
    owner's run starts above the last one's reservation, with ``prev`` 0): every one
    above ``since_seq`` must be held, each linked to the one before it (its ``prev``,
    or 0 after a kept one), down to ``since_seq`` itself (kept, or named as a ``prev``;
    numbers start at 1, so the first-ever broadcast follows 0)."""
    if since_seq == last:
        return []
    if not history or not _reaches(history[0], since_seq):
        return None  # the oldest kept is above since_seq and does not follow it: O(1)
    missed: list[bytes] = []
    size = 0
    need: int | None = None  # what the next older one must be (None: any, a run began)
    for seq, prev, _, data in reversed(history):  # newest first: O(what was missed)
        if missed and need is not None and seq != need:
            return None  # a hole
        if seq <= since_seq:
            return missed[::-1] if seq == since_seq else None
        size += len(data)
        if size > max_bytes:
            return None
        missed.append(data)
        if _follows(prev, seq, since_seq):
            return missed[::-1]
        need = prev or None
    return None


def _follows(prev: int, seq: int, since_seq: int) -> bool:
    """Whether broadcast ``seq`` (sent after ``prev``) comes right after ``since_seq``."""
    return prev == since_seq and (prev > 0 or seq == 1)


def _reaches(oldest: tuple[int, int, float, bytes], since_seq: int) -> bool:
    """Whether a history that starts with ``oldest`` can reach back to ``since_seq``."""
    seq, prev, _, _ = oldest
    return seq <= since_seq or _follows(prev, seq, since_seq)
