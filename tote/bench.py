"""Benchmark: bets per second through the whole stack, and what group commit buys.

Runs the real server (real SQLite on disk, synchronous=FULL) in this process, opens
``--clients`` websocket connections, and has each place ``--bets`` bets as fast as the
replies come back. Reports throughput, reply latency, requests per SQLite transaction,
and the 360 broadcasts a subscriber received per bet. Figures on a shared machine are
noisy: read them as ratios within one run (e.g. requests per transaction), not as
absolutes. Run it with ``make bench`` (or ``python -m tote.bench --help``).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import trio
from trio_websocket import open_websocket_url

from actors.registry import handshake_digest
from actors.services import Settings
from domain.codec import decode, encode
from tote.server import Server, ServerConfig


async def _user(http: httpx.AsyncClient, name: str, roles: list[str], deposit: str) -> dict:
    user = (await http.post("/v1/users", json={"name": name, "roles": roles})).json()
    user["session_key"] = (await http.post(f"/v1/users/{user['user_id']}/sessions")).json()[
        "session_key"
    ]
    await http.post(
        f"/v1/users/{user['user_id']}/deposits",
        json={"currency": "EUR", "amount": deposit, "reference": name},
    )
    return user


def _url(port: int, user: dict) -> str:
    nonce = secrets.token_hex(8)
    digest = handshake_digest(user["user_id"], nonce, user["session_key"])
    return f"ws://127.0.0.1:{port}/?id={user['user_id']}&n={nonce}&h={digest}"


async def _call(ws, op: int, **fields) -> dict:
    await ws.send_message(encode({"header": {"request_id": "x"}, "op": op, **fields}).decode())
    while True:
        msg = decode(await ws.get_message())
        if msg["response_header"].get("request_id") == "x":
            return msg


async def run(clients: int, bets: int, synchronous: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(rate_per_second=1e9, rate_burst=10**9)
        server = Server(
            ServerConfig(
                data_dir=Path(tmp),
                ws_port=0,
                http_port=0,
                synchronous=synchronous,
                settings=settings,
            )
        )
        async with trio.open_nursery() as nursery:
            ep = await nursery.start(server.run)
            http = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ep.http_port}",
                headers={"Authorization": f"Bearer {ep.operator_key}"},
            )
            admin = await _user(http, "admin", ["developer"], "1")
            players = [await _user(http, f"p{i}", [], "100000") for i in range(clients)]
            async with open_websocket_url(_url(ep.ws_port, admin)) as aws:
                source = await _call(aws, 365, source_name="bench")
                game = await _call(
                    aws,
                    370,
                    source_id=source["source_id"],
                    game_name="A - B",
                    actions="goal",
                    targets="a,b",
                )
                await _call(aws, 616, game_id=game["game_id"])
                await _call(aws, 363, game_id=game["game_id"])
                pool = await _call(aws, 385, game_id=game["game_id"], action="goal", targets="a,b")
                latencies: list[float] = []

                async def player(user: dict, n: int) -> None:
                    async with open_websocket_url(_url(ep.ws_port, user)) as ws:
                        target = "a" if n % 2 else "b"
                        for _ in range(bets):
                            start = time.perf_counter()
                            reply = await _call(
                                ws, 392, pool_id=pool["pool_id"], target=target, amount="1.25"
                            )
                            assert reply["res"] == 356, reply
                            latencies.append(time.perf_counter() - start)

                stats_before = await _storage_stats(ep)
                started = time.perf_counter()
                async with trio.open_nursery() as players_nursery:
                    for n, user in enumerate(players):
                        players_nursery.start_soon(player, user, n)
                elapsed = time.perf_counter() - started
                stats_after = await _storage_stats(ep)
                await trio.sleep(0.5)
                broadcasts = 0
                with trio.move_on_after(0.5):
                    while True:
                        if decode(await aws.get_message())["res"] == 360:
                            broadcasts += 1
            await http.aclose()
            server.request_stop()
    total = clients * bets
    latencies.sort()
    commits = stats_after[0] - stats_before[0]
    requests = stats_after[1] - stats_before[1]
    return {
        "bets": total,
        "seconds": round(elapsed, 3),
        "bets_per_second": round(total / elapsed, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "storage_requests_per_transaction": round(requests / max(commits, 1), 2),
        "bets_per_transaction": round(total / max(commits, 1), 2),
        "distribution_broadcasts_per_bet": round(broadcasts / total, 3),
    }


async def _storage_stats(ep) -> tuple[int, int]:
    return await ep.services.storage.read(lambda db: (db.transactions, db.requests))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tote.bench")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--bets", type=int, default=40)
    args = parser.parse_args()
    for synchronous in ("FULL", "NORMAL"):
        result = trio.run(run, args.clients, args.bets, synchronous)
        print(f"synchronous={synchronous}: " + ", ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
