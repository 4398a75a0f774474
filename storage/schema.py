"""The schema of both engines, from one set of table definitions so they cannot drift:
SQLite's created (idempotently) with sqlite-utils, PostgreSQL's as DDL generated here.
Both add the columns a database made by an older version lacks, at every start."""

from __future__ import annotations

from collections.abc import Iterator, Set

import sqlite_utils

from domain.ledger import WALLET_PREFIX
from storage.dialect import Engine, json_text
from storage.leases import FENCE_LOG_TABLE, LEASES_TABLE, NODES_TABLE

TABLES: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "meta": ({"key": str, "value": str}, "key"),
    "users": (
        {
            "id": int,
            "name": str,
            "password": str,
            "roles": str,
            "blocked": int,
            "created_at": int,
            "cooldown_until": int,  # no bets before this epoch ms (decisions §6)
            "excluded_until": int,  # self-excluded: no bets or deposits before this epoch ms
        },
        "id",
    ),
    "sessions": ({"key": str, "user_id": int, "expires_at": int}, "key"),
    "nonces": ({"user_id": int, "nonce": str, "expires_at": int}, ("user_id", "nonce")),
    "sources": (
        {
            "id": str,
            "name": str,
            "description": str,
            "owner_id": int,
            "closed": int,
            "created_at": int,
        },
        "id",
    ),
    "source_admins": ({"source_id": str, "user_id": int}, ("source_id", "user_id")),
    "games": ({"id": str, "source_id": str, "doc": str}, "id"),
    # The highest broadcast seq each game may use, reserved before it is used, so a
    # game's seq never goes back across restarts (decisions §9, docs/decisions.md).
    "game_seqs": ({"game_id": str, "reserved": int}, "game_id"),
    "events": (
        {
            "id": str,
            "game_id": str,
            "action_id": str,
            "target_id": str,
            "happened_at": int,
            # the happened_at the admin sent (None: none sent): a resend is recognised by it
            "reported_at": int,
            "registered_at": int,
        },
        "id",
    ),
    "pools": (
        # fail_safe_at (epoch ms, seed 003) is also in doc; the column is for queries.
        # broadcast_bets: how many bets went out in a 360, written with a later bet (the
        # doc has it as of its own last write; the larger one holds)
        {
            "id": str,
            "game_id": str,
            "status": str,
            "fail_safe_at": int,
            "doc": str,
            "broadcast_bets": int,
        },
        "id",
    ),
    "bets": (
        {
            "id": str,
            "pool_id": str,
            "user_id": int,
            "target": str,
            "amount": int,
            "currency": str,
            "placed_at": int,
            "status": str,
            "payout": int,
            # betslip bets (seed 002): the slip's key, the caller's betId, the accepted
            # price and stake * price as exact decimal text, and the caller's labels
            "slip_key": str,
            "external_bet_id": str,
            "price": str,
            "potential_payout": str,
            "labels": str,
        },
        "id",
    ),
    # Bets held for their pool's bet delay (decisions §11): their stake is exposure, not
    # yet in the ledger; placing one moves it to ``bets``, refusing it deletes it.
    "held_bets": (
        {
            "id": str,
            "pool_id": str,
            "user_id": int,
            "target": str,
            "amount": int,
            "currency": str,
            "requested_at": int,
            "due_at": int,
        },
        "id",
    ),
    "transactions": (
        {"id": str, "kind": str, "created_at": int},
        "id",
    ),
    "ledger": (
        {"tx_id": str, "seq": int, "account": str, "currency": str, "amount": int},
        ("tx_id", "seq"),
    ),
    # Each wallet account's ledger total, changed in the same request as its lines by a
    # conditional update that never lets it fall below zero (storage.changes.AdjustBalance):
    # the database refuses an overdraft whatever a node's memory believes. Wallets only:
    # escrows and the house are not kept here (docs/decisions.md, "Money").
    "balances": (
        {"account": str, "currency": str, "balance": int},
        ("account", "currency"),
    ),
    # An event commits one row per pool it resolves; the pool deletes it in the commit
    # that settles, so a crash in between is finished on restart.
    "pending_resolutions": (
        {"pool_id": str, "winning_target": str, "happened_at": int, "event_id": str},
        "pool_id",
    ),
    "idempotency": ({"key": str, "fingerprint": str}, "key"),
    # A player's deposit and loss limits (decisions §12), one row per currency, kind and
    # period: the amount in force (NULL: none) and a raise or removal waiting until
    # pending_from (NULL: nothing waits; pending_amount NULL then means a removal).
    "limits": (
        {
            "user_id": int,
            "currency": str,
            "kind": str,
            "period": str,
            "amount": int,
            "pending_amount": int,
            "pending_from": int,
        },
        ("user_id", "currency", "kind", "period"),
    ),
    # Remote wallet mode's durable outbox (seed 004): every debit's intent and every
    # credit to send, with its idempotency key (the row's key) and its retry state.
    "remote_calls": (
        {
            "key": str,
            "kind": str,
            "state": str,
            "user_id": int,
            "pool_id": str,
            "payload": str,
            "created_at": int,
            "attempts": int,
            "next_at": int,
            "last_error": str,
        },
        "key",
    ),
    # Keys that may call POST /v1/betslips and nothing else (only their hash is kept).
    "partners": (
        {"id": str, "key_hash": str, "created_at": int, "revoked_at": int},
        "id",
    ),
    # A betslip's final answer, byte for byte, under its idempotency key: the code that
    # refused it (null: placed) and the body; a placed slip's row is in the same
    # transaction as its bets. ``status``: the HTTP status rows kept before ``refusal``
    # (no longer written; ``refusal`` is filled from their body when it is added).
    "betslips": (
        {
            "key": str,
            "fingerprint": str,
            "user_id": int,
            "status": int,
            "body": bytes,
            "created_at": int,
            "refusal": str,
        },
        "key",
    ),
    # The cluster (docs/cluster.md, storage.leases): each node process's heartbeat, and
    # the owner lease with its epoch, and what each epoch's fenced writes committed; only
    # PostgreSQL fills them (a cluster needs it)
    "nodes": NODES_TABLE,
    "leases": LEASES_TABLE,
    "fence_log": FENCE_LOG_TABLE,
}

INDEXES: list[tuple[str, list[str], bool]] = [
    ("users", ["name"], True),
    ("bets", ["pool_id"], False),
    ("held_bets", ["pool_id"], False),
    ("bets", ["slip_key"], False),
    ("partners", ["key_hash"], True),
    ("remote_calls", ["state", "next_at"], False),
    ("bets", ["user_id", "external_bet_id"], True),
    ("events", ["game_id"], False),
    ("pools", ["game_id"], False),
    ("games", ["source_id"], False),
    ("ledger", ["account", "currency"], False),
]

#: The games not closed (``closed_at`` null in the document), in creation order: the
#: game list (storage.game_list) walks this index rather than every closed game.
OPEN_GAMES_INDEX = "games_closed_at"


def expression_indexes(engine: Engine) -> list[str]:
    closed_at = json_text(engine, "doc", "closed_at")  # PostgreSQL's is in parentheses
    return [f"CREATE INDEX IF NOT EXISTS {OPEN_GAMES_INDEX} ON games({closed_at})"]


EXPRESSION_INDEXES = expression_indexes(Engine.SQLITE)

#: PostgreSQL's column types for the Python types of ``TABLES``.
POSTGRES_TYPES: dict[type, str] = {str: "TEXT", int: "BIGINT", bytes: "BYTEA"}
#: Every PostgreSQL table's creation order: SQLite's implicit ``rowid`` made explicit, so
#: ``ORDER BY rowid`` reads the same on both. A reader never selects it with ``*``.
POSTGRES_ROWID = '"rowid" BIGINT GENERATED BY DEFAULT AS IDENTITY'


def primary_key(table: str) -> tuple[str, ...]:
    """The table's primary key columns (an upsert's conflict target)."""
    pk = TABLES[table][1]
    return (pk,) if isinstance(pk, str) else pk


#: The wallet accounts among the ledger's, in SQL both engines read alike (``LIKE`` is
#: case-blind in SQLite and not in PostgreSQL).
WALLET_ACCOUNT = f"substr(account, 1, {len(WALLET_PREFIX)}) = '{WALLET_PREFIX}'"

#: What fills a table made after the data it sums, in the transaction that creates it:
#: a database from before the ``balances`` table opens with every wallet's total. The
#: sum is taken in two halves (as ``storage.database.EXACT_SUM``): a plain ``SUM`` raises
#: "integer overflow" in SQLite once its running total passes 2^63 - 1.
FILLS = {
    "balances": (
        "INSERT INTO balances (account, currency, balance) SELECT account, currency, "
        "SUM(amount / 1000000000) * 1000000000 + SUM(amount % 1000000000) "
        f"FROM ledger WHERE {WALLET_ACCOUNT} GROUP BY account, currency"
    ),
}

#: What fills a column for the rows that were there before it was added, in the
#: transaction that adds it. A betslip row kept before ``refusal`` has its answer's HTTP
#: status (200: placed) and a body that names the refusal's code.
COLUMN_FILLS = {
    ("betslips", "refusal"): (
        "UPDATE betslips SET refusal = json_extract(CAST(body AS TEXT), '$.errorCode') "
        "WHERE refusal IS NULL AND status IS NOT NULL AND status != 200"
    ),
}


def create(db: sqlite_utils.Database) -> None:
    """Create what is missing: tables (filled from older ones as ``FILLS`` says), and
    columns added since a database was made (filled as ``COLUMN_FILLS`` says)."""
    for name, (columns, pk) in TABLES.items():
        table = db[name]
        if not table.exists():
            with db.atomic():  # a crash between the two would leave it empty for good
                table.create(columns, pk=pk)  # type: ignore[union-attr]
                if name in FILLS:
                    db.execute(FILLS[name])
            continue
        for column, kind in columns.items():
            if column not in table.columns_dict:
                with db.atomic():  # a crash between the two would leave old rows unfilled
                    table.add_column(column, kind)  # type: ignore[union-attr]
                    if (name, column) in COLUMN_FILLS:
                        db.execute(COLUMN_FILLS[(name, column)])
    for table_name, index_columns, unique in INDEXES:
        db.table(table_name).create_index(index_columns, unique=unique, if_not_exists=True)
    for statement in EXPRESSION_INDEXES:
        db.execute(statement)


def postgres_ddl(
    columns: Set[tuple[str, str]] = frozenset(), indexes: Set[str] = frozenset()
) -> Iterator[str]:
    """The statements that create what is missing on PostgreSQL, given the ``(table,
    column)`` pairs and the index names there are. Only what is missing: an ``ALTER
    TABLE`` that adds nothing, or a ``CREATE INDEX IF NOT EXISTS`` of an index there is,
    still locks its table (against everyone, or against writers) until the start's
    transaction ends, and a node starting beside a running owner would hold up the
    owner's writes and lease renewals until it lost the lease (issue 22)."""
    tables = {table for table, _ in columns}
    for name, (defined_columns, _) in TABLES.items():
        if name not in tables:
            defined = ", ".join(
                f'"{c}" {POSTGRES_TYPES[kind]}' for c, kind in defined_columns.items()
            )
            keys = ", ".join(f'"{c}"' for c in primary_key(name))
            yield (
                f'CREATE TABLE IF NOT EXISTS "{name}"'
                f" ({defined}, {POSTGRES_ROWID}, PRIMARY KEY ({keys}))"
            )
            continue
        for column, kind in {**defined_columns, "rowid": int}.items():
            if (name, column) in columns:
                continue
            typed = POSTGRES_ROWID if column == "rowid" else f'"{column}" {POSTGRES_TYPES[kind]}'
            yield f'ALTER TABLE "{name}" ADD COLUMN IF NOT EXISTS {typed}'
    for table, index_columns, unique in INDEXES:
        index = f"idx_{table}_{'_'.join(index_columns)}"
        listed = ", ".join(f'"{c}"' for c in index_columns)
        what = "UNIQUE INDEX" if unique else "INDEX"
        if index not in indexes:
            yield f'CREATE {what} IF NOT EXISTS {index} ON "{table}" ({listed})'
    if OPEN_GAMES_INDEX not in indexes:
        yield from expression_indexes(Engine.POSTGRESQL)
    # ``COLUMN_FILLS`` for PostgreSQL: its columns are added with IF NOT EXISTS, so the
    # fill runs at every start and touches only rows not filled yet
    yield (
        'UPDATE "betslips" SET "refusal" = '
        "(convert_from(\"body\", 'UTF8')::jsonb ->> 'errorCode') "
        'WHERE "refusal" IS NULL AND "status" IS NOT NULL AND "status" <> 200'
    )
