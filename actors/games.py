"""The directory of game and pool actors (filled in by the games issue)."""

from __future__ import annotations

from typing import Any

from actors.services import Services


class Games:
    def __init__(self, services: Services) -> None:
        self.services = services

    @classmethod
    async def load(cls, services: Services) -> Games:
        return cls(services)

    async def close_source(self, ctx: Any, source_id: str) -> None:
        return None
