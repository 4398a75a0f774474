"""What the largest game the bounds allow costs the event loop to serve (issue 18, §13).

Run: ``.venv/bin/python -m tests.reliability.large_game``. It starts a server in a
thread of its own, builds a game at the bounds (1,000 targets, 100 actions, 10,000
events, pools of 200 targets) over the websocket, then asks each large document several
times and prints, per request, the server loop's busy time (the sum of its task steps
while the request was served) and its longest single step (how long every other client
waited at worst). A figure for an operator, not a test: it depends on the machine.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from domain.game import MAX_GAME_EVENTS
from domain.targets import MAX_GAME_ACTIONS, MAX_GAME_TARGETS, MAX_POOL_TARGETS
from storage.changes import Insert
from tests.conftest import WsClient, running_harness
from tests.reliability.threaded import Portal, loop_in_thread

POOLS = 10
REPEATS = 5


class LoopTime(trio.abc.Instrument):
    """Sums the time the loop spends running tasks, and keeps the longest step."""

    def __init__(self) -> None:
        self.busy = 0.0
        self.longest = 0.0
        self._started = 0.0

    def reset(self) -> None:
        self.busy = self.longest = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        step = time.perf_counter() - self._started
        self.busy += step
        self.longest = max(self.longest, step)


async def build(ws: WsClient, http: httpx.AsyncClient) -> dict[str, str]:
    """A source, a game at the bounds, its events and its pools; returns their ids."""
    source = await ws.call(365, 335, source_name="large.example")
    targets = [f"T{i}" for i in range(MAX_GAME_TARGETS)]
    actions = [f"A{i}" for i in range(MAX_GAME_ACTIONS)]
    game = await ws.call(
        370, 340, source_id=source["source_id"], game_name="Large", actions=actions,
        targets=targets,
    )  # fmt: skip
    game_id = game["game_id"]
    await ws.call(616, 640, game_id=game_id)
    for start in range(0, MAX_GAME_TARGETS, 100):  # one per target, pipelined
        sent = [
            await ws.send(395, game_id=game_id, action_id="a0", target_id=f"t{i}")
            for i in range(start, start + 100)
        ]
        for request_id in sent:
            await ws.expect(366, request_id=request_id)
    pool_ids = []
    for n in range(POOLS):
        created = await ws.call(
            385, 350, game_id=game_id, action="a1",
            targets=targets[n * 10 : n * 10 + MAX_POOL_TARGETS], description=f"pool {n}",
        )  # fmt: skip
        pool_ids.append(created["pool_id"])
    return {"source": source["source_id"], "game": game_id, "pool": pool_ids[0]}


async def more_events(services: Any, game_id: str) -> None:
    """The rest of the events straight into storage (10,000 ops 395 would take minutes),
    then the game actor restarted so that it loads them."""
    first = 1_700_000_000_000
    await services.storage.commit(
        [
            Insert(
                "events",
                {
                    "id": str(uuid.uuid4()),
                    "game_id": game_id,
                    "action_id": "a0",
                    "target_id": f"t{i % MAX_GAME_TARGETS}",
                    "happened_at": first + i,
                    "reported_at": None,
                    "registered_at": first + i,
                },
            )
            for i in range(MAX_GAME_EVENTS - MAX_GAME_TARGETS)
        ]
    )
    services.supervisor.kill(f"game:{game_id}")


async def measure(
    loop: LoopTime, name: str, request: Callable[[], Awaitable[Any]], out: list[str]
) -> None:
    busy, longest = [], []
    for _ in range(REPEATS):
        await trio.sleep(0.2)  # let the server go quiet
        loop.reset()
        await request()
        await trio.sleep(0.05)  # what it sends after the answer (broadcasts) counts too
        busy.append(loop.busy)
        longest.append(loop.longest)
    out.append(
        f"{name:38} loop busy {statistics.median(busy) * 1000:7.1f} ms"
        f"   longest step {statistics.median(longest) * 1000:7.1f} ms (median of {REPEATS})"
    )


async def client(portal: Portal[Any], admin: dict[str, Any], loop: LoopTime) -> list[str]:
    h = portal.value
    base = f"http://127.0.0.1:{h.endpoints.http_port}"
    key = {"Authorization": f"Bearer {h.endpoints.operator_key}"}
    out: list[str] = []
    async with (
        httpx.AsyncClient(base_url=base, headers=key, timeout=120) as http,
        open_websocket_url(h.ws_url(admin), max_message_size=64 << 20) as raw,
    ):
        ws = WsClient(raw, admin["user_id"])
        ids = await build(ws, http)
        game, pool, source = ids["game"], ids["pool"], ids["source"]
        await trio.to_thread.run_sync(portal.run, more_events, h.services, game)

        async def get(path: str) -> None:
            assert (await http.get(path)).status_code == 200, path

        for name, request in [
            ("372 game detail (342)", lambda: ws.call(372, 342, game_id=game)),
            (
                "373 re-send a target (343, 342 saved)",
                lambda: ws.call(373, 343, game_id=game, targets=["T1"]),
            ),
            ("393 pool distribution (360)", lambda: ws.call(393, 360, pool_id=pool)),
            ("387 open pools (3535)", lambda: ws.call(387, 3535, game_id=game)),
            ("GET /draws/{id}", partial(get, f"/draws/{game}")),
            (
                "GET draw-view",
                partial(get, f"/gaming-products/{source}/draw-view/{game}"),
            ),
            (
                "GET participation-pools",
                partial(get, f"/gaming-products/{source}/participation-pools"),
            ),
            (
                "GET a participation pool",
                partial(get, f"/gaming-products/{source}/participation-pools/{pool}"),
            ),
            (
                "GET betting-scheme",
                partial(
                    get, f"/gaming-products/{source}/participation-pools/{pool}/betting-scheme"
                ),
            ),
            ("GET /v1/games", partial(get, "/v1/games")),
            ("GET /v1/games/{id}/pools", partial(get, f"/v1/games/{game}/pools")),
        ]:
            await ws.drain(0.01)
            await measure(loop, name, request, out)
    return out


def main() -> None:
    loop = LoopTime()
    opened = partial(running_harness, rate_per_second=1e9, rate_burst=10**9)
    with loop_in_thread(opened) as portal:

        async def install() -> None:
            trio.lowlevel.add_instrument(loop)

        portal.run(install)
        admin = portal.run(partial(portal.value.user, "large-admin", roles=["developer"]))
        lines = trio.run(client, portal, admin, loop)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
