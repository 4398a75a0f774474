"""Who may send a command. Each command message declares its role; the actor that owns
the command checks it (one place per command), and the op table's docs read it from
there, so the documented role is the enforced one."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ANYONE = "anyone"
    DEVELOPER = "developer"  # a user with the developer role (registry)
    SOURCE_ADMIN = "source admin"  # an admin of the game's source (registry)
    GAME_ADMIN = "game admin"  # one of the game's admins (op 616)
