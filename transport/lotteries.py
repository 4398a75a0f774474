"""The lotteries.io resources of seed 003 over HTTP: read-only HAL+JSON, no key needed.

A client starts at ``GET /gaming-products`` and reaches every product, draw,
participation pool and scheme by following links (docs/lotteries.md). This module only
reads the request and storage; ``domain.lotteries`` checks the query and shapes the
answers. Every refusal is ``application/problem+json`` with a 4xx status (a storage
failure is 503), and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import msgspec
from quart import Blueprint, Response, request

from actors.services import Services
from domain.codec import encode
from domain.errors import DomainError
from domain.game import Game
from domain.lotteries import (
    Hrefs,
    Listing,
    Page,
    ParticipationStatus,
    PoolEntry,
    Product,
    Statistics,
    base_url,
    betting_scheme,
    checked_id,
    draw_resource,
    draw_view_resource,
    pool_resource,
    pools_listing,
    product_resource,
    products_listing,
    select_pools,
    single_values,
    winning_scheme,
)
from domain.pool import FailSafeRule, Pool
from storage import catalog
from storage.database import Database
from transport.httpkit import STATUS_OF, json_response

T = TypeVar("T")

HAL = "application/hal+json"
PROBLEM = "application/problem+json"
LISTING_PARAMETERS = ("page", "size")
POOL_LISTING_PARAMETERS = ("page", "size", "status", "draw")


def problem_response(error: DomainError) -> Response:
    """RFC 9457 problem details, with the error code and the field at fault."""
    status = STATUS_OF.get(error.code, 503)
    body = {
        **error.extra,
        "type": "about:blank",
        "title": error.code.replace("_", " ").capitalize(),
        "status": status,
        "detail": error.text,
        "errorCode": error.code,
    }
    response = json_response(body, status)
    response.content_type = PROBLEM
    return response


def hal_response(body: dict[str, Any]) -> Response:
    response = json_response(body)
    response.content_type = HAL
    return response


def _decoded(doc: str) -> dict[str, Any]:
    return msgspec.json.decode(doc)


def _entry(row: dict[str, Any], game_of: Callable[[str], Game], rule: FailSafeRule) -> PoolEntry:
    """A catalog pool row, with its game looked up by the pool's ``game_id``; a pool
    stored before every pool had a fail-safe time shows the one it gets when it loads."""
    pool = Pool.from_doc(_decoded(row["doc"]), [])
    game = game_of(pool.game_id)
    rule.fill(pool, game.close_at)
    return PoolEntry(pool, game, bool(row["resolving"]))


def _pool_entry(row: dict[str, Any], rule: FailSafeRule) -> PoolEntry:
    """A ``catalog.pool`` row (the pool with its game's document) as a PoolEntry."""
    game = Game.from_doc(_decoded(row["game_doc"]))
    return _entry(row, lambda _: game, rule)


def _listed(
    games: dict[str, str],
    rows: list[dict[str, Any]],
    now: int,
    status: ParticipationStatus | None,
    rule: FailSafeRule,
) -> list[PoolEntry]:
    """The listing's pools in order; run in a worker thread, since a product may have
    thousands of pools to decode and the event loop must not wait for that."""
    game_of = {game_id: Game.from_doc(_decoded(doc)) for game_id, doc in games.items()}
    return select_pools((_entry(row, game_of.__getitem__, rule) for row in rows), now, status)


def _encoded(build: Callable[[], dict[str, Any]]) -> bytes:
    return encode(build())


def _statistics(found: dict[str, dict[str, int]], pool_id: str) -> Statistics:
    row = found.get(pool_id)
    return Statistics(**row) if row else Statistics()


def lotteries_blueprint(services: Services) -> Blueprint:
    """The seed-003 resources: each route a method of ``LotteryRoutes`` over ``services``,
    registered from ``ROUTES``; every ``DomainError`` becomes a problem response."""
    bp = Blueprint("lotteries", __name__)
    bp.register_error_handler(DomainError, _refused)
    routes = LotteryRoutes(services)
    for path, name in ROUTES:
        bp.add_url_rule(path, view_func=getattr(routes, name), methods=["GET"])
    return bp


async def _refused(error: DomainError) -> Response:
    return problem_response(error)


_POOL = "/gaming-products/<product_id>/participation-pools/<pool_id>"

#: Path -> the ``LotteryRoutes`` method that answers its GET.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/gaming-products", "products"),
    ("/gaming-products/<product_id>", "product"),
    ("/gaming-products/<product_id>/participation-pools", "pools"),
    (_POOL, "pool"),
    (f"{_POOL}/betting-scheme", "pool_betting_scheme"),
    (f"{_POOL}/winning-scheme", "pool_winning_scheme"),
    ("/draws/<draw_id>", "draw"),
    ("/gaming-products/<product_id>/draw-view/<draw_id>", "draw_view"),
)


class LotteryRoutes:
    """The route handlers and what they share: storage reads, the clock, the fail-safe
    rule and the request's links. Each handler raises ``DomainError`` (``NOT_FOUND``,
    ``INVALID_PARAMETER``, ...) for a refusal, which the blueprint answers as a problem."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def read(self, query: Callable[[Database], T]) -> T:
        return await self.services.storage.read(query)

    def now(self) -> int:
        return self.services.clock.now_ms()

    def rule(self) -> FailSafeRule:
        return self.services.settings.fail_safe_rule

    def hrefs(self) -> Hrefs:
        return Hrefs(base_url(self.services.settings.public_url, request.scheme, request.host))

    @staticmethod
    def query(allowed: tuple[str, ...] = ()) -> dict[str, str]:
        return single_values(request.args.lists(), allowed)

    async def product_of(self, product_id: str) -> Product:
        row = await self.read(partial(catalog.source, source_id=checked_id(product_id, "product")))
        if row is None:
            raise DomainError("NOT_FOUND", f"There is no gaming product {product_id!r}.")
        return Product.from_row(row)

    async def pool_of(self, product_id: str, pool_id: str) -> tuple[dict[str, Any], Statistics]:
        """The pool's catalog row, when it is one of the product's: a pool under another
        product's address is not found, so every resource has one address."""
        checked_id(product_id, "product")
        row = await self.read(partial(catalog.pool, pool_id=checked_id(pool_id, "pool")))
        if row is None or row["source_id"] != product_id:
            raise DomainError("NOT_FOUND", f"There is no participation pool {pool_id!r} here.")
        stats = await self.read(partial(catalog.statistics, pool_ids=[pool_id]))
        return row, _statistics(stats, pool_id)

    async def game_of(self, draw_id: str) -> tuple[str, list[dict[str, Any]]]:
        """The draw's stored game document and its events."""
        found = await self.read(partial(catalog.game, game_id=checked_id(draw_id, "draw")))
        if found is None:
            raise DomainError("NOT_FOUND", f"There is no draw {draw_id!r}.")
        return found

    async def document(self, build: Callable[[], dict[str, Any]]) -> Response:
        """The resource ``build`` makes, decoded, built and encoded in a worker thread:
        a game's document holds up to 1,000 targets and its draw 10,000 events."""
        response = Response(await self.services.storage.build_document(_encoded, build))
        response.content_type = HAL
        return response

    async def products(self) -> Response:
        listing = Listing.parse(self.query(LISTING_PARAMETERS))
        total, rows = await self.read(
            partial(
                catalog.sources_page,
                offset=(listing.page - 1) * listing.size,
                limit=listing.size,
            )
        )
        page = Page.of(listing, total)
        found = [Product.from_row(row) for row in rows]
        return hal_response(products_listing(self.hrefs(), listing, page, found))

    async def product(self, product_id: str) -> Response:
        self.query()
        return hal_response(product_resource(self.hrefs(), await self.product_of(product_id)))

    async def pools(self, product_id: str) -> Response:
        listing = Listing.parse(self.query(POOL_LISTING_PARAMETERS))
        found = await self.product_of(product_id)
        games, rows = await self.read(
            partial(catalog.pools_of, source_id=found.id, game_id=listing.draw)
        )
        if listing.draw is not None and listing.draw not in games:
            raise DomainError(
                "INVALID_PARAMETER", "draw is not a draw of this product.", parameter="draw"
            )
        moment = self.now()
        shown = await self.services.storage.build_document(
            _listed, games, rows, moment, listing.status, self.rule()
        )
        page = Page.of(listing, len(shown))
        on_page = shown[page.offset : page.offset + page.size]
        stats = await self.read(
            partial(catalog.statistics, pool_ids=[entry.pool.id for entry in on_page])
        )
        entries = [(entry, _statistics(stats, entry.pool.id)) for entry in on_page]
        return hal_response(pools_listing(self.hrefs(), found.id, listing, page, entries, moment))

    async def pool(self, product_id: str, pool_id: str) -> Response:
        self.query()
        row, stats = await self.pool_of(product_id, pool_id)
        links, moment, rule = self.hrefs(), self.now(), self.rule()
        return await self.document(
            lambda: pool_resource(links, product_id, _pool_entry(row, rule), stats, moment)
        )

    async def pool_betting_scheme(self, product_id: str, pool_id: str) -> Response:
        self.query()
        row, _ = await self.pool_of(product_id, pool_id)
        links, rule = self.hrefs(), self.rule()
        return await self.document(
            lambda: betting_scheme(links, product_id, _pool_entry(row, rule).pool)
        )

    async def pool_winning_scheme(self, product_id: str, pool_id: str) -> Response:
        self.query()
        row, _ = await self.pool_of(product_id, pool_id)
        links, rule = self.hrefs(), self.rule()
        return await self.document(
            lambda: winning_scheme(links, product_id, _pool_entry(row, rule).pool)
        )

    async def draw(self, draw_id: str) -> Response:
        self.query()
        doc, events = await self.game_of(draw_id)
        links, moment = self.hrefs(), self.now()
        return await self.document(
            lambda: draw_resource(links, Game.from_doc(_decoded(doc)), events, moment)
        )

    async def draw_view(self, product_id: str, draw_id: str) -> Response:
        self.query()
        checked_id(product_id, "product")
        doc, events = await self.game_of(draw_id)
        game = Game.from_doc(_decoded(doc))
        if game.source_id != product_id:
            raise DomainError("NOT_FOUND", f"There is no draw {draw_id!r} of this product.")
        _, rows = await self.read(partial(catalog.pools_of, source_id=product_id, game_id=game.id))
        stats = await self.read(partial(catalog.statistics, pool_ids=[row["id"] for row in rows]))
        stakes = sum(row["stakes"] for row in stats.values())
        links, moment, rule = self.hrefs(), self.now(), self.rule()

        def build() -> dict[str, Any]:
            entries = [_entry(row, lambda _: game, rule) for row in rows]
            return draw_view_resource(links, game, entries, stakes, len(events), moment)

        return await self.document(build)
