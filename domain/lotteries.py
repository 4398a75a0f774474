"""Seed 003 (lotteries.io) as pure data: tote's sources, games and pools shown as HAL+JSON
gaming products, draws and participation pools (docs/lotteries.md has the mapping).

No trio, no storage, no web framework: the transport reads rows, this module checks the
query, does the paging arithmetic and shapes every resource with absolute links, so each
rule is testable on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

from domain.errors import DomainError
from domain.game import Game
from domain.money import MAX_POOL_TOTAL, exponent_of, to_wire
from domain.pool import PARIMUTUEL, Pool, PoolType

CURIES = [
    {
        "name": "lo",
        "href": "http://www.lotteries.io/link-relationships/{link-relationship}",
        "templated": True,
    }
]
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
#: No listing is this long; the bound keeps ``page * size`` a small number.
MAX_PAGE = 1_000_000

_PAGE_TEXT = re.compile(r"[1-9][0-9]{0,6}")
#: Source, game and pool ids are UUIDs; anything else names nothing.
_ID_TEXT = re.compile(r"[0-9A-Za-z-]{1,64}")
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_PUBLIC_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(?:/[A-Za-z0-9._~/-]*)?")


class ParticipationStatus(StrEnum):
    """A participation pool's ``pool-status`` (and the listing's ``status`` filter)."""

    OPEN = "open"  # takes bets now
    CLOSED = "closed"  # unresolved, takes no bets (blocked, stopped, finished, resolving)
    RESOLVED = "resolved"
    VOIDED = "voided"
    EXPIRED = "expired"


def iso_time(epoch_ms: int | None) -> str | None:
    """ISO 8601 UTC at second precision (``2015-02-26T18:00:00Z``), as seed 003 asks;
    milliseconds are dropped, not rounded, so a time never shows later than it is."""
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pool_status(pool: Pool, now: int, *, resolving: bool) -> ParticipationStatus:
    """``resolving``: an event that resolves the pool is committed, its payout not yet."""
    if not pool.is_open:
        return ParticipationStatus(pool.status)
    if resolving or pool.refusal(now) is not None:
        return ParticipationStatus.CLOSED
    return ParticipationStatus.OPEN


# -- the request ------------------------------------------------------------------------


def checked_id(value: str, what: str) -> str:
    """A path id; NOT_FOUND when it cannot name a ``what`` (ids are UUIDs)."""
    if not _ID_TEXT.fullmatch(value):
        raise DomainError("NOT_FOUND", f"There is no {what} {value[:64]!r}.")
    return value


def base_url(public_url: str | None, scheme: str, host: str) -> str:
    """Where links start: the configured public URL, else the request's scheme and host
    (the Host header is input too: anything but a host name or address is refused)."""
    if public_url:
        return public_url.rstrip("/")
    if scheme not in ("http", "https") or not _HOST.fullmatch(host):
        raise DomainError("INVALID_PARAMETER", "The Host header is not a host.", parameter="Host")
    return f"{scheme}://{host}"


def check_public_url(value: str) -> str:
    """``--public-url``: an http(s) URL without query or fragment."""
    if not _PUBLIC_URL.fullmatch(value):
        raise ValueError(f"{value!r} is not an http(s) URL without query or fragment")
    return value.rstrip("/")


def single_values(args: Iterable[tuple[str, list[str]]], allowed: Iterable[str]) -> dict[str, str]:
    """The query as name -> value: every name known, each given once."""
    known = set(allowed)
    values: dict[str, str] = {}
    for name, given in args:
        if name not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise DomainError(
                "INVALID_PARAMETER",
                f"Unknown query parameter {name[:64]!r}; this resource takes {expected}.",
                parameter=name[:64],
            )
        if len(given) != 1:
            raise DomainError(
                "INVALID_PARAMETER", f"{name} is given more than once.", parameter=name
            )
        values[name] = given[0]
    return values


def _positive(values: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    text = values.get(name)
    if text is None:
        return default
    if not _PAGE_TEXT.fullmatch(text) or int(text) > maximum:
        raise DomainError(
            "INVALID_PARAMETER",
            f"{name} must be a whole number from 1 to {maximum}, in ASCII digits.",
            parameter=name,
        )
    return int(text)


@dataclass(frozen=True)
class Listing:
    """What a listing request asks for; ``status`` and ``draw`` only for pools."""

    page: int = 1
    size: int = DEFAULT_PAGE_SIZE
    status: ParticipationStatus | None = None
    draw: str | None = None

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> Listing:
        status = values.get("status")
        if status is not None and status not in {s.value for s in ParticipationStatus}:
            raise DomainError(
                "INVALID_PARAMETER",
                f"status must be one of {', '.join(ParticipationStatus)}.",
                parameter="status",
            )
        draw = values.get("draw")
        if draw is not None and not _ID_TEXT.fullmatch(draw):
            raise DomainError("INVALID_PARAMETER", "draw must be a draw id.", parameter="draw")
        return cls(
            _positive(values, "page", 1, MAX_PAGE),
            _positive(values, "size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
            ParticipationStatus(status) if status is not None else None,
            draw,
        )

    def query(self, page: int) -> str:
        """The canonical query string of ``page`` of this listing (page 1 and the default
        size are left out, so the first page's address is the listing's own)."""
        fields: dict[str, Any] = {"page": page} if page != 1 else {}
        if self.size != DEFAULT_PAGE_SIZE:
            fields["size"] = self.size
        if self.status is not None:
            fields["status"] = self.status.value
        if self.draw is not None:
            fields["draw"] = self.draw
        return urlencode(fields)


@dataclass(frozen=True)
class Page:
    """One page of ``total`` items: which slice, and whether there are pages around it."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def last(self) -> int:
        """The last page; an empty listing still has page 1, with nothing on it."""
        return max(1, -(-self.total // self.size))

    @classmethod
    def of(cls, listing: Listing, total: int) -> Page:
        page = cls(listing.page, listing.size, total)
        if page.number > page.last:
            raise DomainError(
                "NOT_FOUND",
                f"There is no page {page.number}; the last is {page.last}.",
                parameter="page",
            )
        return page


# -- links --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hrefs:
    """Every resource's absolute address, from one base (scheme, host, optional path)."""

    base: str

    def products(self, query: str = "") -> str:
        return f"{self.base}/gaming-products" + (f"?{query}" if query else "")

    def product(self, product_id: str) -> str:
        return f"{self.base}/gaming-products/{quote(product_id, safe='')}"

    def pools(self, product_id: str, query: str = "") -> str:
        return f"{self.product(product_id)}/participation-pools" + (f"?{query}" if query else "")

    def pool(self, product_id: str, pool_id: str) -> str:
        return f"{self.pools(product_id)}/{quote(pool_id, safe='')}"

    def betting_scheme(self, product_id: str, pool_id: str) -> str:
        return f"{self.pool(product_id, pool_id)}/betting-scheme"

    def winning_scheme(self, product_id: str, pool_id: str) -> str:
        return f"{self.pool(product_id, pool_id)}/winning-scheme"

    def draw(self, draw_id: str) -> str:
        return f"{self.base}/draws/{quote(draw_id, safe='')}"

    def draw_view(self, product_id: str, draw_id: str) -> str:
        return f"{self.product(product_id)}/draw-view/{quote(draw_id, safe='')}"


def _links(self_href: str, **links: Any) -> dict[str, Any]:
    """``_links`` with the ``lo`` curie; keyword ``lo_x_y`` is the relation ``lo:x-y``."""
    named = {
        (f"lo:{key[3:].replace('_', '-')}" if key.startswith("lo_") else key): (
            {"href": value} if isinstance(value, str) else value
        )
        for key, value in links.items()
        if value is not None
    }
    return {"curies": CURIES, "self": {"href": self_href}, **named}


def _paging(page: Page, href_of_page: Any) -> dict[str, Any]:
    return {
        "prev": href_of_page(page.number - 1) if page.number > 1 else None,
        "next": href_of_page(page.number + 1) if page.number < page.last else None,
    }


def _counts(page: Page, shown: int) -> dict[str, int]:
    return {"page": page.number, "size": page.size, "total": page.total, "count": shown}


# -- resources ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """A game source, as a gaming product."""

    id: str
    name: str
    description: str
    closed: bool
    created_at: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Product:
        return cls(
            row["id"],
            row["name"],
            row["description"] or "",
            bool(row["closed"]),
            row["created_at"],
        )


def products_listing(
    hrefs: Hrefs, listing: Listing, page: Page, products: list[Product]
) -> dict[str, Any]:
    """The entry point: every gaming product, with its participation pools."""
    return {
        "_links": _links(
            hrefs.products(listing.query(page.number)),
            **_paging(page, lambda n: hrefs.products(listing.query(n))),
            lo_gaming_product=[
                {"href": hrefs.product(p.id), "name": p.id, "title": p.name} for p in products
            ],
            lo_participation_pools=[
                {"href": hrefs.pools(p.id), "name": p.id, "title": p.name} for p in products
            ],
        ),
        **_counts(page, len(products)),
    }


def product_resource(hrefs: Hrefs, product: Product) -> dict[str, Any]:
    return {
        "_links": _links(
            hrefs.product(product.id),
            lo_participation_pools=hrefs.pools(product.id),
            collection=hrefs.products(),
        ),
        "id": product.id,
        "name": product.name,
        "description": product.description,
        "status": "closed" if product.closed else "open",
        "created-time": iso_time(product.created_at),
    }


@dataclass(frozen=True)
class Statistics:
    """A pool's ``pool-statistics`` (docs/lotteries.md defines each count)."""

    orders: int = 0
    bet_specifications: int = 0
    bets: int = 0
    stakes: int = 0  # minor units, every stake ever taken (refunded ones too)

    def wire(self) -> dict[str, int]:
        return {
            "orders": self.orders,
            "bet-specifications": self.bet_specifications,
            "bets": self.bets,
        }


@dataclass(frozen=True)
class PoolEntry:
    """A pool with what the catalog knows around it."""

    pool: Pool
    game: Game
    resolving: bool

    def status(self, now: int) -> ParticipationStatus:
        return pool_status(self.pool, now, resolving=self.resolving)

    @property
    def sort_key(self) -> tuple[int, int, str]:
        """Earlier draws first (seed 003); within a draw, older pools first."""
        return (self.game.live_start_at, self.pool.start_at, self.pool.id)


def pools_listing(
    hrefs: Hrefs,
    product_id: str,
    listing: Listing,
    page: Page,
    entries: list[tuple[PoolEntry, Statistics]],
    now: int,
) -> dict[str, Any]:
    """One page of a product's participation pools, each link with status and counts."""
    return {
        "_links": _links(
            hrefs.pools(product_id, listing.query(page.number)),
            **_paging(page, lambda n: hrefs.pools(product_id, listing.query(n))),
            lo_participation_pool=[
                {
                    "href": hrefs.pool(product_id, entry.pool.id),
                    "title": entry.pool.description,
                    "pool-status": entry.status(now).value,
                    "pool-statistics": stats.wire(),
                }
                for entry, stats in entries
            ],
            lo_gaming_product=hrefs.product(product_id),
        ),
        **_counts(page, len(entries)),
    }


def select_pools(
    entries: Iterable[PoolEntry], now: int, status: ParticipationStatus | None
) -> list[PoolEntry]:
    """The pools a listing shows, in its order."""
    return sorted(
        (e for e in entries if status is None or e.status(now) is status),
        key=lambda e: e.sort_key,
    )


def pool_resource(
    hrefs: Hrefs, product_id: str, entry: PoolEntry, stats: Statistics, now: int
) -> dict[str, Any]:
    """A participation pool as seed 003 shows it, plus its state and counts."""
    pool, game = entry.pool, entry.game
    body: dict[str, Any] = {
        "_links": _links(
            hrefs.pool(product_id, pool.id),
            lo_gaming_product=hrefs.product(product_id),
            lo_draw=hrefs.draw(game.id),
            lo_gaming_product_draw_view=hrefs.draw_view(product_id, game.id),
            lo_betting_scheme=hrefs.betting_scheme(product_id, pool.id),
            lo_winning_scheme=hrefs.winning_scheme(product_id, pool.id),
            collection=hrefs.pools(product_id),
        ),
        "opening-time": iso_time(pool.start_at),
        "closing-time": iso_time(pool.last_bet_at(game.close_at)),
        "fail-safe-time": iso_time(pool.fail_safe_at),
        "id": pool.id,
        "description": pool.description,
        "pool-status": entry.status(now).value,
        "pool-statistics": stats.wire(),
        "currency": pool.currency,
        "stakes-in": to_wire(stats.stakes, pool.exponent),
    }
    if not pool.is_open:
        body["resolved-time"] = iso_time(pool.resolved_at)
        body["winning-target"] = pool.winning_target
    return body


def betting_scheme(hrefs: Hrefs, product_id: str, pool: Pool) -> dict[str, Any]:
    """What a valid bet in the pool is."""
    return {
        "_links": _links(
            hrefs.betting_scheme(product_id, pool.id),
            lo_participation_pool=hrefs.pool(product_id, pool.id),
            lo_gaming_product=hrefs.product(product_id),
        ),
        "targets": [{"id": tid, "name": name} for tid, name in pool.targets.items()],
        "targets-per-bettor": 1,
        "currency": pool.currency,
        "decimals": pool.exponent,
        "minimum-stake": to_wire(pool.min_stake or 1, pool.exponent),
        "maximum-stake": None if pool.max_stake is None else to_wire(pool.max_stake, pool.exponent),
        "maximum-liability": to_wire(MAX_POOL_TOTAL, pool.exponent),
        "bet-delay-ms": pool.rules.bet_delay_ms,
    }


def winning_scheme(hrefs: Hrefs, product_id: str, pool: Pool) -> dict[str, Any]:
    """How the pool's winners and winnings are computed (decisions §2)."""
    takeout = Decimal(pool.takeout.numerator) / Decimal(pool.takeout.denominator)
    if pool.pool_type in PARIMUTUEL:
        decided_by = f"the first event of action {pool.action!r} after the pool opened"
    else:
        decided_by = "the game admin (op 396)"
    scheme: dict[str, Any] = {
        "_links": _links(
            hrefs.winning_scheme(product_id, pool.id),
            lo_participation_pool=hrefs.pool(product_id, pool.id),
            lo_gaming_product=hrefs.product(product_id),
        ),
        "kind": "parimutuel",
        "takeout": takeout,
        "decided-by": decided_by,
        "winning-classes": [
            {
                "name": "winner",
                "rule": "a bet on the winning target",
                "payout": "floor_to_minor_unit(stake * N / W), where T is every valid stake, "
                "N = T - floor(T * takeout) and W the stakes on the winning target",
            }
        ],
        "rounding": "down to the minor unit; the remainder (breakage) goes to the house",
        **_rules_scheme(pool),
        "late-bets": "bets placed after the deciding event are refunded and left out of T",
        "fail-safe": "still unresolved at the fail-safe time: voided, every stake refunded",
    }
    if pool.pool_type == PoolType.TIMED_PARIMUTUEL:
        scheme["expiry"] = "unresolved at its finish time, the pool resolves to 'none'"
    return scheme


def _rules_scheme(pool: Pool) -> dict[str, Any]:
    """The winning scheme's part that the pool's rules set (decisions §11)."""
    rules, money = pool.rules, pool.money
    dividend = Decimal(rules.min_dividend.numerator) / Decimal(rules.min_dividend.denominator)
    carry = (
        "when nobody backed the winner, the net pot moves to the pool recreated from this one"
        if rules.carry_over
        else "when nobody backed the winner, every stake is refunded, no takeout"
    )
    return {
        "minimum-dividend": dividend,
        "minus-pool": "a winner is never paid less than ceil(stake * minimum-dividend); "
        "the house covers it",
        "guarantee": None if rules.guarantee is None else money(rules.guarantee),
        "carry-over": rules.carry_over,
        "carried-in": money(pool.carried_in),
        "no-winner": carry,
    }


def draw_resource(
    hrefs: Hrefs, game: Game, events: list[dict[str, Any]], now: int
) -> dict[str, Any]:
    """A game as a draw: its draw time and its result so far (the events registered)."""
    tree = game.tree
    return {
        "_links": _links(
            hrefs.draw(game.id),
            lo_gaming_product=hrefs.product(game.source_id),
            lo_gaming_product_draw_view=hrefs.draw_view(game.source_id, game.id),
        ),
        "id": game.id,
        "name": game.name,
        "draw-time": iso_time(game.live_start_at),
        "status": game.status(now),
        "result": [
            {
                "action": event["action_id"],
                "target": event["target_id"],
                "target-name": tree.display_name(event["target_id"]),
                "time": iso_time(event["happened_at"]),
            }
            for event in events
        ],
    }


def draw_view_resource(
    hrefs: Hrefs,
    game: Game,
    entries: list[PoolEntry],
    stakes: int,
    events: int,
    now: int,
) -> dict[str, Any]:
    """How the product sees one of its draws: its pools, the stakes in, the events."""
    statuses = [entry.status(now) for entry in entries]
    return {
        "_links": _links(
            hrefs.draw_view(game.source_id, game.id),
            lo_gaming_product=hrefs.product(game.source_id),
            lo_draw=hrefs.draw(game.id),
            lo_participation_pools=hrefs.pools(game.source_id, Listing(draw=game.id).query(1)),
        ),
        "draw-time": iso_time(game.live_start_at),
        "currency": game.currency,
        "stakes-in": to_wire(stakes, exponent_of(game.currency)),
        "pools": len(entries),
        "open-pools": statuses.count(ParticipationStatus.OPEN),
        "events": events,
        "event-counts": game.counts,
    }
