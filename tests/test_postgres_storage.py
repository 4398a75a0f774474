"""The PostgreSQL engine (issue 21) against SQLite's: the same changes, the same named
reads giving the same dataclasses, the checks' row locks against write skew, retries,
an unknown outcome when COMMIT loses its connection, snapshot reads and the audit.

The PostgreSQL tests take a fresh database from ``postgres_url`` (tests/conftest.py: the
session's throwaway server, tests/postgres.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from actors import pool as p
from domain.errors import DomainError, OutcomeUnknown
from domain.ledger import audit
from kit.settings import Settings
from storage import (
    betslips,
    catalog,
    game_list,
    games,
    limits,
    listing,
    partners,
    pools,
    registry,
    remote_calls,
    seqs,
    wallet,
)
from storage.actor import _read_snapshot
from storage.audit import audit_ledger
from storage.changes import Change, Delete, Insert, Update, UpdateMany, Upsert
from storage.database import BATCH_TRIES, RETRIED, Database, PostgresDatabase, open_database
from storage.dialect import Engine, redacted
from storage.schema import TABLES
from tests.conftest import CHEAP_SCRYPT_N, ActorHarness, Harness, open_match
from tests.locking import HeldAfter, in_thread, waits_for_a_lock
from tests.test_settlement import place
from tote import cli, config
from tote.server import EXIT_USAGE, Server, ServerConfig, StartError, open_storage, start_services

#: The longest a test waits for another thread's step: only a hang takes this long.
PATIENCE = 30.0


@pytest.fixture(params=[Engine.SQLITE, Engine.POSTGRESQL], ids=lambda e: e.value)
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """An empty database of each engine."""
    if request.param is Engine.SQLITE:
        database = open_database(":memory:")
    else:
        database = open_database(request.getfixturevalue("postgres_url"))
    try:
        yield database
    finally:
        database.close()


def _bet(bet_id: str, pool_id: str = "p", **fields: Any) -> dict[str, Any]:
    return {
        "id": bet_id,
        "pool_id": pool_id,
        "user_id": 1,
        "target": "a",
        "amount": 100,
        "currency": "EUR",
        "placed_at": 0,
        "status": "active",
        "payout": 0,
        **fields,
    }


def _pool(pool_id: str = "p", status: str = "open") -> Insert:
    return Insert("pools", {"id": pool_id, "game_id": "g", "status": status, "doc": "{}"})


# -- the seam -------------------------------------------------------------------------


def test_the_url_picks_the_engine_and_a_password_never_reaches_a_log_line() -> None:
    assert open_database(":memory:").engine is Engine.SQLITE
    assert PostgresDatabase.engine is Engine.POSTGRESQL
    url = "postgresql://tote:s3cret@db.example:5433/tote"
    assert redacted(url) == "postgresql://tote:***@db.example:5433/tote"
    assert redacted("postgres://tote@[::1]/tote") == "postgres://tote@[::1]/tote"


# -- changes --------------------------------------------------------------------------


def test_a_request_is_all_or_nothing_and_the_batch_goes_on(db: Database) -> None:
    good = [Insert("bets", _bet("b1"))]
    bad = [Insert("bets", _bet("b2")), Insert("bets", _bet("b1"))]  # b1 clashes: undo b2
    results = db.apply_batch([good, bad, [Insert("bets", _bet("b3"))]])
    assert results[0] is None and results[1] is not None and results[2] is None
    assert [r["id"] for r in db.rows("SELECT id FROM bets ORDER BY rowid")] == ["b1", "b3"]
    assert (db.transactions, db.requests) == (1, 3)


def test_every_change_kind(db: Database) -> None:
    db.apply_batch([[_pool("p"), *(Insert("bets", _bet(f"b{i}")) for i in range(3))]])
    db.apply_batch([[Upsert("bets", _bet("b0", status="won", payout=250))]])
    db.apply_batch([[Upsert("bets", _bet("b9"))]])
    db.apply_batch([[Update("bets", {"id": "b1"}, {"status": "lost", "labels": None})]])
    db.apply_batch([[UpdateMany("bets", "id", ("status", "payout"), [("won", 7, "b2")])]])
    db.apply_batch([[Delete("bets", {"id": "b1"})]])
    assert db.rows("SELECT id, status, payout FROM bets ORDER BY rowid") == [
        {"id": "b0", "status": "won", "payout": 250},  # an upsert keeps its creation order
        {"id": "b2", "status": "won", "payout": 7},
        {"id": "b9", "status": "active", "payout": 0},
    ]
    holds = pools.bet_count_is("p", 3, "POOL_CHANGED", "changed", lock="UPDATE")
    fails = pools.status_is("p", "settled", "INVALID_BET_DETAILS", "not settled", lock="SHARE")
    results = db.apply_batch([[holds, Update("pools", {"id": "p"}, {"status": "x"})], [fails]])
    assert results[0] is None
    assert isinstance(results[1], DomainError) and results[1].code == "INVALID_BET_DETAILS"
    assert db.scalar("SELECT status FROM pools WHERE id = ?", ("p",)) == "x"


def test_bytes_flags_and_sums_read_back_as_sqlite_gives_them(db: Database) -> None:
    body = bytes(range(256))
    db.apply_batch(
        [
            [betslips.slip_answer("k", "f", 1, "INVALID_STAKE", body, 5)],
            [Insert("users", {"id": 1, "name": "a", "blocked": True, "created_at": 0})],
            [Insert("bets", _bet("b1", amount=2**62)), Insert("bets", _bet("b2", amount=2**62))],
        ]
    )
    assert betslips.stored_slip(db, "k") == betslips.StoredSlip("f", "INVALID_STAKE", body)
    assert db.scalar("SELECT blocked FROM users") == 1
    if db.engine is Engine.POSTGRESQL:  # a numeric, read as an int (SQLite's overflows)
        assert db.scalar("SELECT SUM(amount) FROM bets") == 2**63
    assert wallet.wallet_rows(db).active_stakes == {(1, "EUR"): 2**63}
    assert db.scalar("SELECT COUNT(*) FROM bets WHERE id LIKE 'b%'") == 2


# -- the named reads: the same dataclasses on both engines ------------------------------


async def _scenario(h: ActorHarness) -> tuple[str, str, str]:
    """A game with a settled pool and an open one, bets, deposits: (game, settled, open)."""
    m = await open_match(h)
    settled_id, settled = await m.pool()
    open_id, open_pool = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    await place(settled, [(alice, "a", "10"), (bob, "b", "5")])
    await place(open_pool, [(alice, "b", "3")])
    await settled.ask(p.ResolveByHand("a"))
    return m.game_id, settled_id, open_id


def _extra_rows(pool_id: str, user_id: int) -> list[Change]:
    """Rows no actor of the scenario writes: held bets, the outbox, a slip, limits..."""
    return [
        Insert(
            "held_bets",
            {"id": "h1", "pool_id": pool_id, "user_id": user_id, "target": "a", "amount": 5,
             "currency": "EUR", "requested_at": 1, "due_at": 9},
        ),
        Insert(
            "remote_calls",
            {"key": "c1", "kind": "bets", "state": "unknown", "user_id": user_id,
             "pool_id": pool_id, "payload": "{}", "created_at": 1, "attempts": 2,
             "next_at": 3, "last_error": "x"},
        ),
        Insert("pending_resolutions", {"pool_id": pool_id, "winning_target": "a",
                                       "happened_at": 4, "event_id": "e"}),
        betslips.slip_answer("slip", "fp", user_id, None, b"{}", 7),
        partners.new_partner("partner", "hash", 8),
        seqs.reserve_seq("g", 41),
        Insert("idempotency", {"key": "dep", "fingerprint": "fp"}),
        limits.exclusion_change(user_id, 10**12),
        Insert("limits", {"user_id": user_id, "currency": "EUR", "kind": "deposit",
                          "period": "day", "amount": 100, "pending_amount": None,
                          "pending_from": None}),
    ]  # fmt: skip


def _named_reads(game_id: str, settled_id: str, open_id: str, user_id: int) -> dict[str, Any]:
    """Every named read of storage/, by name, for the scenario's ids."""
    both = [settled_id, open_id]
    reads: dict[str, Callable[[Database], Any]] = {
        "betslips.stored_slip": lambda db: betslips.stored_slip(db, "slip"),
        "catalog.sources_page": lambda db: catalog.sources_page(db, 0, 10),
        "catalog.game": lambda db: catalog.game(db, game_id),
        "catalog.pools_of": lambda db: catalog.pools_of(db, _source(db)),
        "catalog.pool": lambda db: catalog.pool(db, settled_id),
        "catalog.statistics": lambda db: catalog.statistics(db, both),
        "catalog.resolved_pools_bet_in": lambda db: catalog.resolved_pools_bet_in(
            db, game_id, user_id
        ),
        "game_list.open_games_page": lambda db: game_list.open_games_page(db, None, 10),
        "games.game_with_events": lambda db: games.game_with_events(db, game_id),
        "games.every_game": games.every_game,
        "games.every_pool": games.every_pool,
        "games.open_pool_ids": lambda db: games.open_pool_ids(db, game_id),
        "games.open_pool_documents": lambda db: games.open_pool_documents(db, game_id),
        "games.pending_resolutions": lambda db: games.pending_resolutions(db, game_id),
        "limits.load_limits": limits.load_limits,
        "limits.load_exclusions": limits.load_exclusions,
        "limits.load_flows": lambda db: limits.load_flows(db, [(user_id, "EUR")], 0),
        "listing.sources_page": lambda db: listing.sources_page(db, 10, 0),
        "listing.games_page": lambda db: listing.games_page(db, 10, 0),
        "listing.pools_page": lambda db: listing.pools_page(db, game_id, 10, 0),
        "partners.key_is_live": lambda db: partners.key_is_live(db, "hash"),
        "partners.partner_exists": lambda db: partners.partner_exists(db, "partner"),
        "pools.load_pool": lambda db: pools.load_pool(db, open_id),
        "pools.stored_bets": lambda db: pools.stored_bets(db, settled_id),
        "pools.held_bets": lambda db: pools.held_bets(db, open_id),
        "pools.placed_slips": lambda db: pools.placed_slips(db, open_id, ["slip"]),
        "registry.registry_rows": registry.registry_rows,
        "remote_calls.due_calls": lambda db: remote_calls.due_calls(
            db, 10, ("unknown",), "placing", 0, 10
        ),
        "remote_calls.backlog": lambda db: remote_calls.backlog(db, ("unknown",)),
        "remote_calls.pool_bets_for_credit": lambda db: remote_calls.pool_bets_for_credit(
            db, settled_id
        ),
        "remote_calls.user_name": lambda db: remote_calls.user_name(db, user_id),
        "seqs.reserved_seq": lambda db: seqs.reserved_seq(db, "g"),
        "wallet.wallet_rows": wallet.wallet_rows,
        "wallet.reference_fingerprints": lambda db: wallet.reference_fingerprints(db, ["dep"]),
        "audit.audit_ledger": audit_ledger,
    }
    return reads


def _source(db: Database) -> str:
    return str(db.scalar("SELECT id FROM sources"))


def _copy(source: Database, target: Database) -> None:
    """Every row of ``source`` into ``target``, table by table in creation order."""
    for table, (columns, _) in TABLES.items():
        listed = ", ".join(f'"{c}"' for c in columns)
        rows = source.rows(f'SELECT {listed} FROM "{table}" ORDER BY rowid')
        assert target.apply_batch([[Insert(table, row) for row in rows]]) == [None]


async def test_every_named_read_gives_the_same_on_both_engines(postgres_url: str) -> None:
    sqlite = Database(":memory:", synchronous="OFF")
    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, ServerConfig(offload=False), sqlite, "k")
        game_id, settled_id, open_id = await _scenario(ActorHarness(services, nursery))
        nursery.cancel_scope.cancel()
    postgres = open_database(postgres_url)
    _copy(sqlite, postgres)
    user_id = sqlite.scalar("SELECT id FROM users WHERE name = 'alice'")
    for database in (sqlite, postgres):
        assert database.apply_batch([_extra_rows(open_id, user_id)]) == [None]
    reads = _named_reads(game_id, settled_id, open_id, user_id)
    for name, read in reads.items():
        expected = read(sqlite)
        assert read(postgres) == expected, name
        assert expected not in (None, [], {}, (), 0), f"{name} read nothing: a weak comparison"
    assert audit_ledger(postgres).ok and audit_ledger(postgres).lines > 0
    postgres.close()


# -- schema ---------------------------------------------------------------------------


def test_a_start_adds_the_columns_an_older_database_lacks(postgres_url: str) -> None:
    open_database(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE bets DROP COLUMN labels")
    again = open_database(postgres_url)
    again.apply_batch([[Insert("bets", _bet("b1", labels="x"))]])
    assert again.rows("SELECT labels FROM bets") == [{"labels": "x"}]
    again.close()


# -- checks that lock: the write skew of a slip and a settlement -------------------------


def _race(url: str, *, locks: bool) -> tuple[list[Any], list[Any], str, int]:
    """A settlement that counted the pool's 2 bets and holds its transaction open, a slip
    of a third bet committed meanwhile: (settlement results, slip results, pool status,
    bets stored)."""
    setup = open_database(url)
    setup.apply_batch([[_pool("p"), Insert("bets", _bet("b1")), Insert("bets", _bet("b2"))]])
    count = pools.bet_count_is("p", 2, "POOL_CHANGED", "a slip came", lock="UPDATE")
    slip_checks = p.slip_checks("p")
    if not locks:
        count = dataclasses.replace(count, lock=None)
        slip_checks = [dataclasses.replace(check, lock=None) for check in slip_checks]
    settlement = [count, Update("pools", {"id": "p"}, {"status": "settled"})]
    slip = [*slip_checks, Insert("bets", _bet("b3"))]
    settling = HeldAfter(url, count)
    slipping = open_database(url)
    first, settled, _ = in_thread(lambda: settling.apply_batch([settlement]))
    assert settling.checked.wait(PATIENCE)
    second, slipped, slip_done = in_thread(lambda: slipping.apply_batch([slip]))
    waits_for_a_lock(url, slip_done)
    settling.release.set()
    first.join(PATIENCE)
    second.join(PATIENCE)
    status = setup.scalar("SELECT status FROM pools WHERE id = 'p'")
    stored = setup.scalar("SELECT COUNT(*) FROM bets WHERE pool_id = 'p'")
    for database in (setup, settling, slipping):
        database.close()
    return settled[0], slipped[0], status, stored


def test_a_slip_waits_for_the_settlement_it_races_and_is_refused(postgres_url: str) -> None:
    settled, slipped, status, stored = _race(postgres_url, locks=True)
    assert settled == [None]
    assert isinstance(slipped[0], DomainError) and slipped[0].code == "INVALID_BET_DETAILS"
    assert (status, stored) == ("settled", 2)


def test_without_the_locks_the_race_settles_a_pool_with_a_bet_more(postgres_url: str) -> None:
    """The write skew the locks prevent (what the test above would see without them)."""
    settled, slipped, status, stored = _race(postgres_url, locks=False)
    assert (settled, slipped, status, stored) == ([None], [None], "settled", 3)


# -- failures -------------------------------------------------------------------------


class _Failing(PostgresDatabase):
    """Raises PostgreSQL's own ``sqlstate`` in the first ``times`` batches' first change."""

    def __init__(self, url: str, sqlstate: str, times: int) -> None:
        super().__init__(url, synchronous="OFF")
        self.sqlstate = sqlstate
        self.times = times

    def _execute(self, cur: Any, change: Change) -> None:
        if self.times:
            self.times -= 1
            cur.execute(
                f"DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '{self.sqlstate}'; END $$"
            )
        super()._execute(cur, change)


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_deadlock_or_serialization_failure_runs_the_batch_again(
    postgres_url: str, sqlstate: str
) -> None:
    db = _Failing(postgres_url, sqlstate, BATCH_TRIES - 1)
    assert db.apply_batch([[Insert("bets", _bet("b1"))], [Insert("bets", _bet("b2"))]]) == [
        None,
        None,
    ]
    assert db.scalar("SELECT COUNT(*) FROM bets") == 2 and db.transactions == 1
    db.times = BATCH_TRIES
    with pytest.raises(RETRIED):
        db.apply_batch([[Insert("bets", _bet("b3"))]])
    assert db.scalar("SELECT COUNT(*) FROM bets") == 2
    db.close()


def _terminate(url: str, database: PostgresDatabase) -> None:
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (database.pg.info.backend_pid,))


class _LosesConnection(PostgresDatabase):
    """Loses its connection (terminated by another session) right before ``at``:
    "commit" or "change"."""

    def __init__(self, url: str) -> None:
        super().__init__(url, synchronous="OFF")
        self.at: str | None = None

    def _lose(self, at: str) -> None:
        if self.at == at:
            self.at = None
            _terminate(self.path, self)

    def _execute(self, cur: Any, change: Change) -> None:
        self._lose("change")
        super()._execute(cur, change)

    def _commit(self, cur: Any) -> None:
        self._lose("commit")
        super()._commit(cur)


def test_a_connection_lost_during_commit_is_an_unknown_outcome(postgres_url: str) -> None:
    db = _LosesConnection(postgres_url)
    db.at = "commit"
    with pytest.raises(OutcomeUnknown):
        db.apply_batch([[Insert("bets", _bet("b1"))]])
    assert db.apply_batch([[Insert("bets", _bet("b2"))]]) == [None]  # a new connection
    assert db.scalar("SELECT COUNT(*) FROM bets WHERE id = 'b2'") == 1
    db.close()


def test_a_connection_lost_before_commit_is_a_plain_failure(postgres_url: str) -> None:
    db = _LosesConnection(postgres_url)
    db.at = "change"
    with pytest.raises(psycopg.OperationalError) as failure:
        db.apply_batch([[Insert("bets", _bet("b1"))]])
    assert not isinstance(failure.value, OutcomeUnknown)
    assert db.apply_batch([[Insert("bets", _bet("b2"))]]) == [None]
    assert [r["id"] for r in db.rows("SELECT id FROM bets")] == ["b2"]
    db.close()


def test_a_request_waits_for_a_lock_no_longer_than_the_lock_timeout(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.database.LOCK_TIMEOUT_MS", 50)
    db = open_database(postgres_url)
    db.apply_batch([[_pool("p")]])
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT 1 FROM pools WHERE id = 'p' FOR UPDATE")  # held till the end
        check = pools.status_is("p", "open", "INVALID_BET_DETAILS", "not open", lock="SHARE")
        results = db.apply_batch([[check], [Insert("bets", _bet("b1"))]])
    assert isinstance(results[0], psycopg.errors.LockNotAvailable) and results[1] is None
    db.close()


async def test_the_storage_actor_answers_an_unknown_commit_with_outcome_unknown(
    postgres_url: str,
) -> None:
    db = _LosesConnection(postgres_url)
    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, ServerConfig(offload=False), db, "k")
        db.at = "commit"
        with pytest.raises(OutcomeUnknown):
            await services.storage.commit([Insert("bets", _bet("b1"))])
        await services.storage.commit([Insert("bets", _bet("b2"))])  # the writer goes on
        nursery.cancel_scope.cancel()
    db.close()


# -- snapshot reads and the audit -----------------------------------------------------


def test_the_audit_finds_the_same_problems_on_both_engines(db: Database) -> None:
    lines = [
        ("t1", "wallet:1", "EUR", -5),
        ("t1", "house", "EUR", 5),
        ("t2", "escrow:p", "EUR", 7),
        ("t3", "WALLET:2", "JPY", -3),
        ("t3", "house", "JPY", 2),
    ]
    db.apply_batch(
        [
            [
                Insert("ledger", {"tx_id": tx, "seq": i, "account": a, "currency": c, "amount": n})
                for i, (tx, a, c, n) in enumerate(lines)
            ]
            # the wallet's stored balance, as the ledger has it (else a problem of its own)
            + [Insert("balances", {"account": "wallet:1", "currency": "EUR", "balance": -5})]
        ]
    )
    books = audit_ledger(db)
    assert books.problems == audit(lines) and books.problems
    assert (books.lines, books.transactions) == (5, 3)


async def test_a_snapshot_read_on_postgresql_sees_one_commit(postgres_url: str) -> None:
    db = open_database(postgres_url)
    db.apply_batch([[Insert("ledger", {"tx_id": "t", "seq": 0, "account": "house",
                                       "currency": "EUR", "amount": 0})]])  # fmt: skip

    def twice(reader: Any) -> tuple[int, int]:
        before = reader.scalar("SELECT COUNT(*) FROM ledger")
        db.apply_batch([[Insert("ledger", {"tx_id": "u", "seq": 0, "account": "house",
                                           "currency": "EUR", "amount": 0})]])  # fmt: skip
        return before, reader.scalar("SELECT COUNT(*) FROM ledger")

    assert _read_snapshot(postgres_url, twice) == (1, 1)
    assert _read_snapshot(postgres_url, audit_ledger).lines == 2
    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, ServerConfig(offload=False), db, "k")
        books = await services.storage.read_snapshot(audit_ledger)
        assert books.ok and books.lines == 2
        nursery.cancel_scope.cancel()
    db.close()


# -- wiring: the setting, tote backup, a whole server -----------------------------------


def test_the_database_setting_comes_from_flag_environment_and_file(tmp_path: Path) -> None:
    url = "postgresql://tote:s3cret@127.0.0.1:5432/tote"
    args = cli.build_parser().parse_args(["serve", "--database", url])
    assert config.config_from(args, environ={}).database == url
    args = cli.build_parser().parse_args(["serve"])
    assert config.config_from(args, environ={"TOTE_DATABASE": url}).database == url
    toml = tmp_path / "tote.toml"
    toml.write_text(f'database = "{url}"\n')
    assert config.config_from(args, environ={"TOTE_CONFIG": str(toml)}).database == url
    assert config.config_from(args, environ={}).database is None
    args = cli.build_parser().parse_args(["serve", "--database", "mysql://tote:s3cret@h/db"])
    with pytest.raises(config.ConfigError) as refused:
        config.config_from(args, environ={})
    assert "s3cret" not in str(refused.value) and "postgresql://" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://tote:s3cret@[::1",  # a bracket left open
        "postgresql://tote:s3cret@db.example:port/tote",  # a port that is not a number
        "postgresql://tote:s3cret@db.example:99999999999/tote",  # one out of range
        "postgresql://tote:s3cret@db.example/tote?sslmode",  # a parameter libpq refuses
        "postgres://tote:s3cret@db.example/tote?application_name=%zz",  # bad escape
    ],
)
def test_an_unreadable_database_url_is_one_setting_error_without_the_password(url: str) -> None:
    args = cli.build_parser().parse_args(["serve", "--database", url])
    with pytest.raises(config.ConfigError) as refused:
        config.config_from(args, environ={})
    assert "s3cret" not in str(refused.value) and "postgresql://" in str(refused.value)
    assert redacted(url) in {url.replace("s3cret", "***"), "(an unreadable database URL)"}


def test_tote_backup_refuses_postgresql_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy.db"
    url = "postgresql://tote:s3cret@127.0.0.1:5432/tote"
    assert cli.main(["backup", str(copy), "--database", url]) == EXIT_USAGE
    monkeypatch.setenv("TOTE_DATABASE", url)
    assert cli.main(["backup", str(copy)]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert (out, err) == ("", "tote: PostgreSQL is backed up with pg_dump\n" * 2)
    assert not copy.exists()


def test_an_unreachable_postgresql_is_a_start_error_without_the_password() -> None:
    with pytest.raises(StartError) as failure:
        open_storage(ServerConfig(database="postgresql://tote:s3cret@127.0.0.1:1/tote"))
    message = str(failure.value)
    assert "s3cret" not in message and "tote:***@127.0.0.1:1/tote" in message
    assert "\n" not in message


async def test_a_server_on_postgresql_serves_money_and_tote_audit(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:pw@")
    server = Server(
        ServerConfig(
            database=url,
            ws_port=0,
            http_port=0,
            synchronous="OFF",
            settings=Settings(scrypt_n=CHEAP_SCRYPT_N),
        )
    )
    async with trio.open_nursery() as nursery:
        h = Harness(await nursery.start(server.run), nursery)
        assert h.services.storage.path == url
        alice = await h.user("alice", deposit="12.50")
        balances = await h.http.get(f"/v1/users/{alice['user_id']}/balances")
        assert balances.status_code == 200, balances.text
        audited = await trio.to_thread.run_sync(
            cli.main,
            [
                "audit",
                "--url",
                f"http://127.0.0.1:{h.endpoints.http_port}",
                "--operator-key",
                h.endpoints.operator_key,
            ],
        )
        assert audited == 0
        assert await h.audit() == []
        await h.aclose()
        server.request_stop()
    assert ":pw@" not in caplog.text
