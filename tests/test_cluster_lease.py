"""The owner lease and the fence (issue 22, docs/cluster.md): ``storage.leases`` on a real
PostgreSQL, the fence race of a stale owner's write against a takeover, and
``cluster.lease.OwnerLease``'s loop on a fake store under a mock clock (plus one run on
the real store with explicit waits). No test waits for a lease to run out: expiry is
written with ``LeaseStore.expire_for_tests``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import trio

from cluster.lease import GAMES_LEASE, OwnerLease, rank
from domain.errors import DomainError
from storage import leases, schema
from storage.changes import Change, Insert
from storage.database import Database, Fenced, PostgresDatabase
from storage.leases import LeaseStore, LeaseUnavailable, LeaseView
from tests.locking import HeldAfter, in_thread, waits_for_a_lock
from tote.server import ServerConfig, start_services

#: The longest a test waits for another thread's step: only a hang takes this long.
PATIENCE = 30.0


def _meta(key: str) -> Insert:
    return Insert("meta", {"key": key, "value": "v"})


def _stored(url: str, key: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM meta WHERE key = %s", (key,)).fetchone() is not None


# -- the store ------------------------------------------------------------------------


def test_take_renew_release_and_owner(postgres_url: str) -> None:
    a, b = LeaseStore(postgres_url), LeaseStore(postgres_url)
    assert a.owner(GAMES_LEASE) is None
    assert a.take(GAMES_LEASE, "A", 10) == 1
    assert a.owner(GAMES_LEASE) == LeaseView("A", 1, expired=False)
    assert b.take(GAMES_LEASE, "B", 10) is None  # held
    assert a.renew(GAMES_LEASE, "A", 1, 10) is True
    assert a.renew(GAMES_LEASE, "A", 2, 10) is False  # not its epoch
    assert b.renew(GAMES_LEASE, "B", 1, 10) is False  # not its lease
    a.release(GAMES_LEASE, "A", 1)
    assert a.owner(GAMES_LEASE) == LeaseView("A", 1, expired=True)
    assert b.take(GAMES_LEASE, "B", 10) == 2  # at once after a release
    a.release(GAMES_LEASE, "A", 1)  # no longer A's: nothing
    assert b.owner(GAMES_LEASE) == LeaseView("B", 2, expired=False)
    # a take whose answer was lost is taken again, one epoch on (nobody wrote at 2)
    assert b.take(GAMES_LEASE, "B", 10) == 3
    for store in (a, b):
        store.close()


def test_a_takeover_after_expiry_has_the_next_epoch_and_the_old_owner_cannot_renew(
    postgres_url: str,
) -> None:
    a, b = LeaseStore(postgres_url), LeaseStore(postgres_url)
    assert a.take(GAMES_LEASE, "A", 10) == 1
    a.expire_for_tests(GAMES_LEASE)
    assert b.owner(GAMES_LEASE) == LeaseView("A", 1, expired=True)
    assert b.take(GAMES_LEASE, "B", 10) == 2
    assert a.renew(GAMES_LEASE, "A", 1, 10) is False
    assert a.owner(GAMES_LEASE) == LeaseView("B", 2, expired=False)
    for store in (a, b):
        store.close()


def test_two_nodes_taking_at_once_one_wins(postgres_url: str) -> None:
    stores = [LeaseStore(postgres_url) for _ in range(2)]
    for store in stores:
        store.live_nodes()  # connected before the race
    for round_ in range(10):
        name = f"race-{round_}"
        start = threading.Barrier(2)
        epochs: list[int | None] = [None, None]

        def take(
            i: int, name: str = name, start: threading.Barrier = start, epochs: list = epochs
        ) -> None:
            start.wait(PATIENCE)
            epochs[i] = stores[i].take(name, f"n{i}", 10)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE)
        assert sorted(epochs, key=str) == [1, None]
    for store in stores:
        store.close()


def test_heartbeats_tell_the_live_nodes(postgres_url: str) -> None:
    store = LeaseStore(postgres_url)
    store.heartbeat("n-b", 10)
    store.heartbeat("n-a", 10)
    store.heartbeat("n-a", 10)  # renewed, still one row
    assert store.live_nodes() == ["n-a", "n-b"]
    store.heartbeat("n-b", 0)  # stopped
    assert store.live_nodes() == ["n-a"]
    store.close()


def test_a_lease_needs_postgresql() -> None:
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        LeaseStore("data/tote.db")


def test_a_lost_connection_is_unavailable_once_then_reopened(postgres_url: str) -> None:
    store = LeaseStore(postgres_url)
    assert store.take(GAMES_LEASE, "A", 10) == 1
    assert store.conn is not None
    with psycopg.connect(postgres_url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (store.conn.info.backend_pid,))
    with pytest.raises(LeaseUnavailable) as failure:
        store.renew(GAMES_LEASE, "A", 1, 10)
    assert isinstance(failure.value, DomainError) and failure.value.code == "UNAVAILABLE"
    assert store.renew(GAMES_LEASE, "A", 1, 10) is True  # a new connection
    store.close()


# -- the fence ------------------------------------------------------------------------


class _HeldAndCounted(HeldAfter):
    """``HeldAfter`` that counts the writes its fence refused."""

    def __init__(self, url: str, change: Change) -> None:
        super().__init__(url, change)
        self.fenced = 0
        self.on_fenced = self._count

    def _count(self) -> None:
        self.fenced += 1


@contextmanager
def _a_write_held_open(
    url: str, key: str, idle_ms: int | None = None
) -> Iterator[tuple[LeaseStore, _HeldAndCounted, list[Any]]]:
    """Node A takes the lease (epoch 1) and holds a fenced write of meta ``key`` open
    (idle in its transaction) while the block runs; then the write goes on. Yields A's
    lease store, A's database (the caller closes it) and a list that gets the batch's
    results, or the exception it raised."""
    store = LeaseStore(url)
    assert store.take(GAMES_LEASE, "A", 10) == 1
    write = _meta(key)
    db = _HeldAndCounted(url, write)
    db.fence, db.fence_idle_ms = (GAMES_LEASE, "A", 1), idle_ms

    def attempt() -> Any:
        try:
            return db.apply_batch([[write]])
        except Exception as failed:  # its session ended under it
            return failed

    writing, written, _ = in_thread(attempt)
    try:
        assert db.checked.wait(PATIENCE)
        yield store, db, written
    finally:
        db.release.set()
        writing.join(PATIENCE)
        store.close()


def _takeover_during_a_write(url: str) -> tuple[_HeldAndCounted, list[Any], bool, list[Any]]:
    """Node A (epoch 1) holds a write batch open; its lease expires and node B takes it
    meanwhile; then A's batch commits: (A's database, A's results, whether B's take
    waited for A's transaction, B's epoch)."""
    b = LeaseStore(url)
    with _a_write_held_open(url, "during") as (a, db, written):
        a.expire_for_tests(GAMES_LEASE)  # A stopped renewing (it cannot block: a non-key update)
        taking, taken, take_done = in_thread(lambda: b.take(GAMES_LEASE, "B", 10))
        waited = waits_for_a_lock(url, take_done)
    taking.join(PATIENCE)
    b.close()
    return db, written[0], waited, taken


def test_a_takeover_waits_for_the_old_owners_write_and_fences_the_next(
    postgres_url: str,
) -> None:
    db, written, waited, taken = _takeover_during_a_write(postgres_url)
    assert waited and written == [None] and taken == [2]
    assert _stored(postgres_url, "during")  # committed before the takeover: B reads it
    with pytest.raises(Fenced) as refused:
        db.apply_batch([[_meta("after-1")], [_meta("after-2")]])
    assert refused.value.code == "UNAVAILABLE" and "no longer owns the games" in refused.value.text
    assert not _stored(postgres_url, "after-1") and not _stored(postgres_url, "after-2")
    assert db.fenced == 1
    db.fence = None  # an edge: no fence, writes go on (the connection is clean)
    assert db.apply_batch([[_meta("edge")]]) == [None]
    db.close()


def test_without_the_lock_in_the_fence_a_stale_write_commits_after_the_takeover(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the lock prevents: the fence read without it, the takeover does not wait, and
    A's write commits after B took epoch 2 (B's recovery never sees it)."""
    unlocked = leases.fence_sql().replace(" FOR KEY SHARE", "")
    monkeypatch.setattr(leases, "fence_sql", lambda: unlocked)
    _, written, waited, taken = _takeover_during_a_write(postgres_url)
    assert not waited and taken == [2] and written == [None]
    assert _stored(postgres_url, "during")


def test_the_fence_log_records_each_epochs_committed_writes(postgres_url: str) -> None:
    """With the lock, the old owner's last write is before the new owner's first; a
    fenced (refused) batch and an unfenced one leave nothing in the log."""
    db, _, _, _ = _takeover_during_a_write(postgres_url)
    with pytest.raises(Fenced):
        db.apply_batch([[_meta("refused")]])
    new_owner = PostgresDatabase(postgres_url, synchronous="OFF")
    new_owner.fence = (GAMES_LEASE, "B", 2)
    assert new_owner.apply_batch([[_meta("b-1")]]) == [None]
    assert new_owner.apply_batch([[_meta("b-2")]]) == [None]
    db.fence = None
    assert db.apply_batch([[_meta("edge")]]) == [None]
    for database in (db, new_owner):
        database.close()
    store = LeaseStore(postgres_url)
    log = store.fence_log()
    store.close()
    assert [(e.epoch, e.node_id, e.batches) for e in log] == [(1, "A", 1), (2, "B", 2)]
    assert log[0].last_ms < log[1].first_ms <= log[1].last_ms


def test_without_the_lock_the_fence_log_shows_the_stale_write(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the lock prevents, seen in the log: B writes at epoch 2 while A's epoch 1
    write is open; A's commit comes after B's first write."""
    unlocked = leases.fence_sql().replace(" FOR KEY SHARE", "")
    monkeypatch.setattr(leases, "fence_sql", lambda: unlocked)
    b = LeaseStore(postgres_url)
    new_owner = PostgresDatabase(postgres_url, synchronous="OFF")
    new_owner.fence = (GAMES_LEASE, "B", 2)
    with _a_write_held_open(postgres_url, "stale") as (a, old_owner, written):
        a.expire_for_tests(GAMES_LEASE)
        assert b.take(GAMES_LEASE, "B", 10) == 2
        assert new_owner.apply_batch([[_meta("fresh")]]) == [None]
    log = b.fence_log()
    for closing in (b, old_owner, new_owner):
        closing.close()
    assert written == [[None]]
    assert [e.epoch for e in log] == [1, 2] and log[0].last_ms > log[1].first_ms


def test_the_owners_renewal_never_waits_for_its_own_write(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fence locks ``FOR KEY SHARE``: a renewal (a non-key update) passes beside an
    open write transaction, where ``FOR SHARE`` would hold it up (here: its lock wait
    runs out)."""
    monkeypatch.setattr(leases, "LOCK_TIMEOUT_MS", 200)
    store = LeaseStore(postgres_url)
    assert store.take(GAMES_LEASE, "A", 10) == 1
    for lock, renews in (("FOR KEY SHARE", True), ("FOR SHARE", False)):
        sql = leases.fence_sql().replace("FOR KEY SHARE", lock)
        with psycopg.connect(postgres_url) as writer:  # a transaction till the end
            writer.execute(sql.replace("?", "%s"), (GAMES_LEASE, "A", 1))
            if renews:
                assert store.renew(GAMES_LEASE, "A", 1, 10) is True
            else:
                with pytest.raises(LeaseUnavailable):
                    store.renew(GAMES_LEASE, "A", 1, 10)
    store.close()


async def test_a_fenced_batch_fails_every_request_through_the_storage_actor(
    postgres_url: str,
) -> None:
    db = PostgresDatabase(postgres_url, synchronous="OFF")
    fenced: list[bool] = []
    refused: list[str] = []

    async def commit(key: str) -> None:
        with pytest.raises(Fenced):
            await services.storage.commit([_meta(key)])
        refused.append(key)

    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, ServerConfig(offload=False), db, "k")
        db.fence = (GAMES_LEASE, "A", 1)  # a lease never taken: no row
        db.on_fenced = lambda: fenced.append(True)
        async with trio.open_nursery() as commits:
            for key in ("k1", "k2"):
                commits.start_soon(commit, key)
        nursery.cancel_scope.cancel()
    db.close()
    assert sorted(refused) == ["k1", "k2"] and fenced and not _stored(postgres_url, "k1")


def test_a_node_starting_beside_an_owner_locks_none_of_its_tables(postgres_url: str) -> None:
    """A node opening the database (its schema all there) while the owner holds a fenced
    write open neither waits for that write nor holds up the owner's renewal: it runs
    no DDL (an ALTER TABLE that adds nothing still locks its table), and so the start of
    a node cannot cost the owner its lease (found by tests/test_cluster.py, SIGSTOP)."""
    with _a_write_held_open(postgres_url, "held") as (store, owner, written):
        PostgresDatabase(postgres_url, synchronous="OFF").close()  # used to wait: lock_timeout
        assert store.renew(GAMES_LEASE, "A", 1, 10) is True
    owner.close()
    assert written == [[None]]


def test_an_owner_paused_inside_a_write_does_not_keep_the_lease_from_being_taken(
    postgres_url: str,
) -> None:
    """An owner stopped (SIGSTOP) between two statements of a fenced write holds the
    fence's lock on the lease row; PostgreSQL ends its session once it sits idle in the
    transaction for ``fence_idle_ms``, so the next node takes the lease (it used to wait
    until the owner woke: found by tests/test_cluster.py, SIGSTOP), and the paused
    write is not committed."""
    b = LeaseStore(postgres_url)
    with _a_write_held_open(postgres_url, "paused", idle_ms=200) as (a, owner, written):
        a.expire_for_tests(GAMES_LEASE)
        assert b.take(GAMES_LEASE, "B", 10) == 2  # within LeaseStore's lock timeout (10 s)
    for closing in (b, owner):
        closing.close()
    assert isinstance(written[0], Exception) and not _stored(postgres_url, "paused")


def test_a_complete_schema_needs_no_ddl() -> None:
    """Every table, column and index there: only the idempotent fill is left to run."""
    columns = {(table, c) for table, (cols, _) in schema.TABLES.items() for c in [*cols, "rowid"]}
    indexes = {f"idx_{t}_{'_'.join(cols)}" for t, cols, _ in schema.INDEXES}
    statements = list(schema.postgres_ddl(columns, indexes | {schema.OPEN_GAMES_INDEX}))
    assert [s.split()[0] for s in statements] == ["UPDATE"]
    some = list(schema.postgres_ddl(columns - {("leases", "epoch")}, indexes))
    assert [s.split()[:2] for s in some] == [
        ["ALTER", "TABLE"],
        ["CREATE", "INDEX"],
        ["UPDATE", '"betslips"'],
    ]


def test_the_fence_is_postgresqls_only() -> None:
    assert not hasattr(Database(":memory:"), "fence")


# -- OwnerLease on a fake store, under a mock clock -------------------------------------


class FakeStore:
    """LeaseStore's methods in memory, on the trio clock; ``failing`` names the methods
    that raise LeaseUnavailable, ``hang`` makes every call hang (see ``run``)."""

    def __init__(self) -> None:
        self.nodes: dict[str, float] = {}
        self.leases: dict[str, tuple[str, int, float]] = {}
        self.failing: set[str] = set()
        self.hang = False
        self.closed = 0
        self.calls: list[tuple[float, str, tuple[Any, ...]]] = []

    async def run(self, call: Callable[[], Any]) -> Any:
        """The runner: inline, or never when ``hang``."""
        await trio.lowlevel.checkpoint()
        if self.hang:
            await trio.sleep_forever()
        return call()

    def _called(self, name: str, *args: Any) -> float:
        now = trio.current_time()
        self.calls.append((now, name, args))
        if name in self.failing:
            raise LeaseUnavailable(f"{name} failed")
        return now

    def heartbeat(self, node_id: str, ttl: float) -> None:
        self.nodes[node_id] = self._called("heartbeat", node_id, ttl) + ttl

    def live_nodes(self) -> list[str]:
        now = self._called("live_nodes")
        return sorted(n for n, expires in self.nodes.items() if expires > now)

    def take(self, name: str, node_id: str, ttl: float) -> int | None:
        now = self._called("take", name, node_id)
        holder, epoch, expires = self.leases.get(name, ("", 0, 0.0))
        if expires > now and holder != node_id:
            return None
        self.leases[name] = (node_id, epoch + 1, now + ttl)
        return epoch + 1

    def renew(self, name: str, node_id: str, epoch: int, ttl: float) -> bool:
        now = self._called("renew", name, node_id, epoch)
        if self.leases.get(name, ("", 0, 0.0))[:2] != (node_id, epoch):
            return False
        self.leases[name] = (node_id, epoch, now + ttl)
        return True

    def owner(self, name: str) -> LeaseView | None:
        now = self._called("owner", name)
        if name not in self.leases:
            return None
        holder, epoch, expires = self.leases[name]
        return LeaseView(holder, epoch, expires <= now)

    def release(self, name: str, node_id: str, epoch: int) -> None:
        now = self._called("release", name, node_id, epoch)
        if self.leases.get(name, ("", 0, 0.0))[:2] == (node_id, epoch):
            self.leases[name] = (node_id, epoch, now)

    def close(self) -> None:
        self.closed += 1

    def times(self, name: str) -> list[float]:
        return [t for t, called, _ in self.calls if called == name]


LEASE = 10.0


class Lost:
    """An ``on_lost`` that notes when it was called."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.event = trio.Event()

    def __call__(self) -> None:
        self.times.append(trio.current_time())
        self.event.set()


def _never_lost() -> None:
    raise AssertionError("the lease was lost unexpectedly")


def _lease(store: FakeStore, node_id: str, lost: Callable[[], None] = _never_lost) -> OwnerLease:
    return OwnerLease(store, node_id, LEASE, lost, runner=store.run)  # type: ignore[arg-type]


def test_the_rendezvous_rank_is_stable_and_per_lease() -> None:
    nodes = [f"n-{i:08x}" for i in range(8)]
    places = [rank(GAMES_LEASE, n, nodes) for n in nodes]
    assert sorted(places) == list(range(8))
    assert places == [rank(GAMES_LEASE, n, list(reversed(nodes))) for n in nodes]
    assert places != [rank("other", n, nodes) for n in nodes]
    assert rank(GAMES_LEASE, "n-new", []) == 0


def _by_rank(nodes: list[str]) -> list[str]:
    return sorted(nodes, key=lambda n: rank(GAMES_LEASE, n, nodes))


async def test_the_first_ranked_live_node_takes_the_lease(autojump_clock: Any) -> None:
    store = FakeStore()
    first, second = _by_rank(["n-1", "n-2"])
    store.nodes = {first: 1e9, second: 1e9}  # both alive when the lease is free
    owners = {n: _lease(store, n) for n in (second, first)}
    async with trio.open_nursery() as nursery:
        for lease in owners.values():
            await nursery.start(lease.run)
        await owners[first].became_owner.wait()
        await trio.sleep(LEASE)  # renewals go on; the second never takes it
        assert owners[first].epoch == 1 and owners[second].epoch is None
        assert not owners[second].became_owner.is_set()
        assert next(args[1] for _, name, args in store.calls if name == "take") == first
        assert store.leases[GAMES_LEASE][:2] == (first, 1)
        nursery.cancel_scope.cancel()


async def test_a_node_of_rank_one_waits_a_tenth_of_a_lease(autojump_clock: Any) -> None:
    store = FakeStore()
    first, second = _by_rank(["n-1", "n-2"])
    store.nodes = {first: 1e9}  # alive but not trying (its process is stuck)
    lease = _lease(store, second)
    async with trio.open_nursery() as nursery:
        started = trio.current_time()
        await nursery.start(lease.run)
        await lease.became_owner.wait()
        assert store.times("take") == [pytest.approx(started + LEASE / 10)]
        assert lease.epoch == 1 and lease.renewed_at == pytest.approx(started + LEASE / 10)
        nursery.cancel_scope.cancel()


async def test_an_owner_renews_every_quarter_lease_and_heartbeats(autojump_clock: Any) -> None:
    store = FakeStore()
    lease = _lease(store, "n-1")
    async with trio.open_nursery() as nursery:
        await nursery.start(lease.run)
        assert "n-1" in store.nodes  # started once its row is written
        await lease.became_owner.wait()
        taken = lease.renewed_at
        await trio.sleep(LEASE + 1)
        renewals = store.times("renew")
        assert renewals == pytest.approx([taken + i * LEASE / 4 for i in range(1, 5)])
        assert len(store.times("heartbeat")) >= 4
        nursery.cancel_scope.cancel()


async def test_failed_renewals_lose_the_lease_within_half_a_lease(autojump_clock: Any) -> None:
    store = FakeStore()
    lost = Lost()
    lease = _lease(store, "n-1", lost)
    async with trio.open_nursery() as nursery:
        await nursery.start(lease.run)
        await lease.became_owner.wait()
        await trio.sleep(LEASE / 4 + 0.1)  # one renewal succeeded
        last = lease.renewed_at
        store.failing = {"renew"}
        await lost.event.wait()
        expires = store.leases[GAMES_LEASE][2]
        assert last < lost.times[0] <= last + LEASE / 2 < expires
        assert len([t for t in store.times("renew") if t > last]) >= 2  # tried again
        assert lease.epoch is None
        await trio.sleep(LEASE)
        assert len(lost.times) == 1  # once; run has returned
    assert not nursery.cancel_scope.cancelled_caught


async def test_a_refused_renewal_loses_the_lease_at_once(autojump_clock: Any) -> None:
    store = FakeStore()
    lost = Lost()
    lease = _lease(store, "n-1", lost)
    async with trio.open_nursery() as nursery:
        await nursery.start(lease.run)
        await lease.became_owner.wait()
        store.leases[GAMES_LEASE] = ("n-2", 2, 1e9)  # taken over
        taken_over = trio.current_time()
        await lost.event.wait()
        assert store.times("renew") == [lost.times[0]] and lost.times[0] <= taken_over + LEASE / 4


async def test_hanging_calls_lose_the_lease_and_the_connection_is_reopened(
    autojump_clock: Any,
) -> None:
    store = FakeStore()
    lost = Lost()
    lease = _lease(store, "n-1", lost)
    async with trio.open_nursery() as nursery:
        await nursery.start(lease.run)
        await lease.became_owner.wait()
        last = lease.renewed_at
        store.hang = True
        await lost.event.wait()
        assert lost.times[0] == pytest.approx(last + LEASE / 2) and lease.spoiled
        store.hang = False
    await lease.release()
    assert store.closed == 1 and not lease.spoiled  # closed before the next call


async def test_a_clean_stop_releases_the_lease(autojump_clock: Any) -> None:
    store = FakeStore()
    lease = _lease(store, "n-1")
    async with trio.open_nursery() as nursery:
        await nursery.start(lease.run)
        await lease.became_owner.wait()
        await trio.sleep(1)
        await lease.release()
    assert not nursery.cancel_scope.cancelled_caught  # run returned by itself
    assert lease.epoch is None
    assert store.owner(GAMES_LEASE) == LeaseView("n-1", 1, expired=True)
    assert store.live_nodes() == []
    second = _lease(store, "n-2")
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)
        await second.became_owner.wait()
        assert second.epoch == 2
        nursery.cancel_scope.cancel()


async def test_a_start_without_the_database_fails(autojump_clock: Any) -> None:
    store = FakeStore()
    store.failing = {"heartbeat"}
    async with trio.open_nursery() as nursery:
        with pytest.raises(LeaseUnavailable):
            await nursery.start(_lease(store, "n-1").run)


async def test_an_outage_before_the_take_is_waited_out(autojump_clock: Any) -> None:
    store = FakeStore()
    lease = _lease(store, "n-1")
    async with trio.open_nursery() as nursery:
        store.failing = {"owner"}
        await nursery.start(lease.run)
        await trio.sleep(LEASE)
        assert not lease.became_owner.is_set()
        store.failing = set()
        await lease.became_owner.wait()
        nursery.cancel_scope.cancel()


# -- OwnerLease on the real store -------------------------------------------------------


async def test_an_owner_lease_on_postgresql(postgres_url: str) -> None:
    """Threads and a real clock: events and polls with a generous ceiling, no timing."""
    store = LeaseStore(postgres_url)
    lease = OwnerLease(store, "n-real", 60.0, lambda: None)
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(lease.run)
            await lease.became_owner.wait()
            assert lease.epoch == 1
            with trio.CancelScope(shield=True):
                await lease.release()
    check = LeaseStore(postgres_url)
    assert check.owner(GAMES_LEASE) == LeaseView("n-real", 1, expired=True)
    assert check.live_nodes() == []
    check.close()
    store.close()


async def test_a_blocked_renewal_on_postgresql_loses_the_lease_before_it_passes(
    postgres_url: str,
) -> None:
    """The lease row locked by another session: renewals hang, the node learns of its
    loss while the row still says it holds the lease (nobody else could take it yet)."""
    store = LeaseStore(postgres_url)
    lost = trio.Event()
    # long enough that a renewal is sent while the row is locked, however slow the
    # machine (the loop is never blocked here: the connect is done first, the lock in a
    # thread)
    lease = OwnerLease(store, "n-real", 8.0, lost.set)
    blocker = psycopg.connect(postgres_url)
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(lease.run)
            await lease.became_owner.wait()
            with blocker:
                await trio.to_thread.run_sync(
                    blocker.execute,
                    "SELECT 1 FROM leases WHERE name = %s FOR UPDATE",
                    (GAMES_LEASE,),
                )
                await lost.wait()
                with psycopg.connect(postgres_url, autocommit=True) as other:
                    row = other.execute(
                        "SELECT node_id, epoch FROM leases WHERE name = %s", (GAMES_LEASE,)
                    ).fetchone()
                assert row == ("n-real", 1) and lease.epoch is None and lease.spoiled
    await trio.to_thread.run_sync(store.close, limiter=lease.limiter)  # after the abandoned call
