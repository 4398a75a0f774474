"""Fan-out of what actors announce: to a game's subscribers, and to a user's connections.

Actors publish domain events (the ``Broadcast`` kinds declared beside each actor); they
never see frames or connections. A subscriber is an address: a function that queues bytes
without waiting (a connection's bounded outbox closes the client when it is full, so a
slow client never slows an actor or the others). The transport gives the hub its
``render``: each event becomes bytes once, and the same bytes go to every recipient.

A big audience is not served in the publishing actor's turn: the hub's own fan-out task
(``run``) delivers its broadcasts a slice at a time, so a game with 10,000 subscribers
costs its actor one render and one append, and bets keep flowing between the slices.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

#: Where a subscriber's messages go: queues them without waiting.
Address = Callable[[bytes], None]

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


class Hub:
    """Who listens to which game, and which addresses belong to which user."""

    def __init__(self, render: Callable[[object], bytes]) -> None:
        self._render = render
        self._games: dict[str, set[Address]] = defaultdict(set)
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
        self._discard(self._users, user_id, address)
        for game_id in self._joined.pop(address, ()):
            self._discard(self._games, game_id, address)

    def to_user(self, user_id: int, event: object) -> None:
        self._send(self._users.get(user_id), event)

    # -- games ------------------------------------------------------------------------

    def subscribe(self, game_id: str, address: Address) -> bool:
        """Add a subscriber; False when it was already subscribed."""
        subs = self._games[game_id]
        if address in subs:
            return False
        subs.add(address)
        self._joined[address].add(game_id)
        return True

    def unsubscribe(self, game_id: str, address: Address) -> bool:
        self._discard(self._joined, address, game_id)
        return self._discard(self._games, game_id, address)

    def to_game(self, game_id: str, event: object) -> None:
        addresses = self._games.get(game_id)
        if addresses:
            self._fan_out(addresses, self._render(event))

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

    def _send(self, addresses: set[Address] | None, event: object) -> None:
        if not addresses:
            return  # nobody listens: nothing to render
        data = self._render(event)
        for address in list(addresses):
            address(data)

    @staticmethod
    def _discard(index: dict, key: object, member: object) -> bool:
        members = index.get(key)
        if not members or member not in members:
            return False
        members.discard(member)
        if not members:
            del index[key]
        return True
