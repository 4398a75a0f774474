"""Fan-out of what actors announce: to a game's subscribers, and to a user's connections.

Actors publish domain events (the ``Broadcast`` kinds declared beside each actor); they
never see frames or connections. A subscriber is an address: a function that queues bytes
without waiting (a connection's bounded outbox closes the client when it is full, so a
slow client never slows an actor or the others). The transport gives the hub its
``render``: each event becomes bytes once, and the same bytes go to every recipient.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Where a subscriber's messages go: queues them without waiting.
Address = Callable[[bytes], None]


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
        self._send(self._games.get(game_id), event)

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
