"""The per-address HTTP cap over IPv6 (hostile review of issue 18's finding 1): a client
is counted under its /64 and its /48, the /48 holding 8 times the cap. Counted per /64
only, one ISP customer (a /56 or a /48 delegated to them, as is usual) could hold 256 or
65,536 times the cap. Through a real IPv6 client on ::1, then the counting for addresses
a test machine does not have."""

from __future__ import annotations

import httpx
import trio

from kit.settings import Settings
from tests import postgres as engines
from tests.conftest import CHEAP_SCRYPT_N
from tests.test_http_connections import one_answer
from tote.server import Server, ServerConfig
from transport.addresses import AddressCounts, address_keys

CAP = 2


async def test_an_ipv6_client_past_its_cap_is_refused() -> None:
    settings = Settings(
        scrypt_n=CHEAP_SCRYPT_N, http_connections_per_address=CAP, http_idle_seconds=600
    )
    database = engines.current.server_database()
    server = Server(
        ServerConfig(host="::1", ws_port=0, http_port=0, database=database, settings=settings)
    )
    async with trio.open_nursery() as nursery:
        endpoints = await nursery.start(server.run)
        url = f"http://[::1]:{endpoints.http_port}"
        limits = httpx.Limits(max_keepalive_connections=CAP + 1)
        async with httpx.AsyncClient(base_url=url, limits=limits) as client:

            async def get() -> httpx.Response:
                return await client.get("/healthz")

            held = [await trio.open_tcp_stream("::1", endpoints.http_port) for _ in range(CAP)]
            for stream in held:  # each admitted and answered, so counted
                assert (await one_answer(stream))[0] == 200
            refused = await get()
            assert (refused.status_code, refused.json()["errorCode"]) == (
                429,
                "TOO_MANY_CONNECTIONS",
            )
            for stream in held:
                await stream.aclose()
        server.request_stop()


def test_an_ipv6_client_counts_under_its_64_and_its_48() -> None:
    assert address_keys("::ffff:192.0.2.7") == (("192.0.2.7", 1),)
    assert address_keys("2001:db8:1:2:3::9%eth0") == (
        ("2001:db8:1:2::/64", 1),
        ("2001:db8:1::/48", 8),
    )
    counts = AddressCounts(CAP)
    holds = []
    for subnet in range(8 * CAP):  # a /64 each, all in one /48: each under its own cap
        keys = address_keys(f"2001:db8:1:{subnet:x}::1")
        assert not counts.full(keys)
        holds.append(counts.holding(keys))
        holds[-1].__enter__()
    assert counts.full(address_keys("2001:db8:1:ffff::1"))  # the /48 is full
    assert not counts.full(address_keys("2001:db8:2::1"))  # another /48 is not
    holds.pop().__exit__(None, None, None)
    assert not counts.full(address_keys("2001:db8:1:ffff::1"))
