"""Where SQLite's SQL and PostgreSQL's differ, in one place (issue 21).

The named reads of storage/ are written once: ``?`` placeholders, ``rowid`` for creation
order (every PostgreSQL table has a ``rowid`` identity column, see ``storage.schema``),
and the few constructs that differ built here from the reader's ``engine``. The
PostgreSQL database turns ``?`` into ``%s`` itself (``placeholders``).
"""

from __future__ import annotations

import enum
import functools
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict


class Engine(enum.Enum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


POSTGRES_SCHEMES = ("postgresql", "postgres")
EXPECTED_URL = "expected postgresql://USER:PASS@HOST:PORT/DB"


def engine_of(url: str) -> Engine:
    """PostgreSQL for a ``postgresql://`` (or ``postgres://``) URL, else SQLite (a file
    path or ``:memory:``)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return Engine.POSTGRESQL if scheme in POSTGRES_SCHEMES else Engine.SQLITE


def checked_url(url: str) -> str:
    """``url`` when it is a PostgreSQL URL libpq can read; raises ValueError saying what
    is expected otherwise (a bad one must stop the start in one line, not a traceback)."""
    if engine_of(url) is not Engine.POSTGRESQL:
        raise ValueError(EXPECTED_URL)
    try:
        _ = urlsplit(url).port  # a bracket left open, a port that is not a number
        conninfo_to_dict(url)  # what libpq itself refuses
    except (ValueError, psycopg.Error):
        raise ValueError(f"{EXPECTED_URL} (this one cannot be read)") from None
    return url


def redacted(url: str) -> str:
    """The URL fit for a log line: a password in it becomes ``***``; one that cannot be
    read at all is not shown."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return "(an unreadable database URL)"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@functools.lru_cache(maxsize=1024)
def placeholders(sql: str) -> str:
    """``sql`` with psycopg's placeholders: ``?`` becomes ``%s`` and a literal ``%``
    (``LIKE 'wallet:%'``) becomes ``%%``. The SQL of storage/ holds no ``?`` in a literal."""
    return sql.replace("%", "%%").replace("?", "%s")


def json_text(engine: Engine, column: str, key: str) -> str:
    """The text field ``key`` of the JSON document in ``column`` (NULL when absent)."""
    if engine is Engine.SQLITE:
        return f"json_extract({column}, '$.{key}')"
    return f"({column}::jsonb ->> '{key}')"


def json_number(engine: Engine, column: str, key: str) -> str:
    """The number ``key`` of the JSON document in ``column``: an int when whole (PostgreSQL
    gives a numeric, which the PostgreSQL database reads back as an int when whole)."""
    if engine is Engine.SQLITE:
        return json_text(engine, column, key)
    return f"{json_text(engine, column, key)}::numeric"


def json_flag(engine: Engine, column: str, key: str) -> str:
    """The boolean ``key`` of the JSON document in ``column`` (1/0 on SQLite, a bool on
    PostgreSQL; NULL when absent): read it with ``bool()``."""
    if engine is Engine.SQLITE:
        return json_text(engine, column, key)
    return f"{json_text(engine, column, key)}::boolean"


def starts_with(engine: Engine, column: str, prefix: str) -> str:
    """``column`` starts with ``prefix`` (a constant of the code, case-sensitive)."""
    if engine is Engine.SQLITE:
        return f"{column} GLOB '{prefix}*'"
    return f"starts_with({column}, '{prefix}')"


def is_integer(engine: Engine, column: str) -> str:
    """``column`` holds an integer: SQLite columns take any value; PostgreSQL's BIGINT
    only integers."""
    return f"typeof({column}) = 'integer'" if engine is Engine.SQLITE else "TRUE"


def indexed_by(engine: Engine, index: str) -> str:
    """SQLite's planner hint (PostgreSQL has none: its planner picks the index)."""
    return f" INDEXED BY {index}" if engine is Engine.SQLITE else ""
