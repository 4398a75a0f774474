"""A local cluster of real ``tote serve`` processes (issue 22, docs/cluster.md): N nodes
on one PostgreSQL and one Redis, each a subprocess on loopback ports 0 (read from its
"tote ready" line, as tests/test_crash_recovery.py does), its stderr in a log file of its
own. A test kills (``kill -9``), stops (SIGSTOP), continues and restarts nodes, and asks
PostgreSQL's ``leases`` row which node owns the games.

``python -m tests.cluster_nodes`` (``make cluster``) starts a throwaway PostgreSQL and
Redis and three nodes, prints their ports and the operator key, and tears it all down on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import secrets
import signal
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from cluster.node import EXIT_LEASE_LOST
from storage.leases import EpochWrites, LeaseStore, LeaseUnavailable, LeaseView
from tests.test_crash_recovery import launch_serve, reap

#: The lease the owner holds (cluster/node.py).
GAMES = "games"
#: How long a failover (or any wait for an owner) may take before the wait fails: only
#: a cluster that never recovers takes this long, so it is generous for a busy machine.
OWNER_PATIENCE = 60.0
#: How often the waits read the lease row.
POLL_SECONDS = 0.05
#: Password hashes in the cluster's tests (the real cost would make each user ~1 s).
CHEAP_SCRYPT = ("--scrypt-n", "1024")


@dataclass
class ClusterNode:
    """One ``tote serve --node-id ID`` process; ``start`` (again) runs it, with new ports."""

    node_id: str
    flags: tuple[str, ...]
    log: Path
    proc: trio.Process | None = None
    http_url: str = ""
    ws_port: int = 0
    starts: int = 0
    started: trio.Event = field(default_factory=trio.Event)  # set (and renewed) at each start
    log_from: int = 0  # where the running process's lines begin in ``log``
    _starting: trio.Lock = field(default_factory=trio.Lock)  # one process per node id

    @property
    def http_port(self) -> int:
        return int(self.http_url.rsplit(":", 1)[1])

    async def start(self) -> None:
        """Start the process; returns once it is ready (see ``launch_serve``)."""
        self.log_from = self.log.stat().st_size if self.log.exists() else 0
        self.proc, self.http_url, self.ws_port = await launch_serve(
            (*self.flags, "--node-id", self.node_id), self.log
        )
        self.starts += 1
        self.started.set()
        self.started = trio.Event()

    async def started_after(self, proc: trio.Process | None) -> None:
        """Until a process other than ``proc`` runs this node."""
        while self.proc is proc:
            await self.started.wait()

    def kill(self) -> None:
        """``kill -9``: no shutdown, no release of the lease."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGSTOP: the process stands still (its lease runs out) until ``cont``."""
        self._signal(signal.SIGSTOP)

    def cont(self) -> None:
        """SIGCONT after ``stop``."""
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        assert self.proc is not None, f"{self.node_id} was never started"
        self.proc.send_signal(signum)

    @property
    def exit_status(self) -> int | None:
        """The process's exit status (negative: the signal that ended it); None while it
        runs."""
        return None if self.proc is None else self.proc.poll()

    async def wait_exit(self) -> int:
        """Wait for the process to end; its exit status."""
        assert self.proc is not None
        return await self.proc.wait()

    async def restart(self, replacing: trio.Process | None = None) -> None:
        """Kill whatever runs (reaped), then start the same node id again; with
        ``replacing``, nothing when another start already replaced that process (a
        supervisor and a test must never run two processes of one node id)."""
        async with self._starting:
            if replacing is not None and self.proc is not replacing:
                return
            await self.reap()
            await self.start()

    async def says_owner(self, epoch: int) -> bool:
        """Whether the running process logged that it started the owner's actors at
        ``epoch`` (an earlier process's lines of the same log do not count)."""
        line = f"event=node_is_owner node_id={self.node_id} epoch={epoch}".encode()
        return line in (await trio.Path(self.log).read_bytes())[self.log_from :]

    async def reap(self) -> None:
        """SIGKILL and wait (shielded, time-limited); nothing when never started."""
        if self.proc is not None:
            await reap(self.proc)


@dataclass
class Cluster:
    """The nodes and a lease reader of the cluster's database."""

    nodes: list[ClusterNode]
    operator_key: str
    database_url: str
    leases: LeaseStore
    _lock: trio.Lock = field(default_factory=trio.Lock)

    def node(self, node_id: str) -> ClusterNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    async def lease(self) -> LeaseView | None:
        """The ``games`` lease as PostgreSQL has it; None when never taken. Raises
        ``LeaseUnavailable`` when PostgreSQL does not answer."""
        async with self._lock:  # the store is one connection: one call at a time
            return await trio.to_thread.run_sync(self.leases.owner, GAMES)

    async def is_owner(self, node: ClusterNode) -> bool:
        """Whether ``node`` holds the unexpired lease."""
        view = await self.lease()
        return view is not None and not view.expired and view.node_id == node.node_id

    async def wait_for_owner(
        self, *, after_epoch: int = 0, timeout: float = OWNER_PATIENCE
    ) -> tuple[ClusterNode, int]:
        """The node that holds the unexpired lease at an epoch above ``after_epoch``, and
        that epoch, once there is one and it has started the owner's actors (its log says
        ``node_is_owner`` at that epoch). PostgreSQL and the log are polled; a database
        away for a moment is polled again. Raises trio.TooSlowError after ``timeout``."""
        with trio.fail_after(timeout):
            while True:
                try:
                    view = await self.lease()
                except LeaseUnavailable:
                    view = None
                if view is not None and not view.expired and view.epoch > after_epoch:
                    owner = self.node(view.node_id)
                    if await owner.says_owner(view.epoch):
                        return owner, view.epoch
                await trio.sleep(POLL_SECONDS)

    async def fence_log(self) -> list[EpochWrites]:
        """What each epoch of the lease committed (``storage.leases.LeaseStore.fence_log``);
        asked twice when the first call finds the connection lost (PostgreSQL restarted)."""
        async with self._lock:
            try:
                return await trio.to_thread.run_sync(self.leases.fence_log)
            except LeaseUnavailable:
                return await trio.to_thread.run_sync(self.leases.fence_log)

    def edges(self, owner: ClusterNode) -> list[ClusterNode]:
        return [node for node in self.nodes if node is not owner]


async def supervise(node: ClusterNode, exits: list[tuple[str, int]]) -> None:
    """What a process supervisor does for a node: start it again each time it exits with
    status 75 (lost its lease, or fenced), noting ``(node id, 75)`` in ``exits``; a start
    that fails (the database away) is tried again. A node ended otherwise (``kill -9``)
    is its killer's to start again: waited for."""
    while True:
        proc = node.proc
        assert proc is not None
        status = await proc.wait()
        if status != EXIT_LEASE_LOST or node.proc is not proc:
            await node.started_after(proc)
            continue
        exits.append((node.node_id, status))
        with trio.fail_after(OWNER_PATIENCE):
            while True:
                if await _started_again(node, proc):
                    break
                await trio.sleep(POLL_SECONDS * 10)  # the database may still be away


async def _started_again(node: ClusterNode, proc: trio.Process) -> bool:
    """One try at starting the node again (unless ``proc`` was replaced meanwhile);
    False when it ended before it was ready."""
    try:
        await node.restart(replacing=proc)
    except AssertionError:  # launch_serve: it ended before ready (its log says why)
        return False
    return True


def node_flags(
    database_url: str, redis_url: str, workdir: Path, operator_key: str, lease_seconds: float
) -> tuple[str, ...]:
    """The ``tote serve`` flags every node of a cluster shares (its id aside)."""
    return (
        *("--database", database_url, "--redis", redis_url),
        *("--data-dir", str(workdir / "data"), f"--operator-key={operator_key}"),
        *("--lease-seconds", str(lease_seconds), *CHEAP_SCRYPT),
    )


@asynccontextmanager
async def running_cluster(
    database_url: str,
    redis_url: str,
    workdir: Path,
    *,
    nodes: Sequence[str] = ("node-a", "node-b", "node-c"),
    lease_seconds: float = 10.0,
    extra: Sequence[str] = (),
) -> AsyncIterator[Cluster]:
    """Start one node per id (stderr in ``workdir/<id>.log``), one after the other, and
    wait until one owns the games; every process is killed and reaped on the way out."""
    key = secrets.token_hex(16)
    flags = (*node_flags(database_url, redis_url, workdir, key, lease_seconds), *extra)
    cluster = Cluster(
        [ClusterNode(node_id, flags, workdir / f"{node_id}.log") for node_id in nodes],
        key,
        database_url,
        LeaseStore(database_url),
    )
    try:
        for node in cluster.nodes:
            await node.start()
        await cluster.wait_for_owner()
        yield cluster
    finally:
        for node in cluster.nodes:
            await node.reap()
        cluster.leases.close()


async def serve_until_signalled(workdir: Path) -> None:
    """Throwaway PostgreSQL and Redis, three nodes, their ports printed; until Ctrl-C or
    SIGTERM."""
    from tests.postgres import start_server as start_postgres
    from tests.redis import start_server as start_redis

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        postgres = start_postgres()
        redis = start_redis()
        try:
            database = postgres.create_database()
            async with running_cluster(database, redis.url, workdir) as cluster:
                owner, _ = await cluster.wait_for_owner()
                for node in cluster.nodes:
                    role = "owner" if node is owner else "edge"
                    print(f"{node.node_id}: ws {node.ws_port}  http {node.http_port}  ({role})")
                print(f"operator key {cluster.operator_key}  logs {workdir}", flush=True)
                print("Ctrl-C stops the cluster", flush=True)
                async for _ in signals:
                    break
        finally:
            redis.stop()
            postgres.stop()


def main() -> None:
    """``python -m tests.cluster_nodes``: see the module's docstring."""
    with tempfile.TemporaryDirectory(prefix="tote-cluster-") as workdir:
        trio.run(serve_until_signalled, Path(workdir))


if __name__ == "__main__":
    main()
