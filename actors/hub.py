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
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
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


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Something an actor announces; ``fields`` is its shape in the seeds (decisions §1)."""

    fields: dict[str, Any]


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
    #: (seq, trio time, bytes), oldest first, numbers consecutive
    history: deque[tuple[int, float, bytes]] = field(default_factory=deque)


class Hub:
    """Who listens to which game, which addresses belong to which user, and each game's
    numbered broadcasts."""

    def __init__(self, render: Render) -> None:
        self._render = render
        self._channels: dict[str, _Channel] = {}
        self._users: dict[int, set[Address]] = defaultdict(set)
        self._joined: dict[Address, set[str]] = defaultdict(set)  # address -> its games
        #: broadcasts for the fan-out task: [recipients at publication, bytes, next index]
        self._queue: deque[list[Any]] = deque()
        self._queued_bytes = 0
        self._queued_deliveries = 0
        self._wake = trio.Event()
        self._fanning_out = False  # run() is running

    # -- users ------------------------------------------------------------------------

    def connect(self, user_id: int, address: Address) -> None:
        self._users[user_id].add(address)

    def disconnect(self, user_id: int, address: Address) -> None:
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
        if addresses:
            data = self._render(event, {})
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
        channel.reserved = max(channel.reserved, reserved)
        channel.on_low = on_low
        channel.asked = False

    def last_seq(self, game_id: str) -> int:
        channel = self._channels.get(game_id)
        return 0 if channel is None else channel.seq

    # -- games ------------------------------------------------------------------------

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
        data = self._render(event, {"game_id": game_id, "seq": channel.seq})
        self._keep(channel, data)
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
        targets = [
            address
            for user_id in user_ids
            for address in self._users.get(user_id, ())
            if address in channel.subscribers
        ]
        if targets:
            data = self._render(event, {"game_id": game_id})
            for address in targets:
                address(data)

    def _channel(self, game_id: str) -> _Channel:
        channel = self._channels.get(game_id)
        if channel is None:  # a bug: a game's actor reserves before anything is sent
            raise RuntimeError(f"no seq reserved for game {game_id}")
        return channel

    @staticmethod
    def _keep(channel: _Channel, data: bytes) -> None:
        now = trio.current_time()
        history = channel.history
        history.append((channel.seq, now, data))
        while len(history) > HISTORY_COUNT and history[0][1] < now - HISTORY_SECONDS:
            history.popleft()


def _since(
    history: deque[tuple[int, float, bytes]], since_seq: int, last: int, max_bytes: int
) -> list[bytes] | None:
    """The kept broadcasts numbered above ``since_seq``, oldest first; None when some of
    them are no longer kept or they add up to more than ``max_bytes``."""
    wanted = last - since_seq
    if wanted == 0:
        return []
    if len(history) < wanted or history[-wanted][0] != since_seq + 1:
        return None
    missed: list[bytes] = []
    size = 0
    for _, _, data in islice(reversed(history), wanted):  # newest first: O(wanted)
        size += len(data)
        if size > max_bytes:
            return None
        missed.append(data)
    missed.reverse()
    return missed
