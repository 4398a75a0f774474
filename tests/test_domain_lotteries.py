"""The pure seed-003 rules, without trio: times, paging, query checks, statuses, links."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.lotteries import (
    CURIES,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    Hrefs,
    Listing,
    Page,
    ParticipationStatus,
    base_url,
    iso_time,
    pool_status,
    single_values,
)
from domain.pool import Pool


def test_times_are_iso_utc_at_second_precision() -> None:
    assert iso_time(1_424_973_600_000) == "2015-02-26T18:00:00Z"
    assert iso_time(1_424_973_600_999) == "2015-02-26T18:00:00Z"  # dropped, never later
    assert iso_time(None) is None


@given(total=st.integers(0, 500), size=st.integers(1, MAX_PAGE_SIZE))
def test_pages_cover_every_item_once_in_order(total: int, size: int) -> None:
    items = list(range(total))
    first = Page.of(Listing(size=size), total)
    shown: list[int] = []
    for number in range(1, first.last + 1):
        page = Page.of(Listing(page=number, size=size), total)
        shown += items[page.offset : page.offset + page.size]
    assert shown == items
    with pytest.raises(DomainError) as refused:
        Page.of(Listing(page=first.last + 1, size=size), total)
    assert (refused.value.code, refused.value.extra["parameter"]) == ("NOT_FOUND", "page")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"page": "0"}, "page"),
        ({"page": "01"}, "page"),
        ({"page": "٣"}, "page"),
        ({"page": "²"}, "page"),
        ({"page": " 1"}, "page"),
        ({"page": str(MAX_PAGE + 1)}, "page"),
        ({"page": "9" * 5000}, "page"),
        ({"size": str(MAX_PAGE_SIZE + 1)}, "size"),
        ({"size": ""}, "size"),
        ({"status": "Open"}, "status"),
        ({"status": ""}, "status"),
        ({"draw": "a/b"}, "draw"),
        ({"draw": "x" * 65}, "draw"),
    ],
)
def test_every_listing_parameter_is_checked_as_a_class(
    query: dict[str, str], parameter: str
) -> None:
    with pytest.raises(DomainError) as refused:
        Listing.parse(query)
    assert refused.value.code == "INVALID_PARAMETER"
    assert refused.value.extra["parameter"] == parameter


def test_a_listing_query_is_canonical_and_round_trips() -> None:
    listing = Listing.parse({"draw": "d-1", "status": "open", "size": "5", "page": "2"})
    assert listing == Listing(2, 5, ParticipationStatus.OPEN, "d-1")
    assert listing.query(3) == "page=3&size=5&status=open&draw=d-1"
    assert Listing().query(1) == ""
    again = dict(part.split("=") for part in listing.query(2).split("&"))
    assert Listing.parse(again) == listing


def test_unknown_and_repeated_query_parameters_are_refused() -> None:
    with pytest.raises(DomainError) as refused:
        single_values([("page", ["1"]), ("sort", ["x"])], ("page",))
    assert refused.value.extra["parameter"] == "sort"
    with pytest.raises(DomainError) as refused:
        single_values([("page", ["1", "2"])], ("page",))
    assert refused.value.extra["parameter"] == "page"
    assert single_values([("page", ["1"])], ("page", "size")) == {"page": "1"}


@pytest.mark.parametrize(
    "host", ["evil.example/x", "a b", "", "host:99999999", "[zz]", "h\u0130st", "x@y"]
)
def test_a_host_header_that_is_not_a_host_is_refused(host: str) -> None:
    with pytest.raises(DomainError) as refused:
        base_url(None, "http", host)
    assert refused.value.extra["parameter"] == "Host"


def test_links_start_at_the_public_url_when_there_is_one() -> None:
    assert base_url("https://tote.example/api/", "http", "ignored") == "https://tote.example/api"
    assert base_url(None, "http", "127.0.0.1:8766") == "http://127.0.0.1:8766"
    assert base_url(None, "https", "[::1]:443") == "https://[::1]:443"
    hrefs = Hrefs("https://t.example")
    assert hrefs.pool("p 1", "x/y") == (
        "https://t.example/gaming-products/p%201/participation-pools/x%2Fy"
    )
    assert CURIES[0]["href"].endswith("{link-relationship}") and CURIES[0]["templated"] is True


def a_pool(**fields: Any) -> Pool:
    return Pool("p", "g", "G", "", "goal", 1, {"a": "A", "none": "None"}, 1, "EUR", 2, **fields)


def test_pool_status_tells_open_from_closed_and_settled() -> None:
    assert pool_status(a_pool(), 1_000, resolving=False) is ParticipationStatus.OPEN
    assert pool_status(a_pool(), 1_000, resolving=True) is ParticipationStatus.CLOSED
    assert pool_status(a_pool(blocked=True), 1_000, resolving=False) is ParticipationStatus.CLOSED
    stopped = a_pool(stop_accepting_bets_at=500)
    assert pool_status(stopped, 1_000, resolving=False) is ParticipationStatus.CLOSED
    for status in ("resolved", "voided", "expired"):
        assert pool_status(a_pool(status=status), 0, resolving=False) == status


def test_closing_time_is_the_pools_own_else_its_games() -> None:
    assert a_pool(stop_accepting_bets_at=5, finish_at=3).closing_at(9) == 5  # type 1
    timed = a_pool(stop_accepting_bets_at=5, finish_at=3)
    timed.pool_type = 2
    assert timed.closing_at(9) == 3
    assert a_pool().closing_at(9) == 9
    assert a_pool().closing_at(None) is None
