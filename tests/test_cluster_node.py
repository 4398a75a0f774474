"""Two nodes of a cluster in one process, on one PostgreSQL and one Redis (issue 22): the
owner runs the actors; a bet placed through the other node's websocket is answered there
(356) by the owner's pool. Node A takes the real lease; node B's is a stand-in that never
makes it the owner (failover has tests of its own)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
import trio

from actors.services import Base
from cluster.node import EXIT_LEASE_LOST, Lease, Node, Wiring
from domain.codec import decode
from kit.settings import Settings
from tests.conftest import CHEAP_SCRYPT_N, Harness, ledger_problems
from tote import cli
from tote.server import Server, ServerConfig

TEAMS = {"description": "Next goal by team", "action": "Goal", "targets": "argentina,brazil"}


class StandInLease:
    """The owner lease as a node sees it: held from the start, or never."""

    def __init__(self, owner: bool) -> None:
        self.owner = owner
        self.epoch: int | None = 1 if owner else None
        self.became_owner = trio.Event()
        self.released = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.owner:
            self.became_owner.set()
        task_status.started()
        await trio.sleep_forever()

    async def release(self) -> None:
        self.released = True


def stand_in(owner: bool) -> Callable[[str], Callable[[Callable[[], None]], Lease]]:
    return lambda node_id: lambda on_lost: StandInLease(owner)


@asynccontextmanager
async def cluster_node(
    database: str, redis: str, node_id: str, key: str, *, owner: bool
) -> AsyncIterator[tuple[Server, Harness]]:
    config = ServerConfig(
        ws_port=0,
        http_port=0,
        database=database,
        redis=redis,
        node_id=node_id,
        operator_key=key,
        synchronous="OFF",
        settings=Settings(scrypt_n=CHEAP_SCRYPT_N),
    )
    exits: list[str] = []  # a node that would end its process (none should)
    server = Server(config, lease=None if owner else stand_in(owner=False), exit_node=exits.append)
    async with trio.open_nursery() as nursery:
        harness = Harness(await nursery.start(server.run), nursery)
        try:
            yield server, harness
        finally:
            await harness.aclose()
            server.request_stop()
    assert exits == []


async def test_a_bet_through_an_edge_is_placed_by_the_owner(
    postgres_url: str, redis_url: str
) -> None:
    key = secrets.token_hex(16)
    async with (
        cluster_node(postgres_url, redis_url, "node-a", key, owner=True) as (a_server, a),
        cluster_node(postgres_url, redis_url, "node-b", key, owner=False) as (b_server, b),
    ):
        assert a_server.node is not None and b_server.node is not None
        with trio.fail_after(30):
            await a_server.node.owner_ready.wait()
        admin = await b.user(roles=["developer", "house"])  # users made through B
        alice = await b.user(deposit="100.00")
        async with b.connect(admin) as admin_on_b, b.connect(alice) as alice_on_b:
            source = await admin_on_b.call(365, 335, source_name="example.com")
            game = await admin_on_b.call(  # the owner's directory creates it
                370, 340, source_id=source["source_id"], game_name="Argentina - Brazil",
                currency="EUR", actions=["Goal"], targets="Argentina,Brazil",
            )  # fmt: skip
            game_id = game["game_id"]
            assert (await admin_on_b.call(616, game_id=game_id))["res"] == 640
            joined_on_b = await alice_on_b.call(363, 333, game_id=game_id)
            details = await alice_on_b.call(372, 342, game_id=game_id)  # pre-encoded JSON
            created = await admin_on_b.call(385, 350, game_id=game_id, pool_type="1", **TEAMS)
            pool_id = created["pool_id"]
            announced = await alice_on_b.expect(352)  # the owner's broadcast, through Redis
            placed = await alice_on_b.call(
                392, 356, pool_id=pool_id, target="Brazil", amount="10.5"
            )
            distributed = await alice_on_b.expect(360)
            balance = await alice_on_b.expect(815)  # the owner's push to a user on B
            refused = await alice_on_b.call(392, pool_id=pool_id, target="uruguay", amount="1")
        assert joined_on_b["viewers"] == 1
        assert details["res"] == 342 and details["game_name"] == "Argentina - Brazil"
        assert announced["pool_id"] == pool_id and distributed["pool_id"] == pool_id
        assert (balance["currency"], balance["available_balance"]) == ("EUR", Decimal("89.5"))
        assert placed["res"] == 356 and placed["pool_id"] == pool_id
        assert placed["amount"] == Decimal("10.5")
        assert (refused["res"], refused["error_code"]) == (666, "INVALID_TARGET")
        on_b = await b.http.get(f"/v1/users/{alice['user_id']}/balances")
        assert decode(on_b.content)["EUR"]["exposure"] == Decimal("10.5")
        assert b_server.node.local is None  # B asked A for all of it
        async with a.connect(admin) as admin_on_a:  # and A has it all
            joined = await admin_on_a.call(363, 333, game_id=game_id)
        assert joined["res"] == 333
        assert await ledger_problems(a.services) == []


async def test_a_lost_lease_ends_the_process(redis_url: str) -> None:
    exits: list[str] = []

    class Lost(StandInLease):
        def __init__(self, on_lost: Callable[[], None]) -> None:
            super().__init__(owner=False)
            self.on_lost = on_lost

        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            task_status.started()
            self.on_lost()  # a renewal failed
            await trio.sleep_forever()

    unused: Any = None
    wiring = Wiring(
        redis_url, "n-lost", "key", Settings(), Base(unused, unused, unused, unused, unused),
        lease=Lost, start_owner=unused, fence=unused, render=unused, exit=exits.append,
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(Node(wiring).run)
        nursery.cancel_scope.cancel()
    assert exits == ["the owner lease is lost"]
    assert EXIT_LEASE_LOST == 75  # docs/decisions.md, "Cluster: a node that loses its lease"


def test_redis_without_postgresql_is_refused_at_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOTE_DATABASE", raising=False)
    assert cli.main(["serve", "--redis", "redis://127.0.0.1:6379/0"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "redis: a cluster node keeps its state in PostgreSQL" in err
    assert len(err.strip().splitlines()) == 1
