"""Fan-out of server messages to connections: per game (subscribers) and per user.

A broadcast is encoded once and the same bytes are pushed to every recipient. Pushing
never waits: a connection whose bounded outbox is full is closed by its own ``push``,
so a slow client can never slow an actor or the other clients.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol


class Subscriber(Protocol):
    user_id: int

    def push(self, data: bytes) -> None:
        """Queue ``data`` for sending without waiting (drop the connection if it is full)."""


class Hub:
    """Who listens to which game, and which connections belong to which user."""

    def __init__(self) -> None:
        self._games: dict[str, set[Subscriber]] = defaultdict(set)
        self._users: dict[int, set[Subscriber]] = defaultdict(set)
        self._joined: dict[Subscriber, set[str]] = defaultdict(set)  # conn -> its games

    # -- connections ------------------------------------------------------------------

    def connect(self, conn: Subscriber) -> None:
        self._users[conn.user_id].add(conn)

    def disconnect(self, conn: Subscriber) -> None:
        self._discard(self._users, conn.user_id, conn)
        for game_id in self._joined.pop(conn, ()):
            self._discard(self._games, game_id, conn)

    def to_user(self, user_id: int, data: bytes) -> None:
        for conn in list(self._users.get(user_id, ())):
            conn.push(data)

    # -- games ------------------------------------------------------------------------

    def subscribe(self, game_id: str, conn: Subscriber) -> bool:
        """Add a subscriber; False when it was already subscribed."""
        subs = self._games[game_id]
        if conn in subs:
            return False
        subs.add(conn)
        self._joined[conn].add(game_id)
        return True

    def unsubscribe(self, game_id: str, conn: Subscriber) -> bool:
        self._discard(self._joined, conn, game_id)
        return self._discard(self._games, game_id, conn)

    def to_game(self, game_id: str, data: bytes) -> None:
        for conn in list(self._games.get(game_id, ())):
            conn.push(data)

    @staticmethod
    def _discard(index: dict, key: object, member: object) -> bool:
        members = index.get(key)
        if not members or member not in members:
            return False
        members.discard(member)
        if not members:
            del index[key]
        return True
