"""Seed 003 over real HTTP: a client that knows only ``/gaming-products`` reaches every
resource kind by following links, every link answers, and bad requests get 4xx problems."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from domain.codec import decode
from domain.lotteries import CURIES, DEFAULT_PAGE_SIZE, iso_time
from tests.conftest import Harness, WsClient, setup_game
from tote.cli import build_parser
from tote.config import ConfigError, config_from

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
HOUR = 3_600_000

#: path shape -> resource kind
KINDS = {
    r"/gaming-products": "products",
    r"/gaming-products/[^/]+": "product",
    r"/gaming-products/[^/]+/participation-pools": "pools",
    r"/gaming-products/[^/]+/participation-pools/[^/]+": "pool",
    r"/gaming-products/[^/]+/participation-pools/[^/]+/betting-scheme": "betting-scheme",
    r"/gaming-products/[^/]+/participation-pools/[^/]+/winning-scheme": "winning-scheme",
    r"/draws/[^/]+": "draw",
    r"/gaming-products/[^/]+/draw-view/[^/]+": "draw-view",
}


def root(harness: Harness) -> str:
    return str(harness.http.base_url).rstrip("/")


def kind_of(href: str) -> str:
    path = urlsplit(href).path
    return next(kind for shape, kind in KINDS.items() if re.fullmatch(shape, path))


@pytest.fixture
async def anon(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """No operator key: the resources are public."""
    async with httpx.AsyncClient(base_url=str(harness.http.base_url)) as client:
        yield client


async def hal(client: httpx.AsyncClient, href: str) -> dict[str, Any]:
    r = await client.get(href)
    assert r.status_code == 200, (href, r.text)
    assert r.headers["content-type"] == "application/hal+json"
    body = decode(r.content)
    assert body["_links"]["curies"] == CURIES
    assert body["_links"]["self"]["href"] == href
    return body


def hrefs(body: dict[str, Any]) -> list[str]:
    """Every href of a resource's links, but the curie template."""
    found = []
    for rel, value in body["_links"].items():
        if rel != "curies":
            found += [link["href"] for link in (value if isinstance(value, list) else [value])]
    return found


async def problem(
    client: httpx.AsyncClient, href: str, status: int, parameter: str | None = None
) -> dict[str, Any]:
    r = await client.get(href)
    assert r.status_code == status, (href, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    body = decode(r.content)
    assert body["status"] == status and body["detail"]
    if parameter is not None:
        assert body["parameter"] == parameter, body
    return body


@pytest.fixture
async def made(harness: Harness) -> dict[str, Any]:
    """A product with a later and an earlier draw (created in that order) and 27 pools
    over them; ``admin`` administers it all."""
    admin = await harness.user(roles=["developer"])
    async with harness.connect(admin) as ws:
        return {"admin": admin, **await two_draws(harness, ws)}


async def two_draws(harness: Harness, ws: WsClient) -> dict[str, Any]:
    base = harness.services.clock.now_ms()
    later = await setup_game(ws, live_start_at=base + 2 * HOUR)
    source_id = (await ws.call(372, game_id=later))["source_id"]
    created = await ws.call(
        370,
        340,
        source_id=source_id,
        game_name="Chile - Peru",
        currency="EUR",
        actions=["Goal"],
        targets="Chile,Peru",
        live_start_at=base + HOUR,
    )
    earlier = created["game_id"]
    assert (await ws.call(616, game_id=earlier))["res"] == 640
    pools: dict[str, list[str]] = {later: [], earlier: []}
    for i in range(27):
        game_id = (later, earlier)[i % 2]
        targets = "Argentina,Brazil" if game_id == later else "Chile,Peru"
        reply = await ws.call(
            385,
            350,
            game_id=game_id,
            action="goal",
            targets=targets,
            description=f"pool {i}",
            stop_accepting_bets_at=base + 3 * HOUR,
            fail_safe_at=base + 4 * HOUR,
        )
        pools[game_id].append(reply["pool_id"])
    return {"source_id": source_id, "later": later, "earlier": earlier, "pools": pools}


async def test_every_resource_is_reached_from_the_entry_point_and_every_link_answers(
    harness: Harness, anon: httpx.AsyncClient, made: dict[str, Any]
) -> None:
    betted = made["pools"][made["earlier"]][0]
    for target, amount in (("chile", "5"), ("peru", "7")):
        async with harness.connect(await harness.user(deposit="100")) as bettor:
            for _ in range(2):
                await bettor.call(392, 356, pool_id=betted, target=target, amount=amount)

    entry = f"{root(harness)}/gaming-products"
    seen: dict[str, dict[str, Any]] = {}
    queue = [entry]
    while queue:
        href = queue.pop()
        if href in seen:
            continue
        seen[href] = await hal(anon, href)
        queue += hrefs(seen[href])
    kinds = {kind_of(href) for href in seen}
    assert kinds == set(KINDS.values())

    # the listing: two pages, earlier draws first, each link with status and counts
    products = seen[entry]
    [product_href] = [link["href"] for link in products["_links"]["lo:gaming-product"]]
    assert seen[product_href]["_links"]["collection"]["href"] == entry
    [pools_href] = [link["href"] for link in products["_links"]["lo:participation-pools"]]
    first = seen[pools_href]
    assert "prev" not in first["_links"] and first["total"] == 27
    links = first["_links"]["lo:participation-pool"]
    assert len(links) == DEFAULT_PAGE_SIZE
    second = seen[first["_links"]["next"]["href"]]
    assert "next" not in second["_links"]
    assert second["_links"]["prev"]["href"] == first["_links"]["self"]["href"]
    links += second["_links"]["lo:participation-pool"]
    assert len(links) == 27
    draw_time = []
    for link in links:
        pool = seen[link["href"]]
        assert link["pool-status"] == pool["pool-status"] == "open"
        draw = seen[pool["_links"]["lo:draw"]["href"]]
        draw_time.append(draw["draw-time"])
        for field in ("opening-time", "closing-time", "fail-safe-time"):
            assert ISO.fullmatch(pool[field]), (field, pool[field])
        # and back: the pool's product is the one we came from
        assert (
            pool["_links"]["lo:gaming-product"]["href"]
            == first["_links"]["lo:gaming-product"]["href"]
        )
    assert draw_time == sorted(draw_time) and draw_time[0] != draw_time[-1]
    earlier_pools = {link["href"].rsplit("/", 1)[1] for link in links[:13]}
    assert earlier_pools == set(made["pools"][made["earlier"]])

    # statistics: 2 bettors, one target each, 4 bets
    [counted] = [link for link in links if link["href"].endswith(betted)]
    assert counted["pool-statistics"] == {"orders": 2, "bet-specifications": 2, "bets": 4}
    assert seen[counted["href"]]["stakes-in"] == 24
    view = seen[seen[counted["href"]]["_links"]["lo:gaming-product-draw-view"]["href"]]
    assert (view["pools"], view["stakes-in"], view["events"]) == (13, 24, 0)
    scheme = seen[seen[counted["href"]]["_links"]["lo:betting-scheme"]["href"]]
    assert (scheme["currency"], scheme["decimals"], scheme["minimum-stake"]) == (
        "EUR",
        2,
        Decimal("0.01"),
    )
    assert [t["id"] for t in scheme["targets"]] == ["chile", "peru", "none"]


async def test_the_listing_filters_by_status_and_draw(
    harness: Harness, anon: httpx.AsyncClient, made: dict[str, Any]
) -> None:
    async with harness.connect(made["admin"]) as ws:
        voided = made["pools"][made["later"]][0]
        await ws.call(399, 362, pool_id=voided)
    base = f"{root(harness)}/gaming-products/{made['source_id']}/participation-pools"
    only = await hal(anon, f"{base}?status=voided")
    assert [link["href"].rsplit("/", 1)[1] for link in only["_links"]["lo:participation-pool"]] == [
        voided
    ]
    assert only["_links"]["lo:participation-pool"][0]["pool-status"] == "voided"
    assert (await hal(anon, f"{base}?status=open"))["total"] == 26
    drawn = await hal(anon, f"{base}?size=5&draw={made['earlier']}")
    assert drawn["total"] == 13
    assert drawn["_links"]["next"]["href"] == f"{base}?page=2&size=5&draw={made['earlier']}"
    last = await hal(anon, f"{base}?page=3&size=5&draw={made['earlier']}")
    assert last["count"] == 3 and "next" not in last["_links"]


async def test_bad_queries_ids_and_hosts_get_4xx_problems(
    harness: Harness, anon: httpx.AsyncClient, made: dict[str, Any]
) -> None:
    async with harness.connect(made["admin"]) as ws:
        other_source = (await ws.call(365, 335, source_name="other.example"))["source_id"]
    product = f"/gaming-products/{made['source_id']}"
    pools = f"{product}/participation-pools"
    pool_id = made["pools"][made["later"]][0]
    for query, parameter in [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=%D9%A3", "page"),  # an Arabic-Indic three
        ("page=1.0", "page"),
        ("page=", "page"),
        ("page=99999999999999999999", "page"),
        ("size=0", "size"),
        ("size=101", "size"),
        ("size=+5", "size"),
        ("status=bogus", "status"),
        ("status=OPEN", "status"),
        ("draw=nope", "draw"),
        (f"draw={pool_id}", "draw"),
        ("draw=%00", "draw"),
        ("page=1&page=2", "page"),
        ("sort=desc", "sort"),
    ]:
        await problem(anon, f"{pools}?{query}", 400, parameter)
    await problem(anon, "/gaming-products?status=open", 400, "status")
    await problem(anon, f"{pools}/{pool_id}?page=1", 400, "page")
    await problem(anon, f"{pools}?page=3", 404, "page")
    await problem(anon, "/gaming-products?page=2", 404, "page")
    for href in (
        "/gaming-products/nope",
        "/gaming-products/%E2%80%AEx",
        f"/gaming-products/{'a' * 65}",
        f"{pools}/nope",
        f"{pools}/{made['later']}",
        f"/gaming-products/{other_source}/participation-pools/{pool_id}",
        f"/gaming-products/{other_source}/participation-pools/{pool_id}/betting-scheme",
        f"{pools}/nope/winning-scheme",
        f"/draws/{pool_id}",
        f"/gaming-products/{other_source}/draw-view/{made['later']}",
    ):
        await problem(anon, href, 404)
    r = await anon.get("/gaming-products", headers={"Host": "evil.example/path?x"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    # and nothing of it changed anything
    assert (await hal(anon, f"{root(harness)}/gaming-products"))["total"] == 2


async def test_a_configured_public_url_starts_every_link(
    harness: Harness, anon: httpx.AsyncClient
) -> None:
    harness.services.settings.public_url = "https://tote.example/api"
    await harness.user(roles=["developer"])
    r = await anon.get("/gaming-products")
    body = decode(r.content)
    assert body["_links"]["self"]["href"] == "https://tote.example/api/gaming-products"


@pytest.mark.parametrize(
    "argv",
    [
        ["--public-url", "ftp://tote.example"],
        ["--public-url", "https://tote.example/?q=1"],
        ["--public-url", "https://tote.example/#top"],
        ["--fail-safe-delay-ms", "0"],
        ["--fail-safe-delay-ms", "-5"],
        ["--fail-safe-delay-ms", "1.5"],
        ["--fail-safe-delay-ms", "٣"],
    ],
)
def test_serve_refuses_a_bad_public_url_or_fail_safe_delay(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        config_from(build_parser().parse_args(["serve", *argv]))


def test_serve_takes_a_public_url_and_a_fail_safe_delay() -> None:
    config = config_from(
        build_parser().parse_args(
            ["serve", "--public-url", "https://tote.example/api/", "--fail-safe-delay-ms", "600000"]
        )
    )
    assert (config.settings.public_url, config.settings.fail_safe_delay_ms) == (
        "https://tote.example/api",
        600_000,
    )


async def test_a_draw_shows_its_result_and_its_pools_once_resolved(
    harness: Harness, anon: httpx.AsyncClient, made: dict[str, Any]
) -> None:
    async with harness.connect(made["admin"]) as ws:
        event = await ws.call(
            395, 366, game_id=made["earlier"], action_id="goal", target_id="Chile"
        )
    product = f"{root(harness)}/gaming-products/{made['source_id']}"
    view = await hal(anon, f"{product}/draw-view/{made['earlier']}")
    assert (view["pools"], view["open-pools"], view["events"]) == (13, 0, 1)
    draw = await hal(anon, view["_links"]["lo:draw"]["href"])
    assert draw["result"] == [
        {
            "action": "goal",
            "target": "chile",
            "target-name": "Chile",
            "time": draw["result"][0]["time"],
        }
    ]
    assert draw["result"][0]["time"] == iso_time(event["happened_at"])
    assert view["_links"]["lo:participation-pools"]["href"] == (
        f"{product}/participation-pools?draw={made['earlier']}"
    )
    resolved = await hal(
        anon, f"{product}/participation-pools?status=resolved&draw={made['earlier']}"
    )
    assert resolved["total"] == 13
    pool = await hal(anon, resolved["_links"]["lo:participation-pool"][0]["href"])
    assert (pool["pool-status"], pool["winning-target"]) == ("resolved", "chile")
    assert ISO.fullmatch(pool["resolved-time"])
