"""The stored wallet balances (the ``balances`` table): changed with the ledger lines in
the same request by a conditional update, so that the database itself refuses an
overdraft even when a wallet's memory is wrong or another writer spent the money; filled
from the ledger when a database made before them opens; always the ledger's totals."""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.wallet import (
    Balance,
    Deposit,
    GetBalances,
    Settle,
    StakeItem,
    Stakes,
    WalletActor,
    Withdraw,
)
from domain import ledger
from domain.errors import DomainError
from kit.runtime import Mailbox
from storage.audit import audit_ledger
from storage.changes import AdjustBalance, Change, Insert
from storage.database import Database, PostgresDatabase
from storage.dialect import placeholders
from storage.wallet import balance_changes
from tests.conftest import ActorHarness
from tests.postgres import open_test_database
from tests.reliability.world import running_actors

#: On SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

INT64_MAX = 2**63 - 1


def _write(db: Database, sql: str) -> None:
    """A statement behind storage/'s back (what another writer or a bug might do)."""
    if isinstance(db, PostgresDatabase):
        db.pg.execute(placeholders(sql))
    else:
        db.conn.execute(sql)


def _stored(db: Database) -> dict[tuple[str, str], int]:
    return {
        (r["account"], r["currency"]): r["balance"]
        for r in db.rows("SELECT account, currency, balance FROM balances")
    }


def _transaction(lines: list[ledger.Line]) -> list[Change]:
    """A transaction as the wallet commits it: its row, its lines, the balances they move."""
    tx_id = uuid.uuid4().hex
    return [
        Insert("transactions", {"id": tx_id, "kind": "test", "created_at": 0}),
        *(
            Insert("ledger", {"tx_id": tx_id, "seq": seq, **vars(line)})
            for seq, line in enumerate(lines)
        ),
        *balance_changes(lines),
    ]


# -- the change and its statement -------------------------------------------------------


def test_an_adjustment_never_takes_a_balance_below_zero() -> None:
    db = open_test_database()
    alice = ledger.wallet(1)

    def adjust(delta: int) -> Exception | None:
        return db.apply_batch([[AdjustBalance(alice, "EUR", delta)]])[0]

    refused = adjust(-1)  # no row yet: zero, and a new row may not start below it
    assert isinstance(refused, DomainError) and refused.code == "INSUFFICIENT_FUNDS"
    assert _stored(db) == {}
    assert adjust(10) is None and adjust(-4) is None
    assert isinstance(adjust(-7), DomainError)
    assert _stored(db) == {(alice, "EUR"): 6}
    assert adjust(-6) is None and _stored(db) == {(alice, "EUR"): 0}
    db.close()


def test_a_refused_overdraft_undoes_its_whole_request_and_spares_the_others() -> None:
    db = open_test_database()
    db.apply_batch([_transaction(ledger.transfer(ledger.OPERATOR, ledger.wallet(1), "EUR", 50))])
    overdraft = _transaction(ledger.transfer(ledger.wallet(1), ledger.escrow("p"), "EUR", 80))
    other = _transaction(ledger.transfer(ledger.OPERATOR, ledger.wallet(2), "EUR", 30))
    results = db.apply_batch([overdraft, other])
    assert isinstance(results[0], DomainError) and results[0].code == "INSUFFICIENT_FUNDS"
    assert results[1] is None
    assert _stored(db) == {(ledger.wallet(1), "EUR"): 50, (ledger.wallet(2), "EUR"): 30}
    assert db.scalar("SELECT COUNT(*) FROM ledger") == 4  # none of the refused lines
    assert audit_ledger(db).ok
    db.close()


def test_a_transaction_moves_each_wallet_once_in_one_order() -> None:
    """Netted per wallet (a remote-mode stake nets to nothing), sorted by account and
    currency: every commit takes the rows it needs in the same order."""
    lines = [
        *ledger.transfer(ledger.wallet(2), ledger.escrow("p"), "EUR", 5),
        *ledger.transfer(ledger.OPERATOR, ledger.wallet(3), "EUR", 7),
        *ledger.transfer(ledger.wallet(3), ledger.escrow("p"), "EUR", 7),
        *ledger.transfer(ledger.wallet(1), ledger.HOUSE, "JPY", 4),
        *ledger.transfer(ledger.wallet(1), ledger.HOUSE, "EUR", 3),
        *ledger.transfer(ledger.escrow("q"), ledger.wallet(2), "EUR", 9),
    ]
    assert balance_changes(lines) == [
        AdjustBalance("wallet:1", "EUR", -3),
        AdjustBalance("wallet:1", "JPY", -4),
        AdjustBalance("wallet:2", "EUR", 4),
    ]


# -- a database made before the balances table ----------------------------------------


@pytest.mark.sqlite_only("a SQLite file from before the balances table (PostgreSQL had it)")
def test_a_database_made_before_balances_opens_with_every_wallets_total(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    lines = [
        ("t1", "wallet:1", "EUR", INT64_MAX),  # a plain SUM of these overflows in SQLite
        ("t1", "house", "EUR", -INT64_MAX),
        ("t2", "wallet:1", "EUR", INT64_MAX - 5),
        ("t2", "house", "EUR", -(INT64_MAX - 5)),
        ("t3", "wallet:1", "EUR", -INT64_MAX),
        ("t3", "house", "EUR", INT64_MAX),
        ("t4", "wallet:2", "JPY", -3),  # negative: the audit says so, the fill copies it
        ("t4", "operator", "JPY", 3),
        ("t5", "wallet:2", "EUR", 250),
        ("t5", "escrow:p", "EUR", -250),
    ]
    db.conn.executemany(
        "INSERT INTO ledger (tx_id, seq, account, currency, amount) VALUES (?, ?, ?, ?, ?)",
        [(tx, seq, account, cur, amount) for seq, (tx, account, cur, amount) in enumerate(lines)],
    )
    db.conn.execute("DROP TABLE balances")
    db.close()
    totals = {
        ("wallet:1", "EUR"): INT64_MAX - 5,
        ("wallet:2", "EUR"): 250,
        ("wallet:2", "JPY"): -3,
    }  # wallets only: escrows and the house keep no stored balance
    reopened = Database(path)
    assert _stored(reopened) == totals
    assert audit_ledger(reopened.conn).problems == [
        "account escrow:p is negative in EUR: -250",
        "account wallet:2 is negative in JPY: -3",
    ]
    reopened.close()
    again = Database(path)
    assert _stored(again) == totals  # filled when made, not again
    again.close()


def test_the_audit_names_a_stored_balance_that_is_not_the_ledgers() -> None:
    db = open_test_database()
    db.apply_batch([_transaction(ledger.transfer(ledger.OPERATOR, ledger.wallet(1), "EUR", 50))])
    _write(db, "UPDATE balances SET balance = 49")
    _write(db, "INSERT INTO balances (account, currency, balance) VALUES ('escrow:p', 'EUR', 3)")
    assert audit_ledger(db).problems == [
        "account escrow:p has a stored balance of 3 in EUR: its ledger total is 0",
        "account wallet:1 has a stored balance of 49 in EUR: its ledger total is 50",
    ]
    _write(db, "DELETE FROM balances")
    assert audit_ledger(db).problems == [
        "account wallet:1 has no stored balance in EUR: its ledger total is 50"
    ]
    db.close()


# -- the backstop behind the wallet's memory -------------------------------------------


async def _balance(actors: ActorHarness, user: int) -> tuple[int, int]:
    """(available in the wallet's memory, stored balance) in EUR."""
    memory = (await actors.services.ask_wallet(GetBalances(user)))["EUR"].available
    stored = await actors.services.storage.read(
        lambda db: db.scalar(
            "SELECT balance FROM balances WHERE account = ? AND currency = 'EUR'",
            (ledger.wallet(user),),
        )
    )
    return memory, stored


async def test_a_second_wallet_with_stale_memory_cannot_overdraw(actors: ActorHarness) -> None:
    """Two wallet actors on one database (as two nodes will be): each believes the whole
    balance is there; the database refuses the second stake, which changes nothing; that
    wallet reads its balances again and refuses the stake as it would any overdraft."""
    services = actors.services
    alice = await actors.user("alice", deposit=100)
    second = Mailbox("wallet-2")
    other = await WalletActor.load(second, services.storage, services.clock)
    await actors.nursery.start(other.run)
    stake = StakeItem(alice, "EUR", 80, "p1")
    assert await services.ask_wallet(Stakes([stake])) == [None]
    lines = await services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM ledger"))
    [refused] = await second.ask(Stakes([stake]))
    assert isinstance(refused, DomainError)
    assert refused.code == "INSUFFICIENT_FUNDS"
    assert await services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM ledger")) == lines
    assert await _balance(actors, alice) == (20, 20)
    assert (await second.ask(GetBalances(alice)))["EUR"].available == 20  # read again
    assert await second.ask(Stakes([StakeItem(alice, "EUR", 20, "p1")])) == [None]
    second.close()


async def test_a_refused_overdraft_takes_no_other_players_stake_down(
    actors: ActorHarness,
) -> None:
    """The database refuses a batch in which one stake overdraws (memory was stale): the
    wallet reads its balances again and judges the batch again, so only that stake is
    refused and another player's stake queued beside it is placed."""
    services = actors.services
    alice = await actors.user("alice", deposit=100)
    bob = await actors.user("bob", deposit=100)
    second = Mailbox("wallet-2")
    other = await WalletActor.load(second, services.storage, services.clock)
    assert await services.ask_wallet(Stakes([StakeItem(alice, "EUR", 80, "p1")])) == [None]
    answers: dict[str, object] = {}

    async def stake(name: str, item: StakeItem) -> None:
        [answer] = await second.ask(Stakes([item]))
        answers[name] = answer.code if isinstance(answer, DomainError) else answer

    async with trio.open_nursery() as nursery:  # both queued before the wallet runs
        nursery.start_soon(stake, "alice", StakeItem(alice, "EUR", 80, "p1"))
        nursery.start_soon(stake, "bob", StakeItem(bob, "EUR", 30, "p1"))
        await trio.testing.wait_all_tasks_blocked()
        await actors.nursery.start(other.run)
    assert answers == {"alice": "INSUFFICIENT_FUNDS", "bob": None}
    assert await _balance(actors, alice) == (20, 20)
    assert (await _balance(actors, bob))[1] == 70  # stored (the first wallet never saw it)
    second.close()


async def test_a_stake_memory_would_refuse_is_refused_by_the_database(
    actors: ActorHarness,
) -> None:
    alice = await actors.user("alice", deposit=100)
    overdraft = ledger.transfer(ledger.wallet(alice), ledger.escrow("p1"), "EUR", 101)
    with pytest.raises(DomainError) as refused:
        await actors.services.storage.commit(_transaction(overdraft))
    assert refused.value.code == "INSUFFICIENT_FUNDS"
    assert await _balance(actors, alice) == (100, 100)


# -- the property: whatever the wallet is asked, balances are the ledger's totals -------

PLAYERS = 3
POOLS = 2
_amounts = st.integers(1, 150)
STEPS = st.one_of(
    st.tuples(st.just("deposit"), st.integers(0, PLAYERS - 1), _amounts),
    st.tuples(st.just("withdraw"), st.integers(0, PLAYERS - 1), _amounts),
    st.tuples(st.just("stake"), st.integers(0, PLAYERS - 1), st.integers(0, POOLS - 1), _amounts),
    st.tuples(st.just("settle"), st.integers(0, POOLS - 1), st.integers(0, PLAYERS - 1)),
    # money taken behind the wallet's back (another node): its memory is wrong after it
    st.tuples(st.just("elsewhere"), st.integers(0, PLAYERS - 1), _amounts),
)


class Books:
    """What each wallet and escrow should hold; a step is refused when it would take
    more than a wallet holds, whatever the wallet's memory says."""

    def __init__(self, h: ActorHarness, players: list[int]) -> None:
        self.h = h
        self.players = players
        self.wallets = dict.fromkeys(players, 0)
        self.stakes: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    async def step(self, step: tuple[Any, ...]) -> None:
        kind, *args = step
        await getattr(self, kind)(*args)

    async def take(self, player: int, amount: int, call: Any) -> bool:
        """Run ``call``; it must be refused (INSUFFICIENT_FUNDS) exactly when ``amount``
        is more than the wallet holds. True when it was taken."""
        covered = amount <= self.wallets[player]
        try:
            result = await call
        except DomainError as error:
            assert error.code == "INSUFFICIENT_FUNDS" and not covered, error
            return False
        refused = isinstance(result, list) and result[0] is not None
        assert refused != covered, result
        if covered:
            self.wallets[player] -= amount
        return covered

    async def deposit(self, index: int, amount: int) -> None:
        player = self.players[index]
        await self.h.services.ask_wallet(Deposit(player, "EUR", amount, uuid.uuid4().hex))
        self.wallets[player] += amount

    async def withdraw(self, index: int, amount: int) -> None:
        player = self.players[index]
        body = Withdraw(player, "EUR", amount, uuid.uuid4().hex)
        await self.take(player, amount, self.h.services.ask_wallet(body))

    async def stake(self, index: int, pool: int, amount: int) -> None:
        player = self.players[index]
        body = Stakes([StakeItem(player, "EUR", amount, f"p{pool}")])
        if await self.take(player, amount, self.h.services.ask_wallet(body)):
            self.stakes[pool][player] += amount

    async def settle(self, pool: int, winner_index: int) -> None:
        """The pool's escrow: a tenth to the house, the rest to one player."""
        staked = self.stakes.pop(pool, {})
        pot = sum(staked.values())
        if not pot:
            return
        winner, takeout = self.players[winner_index], pot // 10
        lines = ledger.transfer(
            ledger.escrow(f"p{pool}"), ledger.wallet(winner), "EUR", pot - takeout
        )
        if takeout:
            lines += ledger.transfer(ledger.escrow(f"p{pool}"), ledger.HOUSE, "EUR", takeout)
        released = {(player, "EUR"): amount for player, amount in staked.items()}
        await self.h.services.ask_wallet(Settle(uuid.uuid4().hex, "settle", lines, released))
        self.wallets[winner] += pot - takeout

    async def elsewhere(self, index: int, amount: int) -> None:
        player = self.players[index]
        lines = ledger.transfer(ledger.wallet(player), ledger.OPERATOR, "EUR", amount)
        await self.take(player, amount, self.h.services.storage.commit(_transaction(lines)))

    async def check(self) -> None:
        stored = await self.h.services.storage.read(_stored)
        held = {ledger.wallet(p): total for p, total in self.wallets.items() if total}
        assert {account: b for (account, _), b in stored.items() if b} == held
        assert all(balance >= 0 for balance in stored.values())
        assert await self.h.audit() == []
        for player, total in self.wallets.items():  # never less: it would refuse a good stake
            memory = await self.h.services.ask_wallet(GetBalances(player))
            assert memory.get("EUR", Balance(0, 0, 0)).available >= total


async def run_steps(steps: list[tuple[Any, ...]]) -> None:
    async with running_actors() as h:
        books = Books(h, [await h.user(f"p{i}") for i in range(PLAYERS)])
        for step in steps:
            await books.step(step)
            await books.check()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=st.lists(STEPS, min_size=1, max_size=25))
def test_the_stored_balances_are_the_ledgers_totals_whatever_happens(
    steps: list[tuple[Any, ...]],
) -> None:
    trio.run(run_steps, steps, clock=trio.testing.MockClock(autojump_threshold=0))
