"""What the chaos and crash rounds share: their figures, the client side's history of
every confirmation, the seeded plans the clients follow, and the checks that read the
database (in the process, through ``Storage``, or a killed subprocess's file, through
``DatabaseFile``, which offers the same ``read``; ``DatabaseAt`` on PostgreSQL)."""

from __future__ import annotations

import random
import secrets
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from tests import postgres as engines
from tests.conftest import WsClient
from tests.reliability.cluster_checker import failover_line
from tests.test_betslip_crash import slip_bet

STAKE = "0.25"
TARGETS = ("argentina", "brazil")
#: Long enough that a slip is always answered (it asks several actors, each within the
#: server's request timeout): a slip without an answer in this time is a finding.
SLIP_CALL_SECONDS = 60


@dataclass
class Figures:
    """What the rounds did and found; ``lost`` must stay 0. ``kills`` are actor
    cancellations in chaos rounds and ``kill -9`` in crash rounds; ``restarts`` are the
    actors' or the process's restarts that followed; ``resumed`` the settlements a kill
    interrupted (pending when it struck) that the restart finished; ``faults`` the fake
    operator's misbehaviours served (late, dropped and failed answers) in remote rounds."""

    rounds: int = 0
    operations: int = 0
    confirmed: int = 0
    refused: int = 0
    kills: int = 0
    restarts: int = 0
    resumed: int = 0
    faults: int = 0
    invariants_checked: int = 0
    lost: int = 0
    #: cluster rounds: requests of unknown outcome, writes of a stale lease epoch after
    #: the next epoch's first, and the seconds from each kill of the owner to the first
    #: bet accepted after it
    unknown: int = 0
    stale_writes: int = 0
    failovers: list[float] = field(default_factory=list)

    def line(self) -> str:
        figures = vars(self).items()
        listed = [f"{name} {value}" for name, value in figures if name != "failovers"]
        return ", ".join([*listed, failover_line(self.failovers)])

    def add(self, other: Figures) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class History:
    """The client side's record of every confirmation, to find after the chaos."""

    bets: set[str] = field(default_factory=set)
    deposits: dict[str, tuple[int, str]] = field(default_factory=dict)  # ref -> user, amount
    #: every betslip sent, answered or not: idempotency key -> request body
    sent_slips: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: placed betslips: idempotency key -> the answer's exact bytes
    slips: dict[str, bytes] = field(default_factory=dict)
    #: pools an event was confirmed (366) to resolve
    resolved: set[str] = field(default_factory=set)


async def open_pools(admin: WsClient, game_id: str, count: int, action: str = "goal") -> list[str]:
    pools = []
    for _ in range(count):
        created = await admin.call(
            385, 350, game_id=game_id, action=action, targets=",".join(TARGETS)
        )
        pools.append(created["pool_id"])
    return pools


def choose_sides(rng: random.Random, pool_ids: list[str]) -> dict[str, str]:
    """The one target a player backs in each pool (a pool takes one target per user)."""
    return {pool_id: rng.choice(TARGETS) for pool_id in pool_ids}


def bet_plan(rng: random.Random, sides: dict[str, str], length: int) -> list[tuple[str, str]]:
    """Which pool to bet on next, ``length`` times, on the player's side in it."""
    return [(pool_id, sides[pool_id]) for pool_id in rng.choices(list(sides), k=length)]


def slip_body(user: dict[str, Any], game_id: str, sides: dict[str, str]) -> dict[str, Any]:
    """A slip over every pool of ``sides``, on the player's side in each (seed 002)."""
    return {
        "requestId": secrets.token_hex(8),
        "userId": str(user["user_id"]),
        "sessionToken": user["session_key"],
        "timestamp": "1795000000000",
        "bets": [slip_bet(game_id, pool_id, target, STAKE) for pool_id, target in sides.items()],
    }


async def send_slip(
    http: httpx.AsyncClient, history: History, body: dict[str, Any], key: str | None = None
) -> tuple[str, httpx.Response]:
    """Post a slip (a new key unless one is replayed); a 200 is recorded as placed."""
    key = key or str(uuid.uuid4())
    history.sent_slips[key] = body
    r = await http.post(
        "/v1/betslips",
        json=body,
        headers={"X-Idempotency-Key": key},
        timeout=SLIP_CALL_SECONDS,
    )
    if r.status_code == 200:
        history.slips[key] = r.content
    return key, r


async def replayed_differently(http: httpx.AsyncClient, history: History) -> int:
    """How many placed slips' keys do not answer byte for byte what they answered."""
    differ = 0
    for key, answer in history.slips.items():
        r = await http.post(
            "/v1/betslips",
            json=history.sent_slips[key],
            headers={"X-Idempotency-Key": key},
            timeout=SLIP_CALL_SECONDS,
        )
        differ += r.content != answer
    return differ


def slip_problems(db: Any, history: History) -> list[str]:
    """Every placed slip's bets are stored, each once; any other slip sent is whole or
    absent; no stored slip bet comes from a slip nobody sent."""
    stored: dict[str, list[str]] = defaultdict(list)
    for row in db.rows("SELECT slip_key, external_bet_id FROM bets WHERE slip_key IS NOT NULL"):
        stored[row["slip_key"]].append(row["external_bet_id"])
    problems = []
    for key, body in history.sent_slips.items():
        wanted = sorted(bet["betId"] for bet in body["bets"])
        found = sorted(stored.pop(key, []))
        if found != wanted and (found or key in history.slips):
            problems.append(f"slip {key}: bets {found}, sent {wanted}")
    problems += [f"slip {key}: stored but never sent" for key in stored]
    return problems


class _Rows:
    """``Database.rows`` and ``scalar`` over a plain sqlite3 connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.connection.execute(sql, params)]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.connection.execute(sql, params).fetchone()[0]


class _PostgresRows:
    """``Database.rows`` and ``scalar`` over a psycopg connection, the tests' ``?``
    placeholders turned into psycopg's."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if params:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return list(self.connection.execute(sql, tuple(params) or None))

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.rows(sql, params)
        return next(iter(rows[0].values())) if rows else None


class DatabaseAt:
    """``DatabaseFile``'s ``read`` over a server subprocess's PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def read(self, query: Callable[[Any], Any]) -> Any:
        return await trio.to_thread.run_sync(self._read, query)

    def _read(self, query: Callable[[Any], Any]) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.url, row_factory=dict_row, autocommit=True) as connection:
            return query(_PostgresRows(connection))


def database_of(data_dir: Path) -> Reader:
    """The read side of the database a server on ``data_dir`` keeps its books in, on the
    running test's engine."""
    url = engines.current.server_database(data_dir)
    return DatabaseFile(data_dir / "tote.db") if url is None else DatabaseAt(url)


class DatabaseFile:
    """The read side of ``Storage`` over a server subprocess's database file, read-only
    (WAL: the server may be running): the in-process checks run unchanged on it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def read(self, query: Callable[[Any], Any]) -> Any:
        return await trio.to_thread.run_sync(self._read, query)

    def _read(self, query: Callable[[Any], Any]) -> Any:
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as connection:
            connection.row_factory = sqlite3.Row
            return query(_Rows(connection))


#: A server subprocess's database, read from outside: its SQLite file or PostgreSQL.
Reader = DatabaseFile | DatabaseAt
