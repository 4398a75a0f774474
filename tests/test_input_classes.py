"""Request fields by class (issue 6): every time, integer, amount, rate and currency field
is parsed by one function per class, and whatever a client sends gets a clean refusal
naming the field, never an INTERNAL_ERROR, a crashed actor or a stored value that breaks
the next start. Pure properties first, then one real websocket (or HTTP) test per class."""

from __future__ import annotations

import json
import math
import sqlite3
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import params
from domain.errors import DomainError
from domain.game import Game, event_target, new_game
from domain.money import (
    CURRENCY_EXPONENTS,
    MAX_BALANCE,
    MAX_MINOR,
    MAX_POOL_TOTAL,
    check_deposit,
    parse_amount,
    parse_currency,
    parse_rate,
    rate_text,
    stored_rate,
)
from domain.params import INT64_MAX, TIME_MAX_MS, TIME_MIN_MS
from domain.pool import Bet, Pool, new_pool
from domain.targets import TargetTree
from kit.clock import WallClock
from storage.database import EXACT_SUM, exact_total
from tests.conftest import Harness, WsClient, setup_game
from tote.server import Server, ServerConfig

NOW = 1_750_000_000_000
UNICODE_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: c not in string.digits)

#: Anything a JSON decoder (ours reads fractions as Decimal) can hand a field.
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=Decimal("-1E+400000"), max_value=Decimal("1E+400000")),
    st.sampled_from([Decimal("1E+400000"), Decimal("-1E+999999"), Decimal("1E-999999")]),
    st.text(max_size=40),
    st.text(alphabet=string.digits, min_size=15, max_size=6000),
    st.builds(lambda d, n: d * n, UNICODE_DIGITS, st.integers(1, 12)),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1E+999999", "1e400", "²", "٣", "1_000"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=4,
)


def refused_naming(call: Any, field: str, *codes: str) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.code in codes, caught.value
    assert caught.value.extra.get("parameter") == field, caught.value
    return caught.value


# -- integers -------------------------------------------------------------------------


@given(value=JSON_VALUES)
def test_an_integer_field_is_an_integer_in_its_range_or_a_refusal_naming_it(value: Any) -> None:
    try:
        parsed = params.integer({"n": value}, "n", minimum=-5, maximum=10**12)
    except DomainError as error:
        assert error.code == "INVALID_PARAMETER" and error.extra["parameter"] == "n"
    else:
        assert parsed is None or (type(parsed) is int and -5 <= parsed <= 10**12)


@given(digits=st.builds(lambda d, n: d * n, UNICODE_DIGITS, st.integers(1, 5)))
def test_unicode_digits_are_not_an_integer(digits: str) -> None:
    refused_naming(lambda: params.integer({"n": digits}, "n"), "n", "INVALID_PARAMETER")


def test_thousands_of_digits_are_refused_without_converting_them() -> None:
    for value in ("9" * 5000, Decimal("1E+400000"), 10**400, "-" + "1" * 20):
        refused_naming(lambda v=value: params.integer({"n": v}, "n"), "n", "INVALID_PARAMETER")
    assert params.integer({"n": str(INT64_MAX)}, "n") == INT64_MAX


# -- times ----------------------------------------------------------------------------


@given(value=JSON_VALUES)
def test_a_time_field_is_inside_2000_to_2200_or_a_refusal_naming_it(value: Any) -> None:
    try:
        parsed = params.epoch_ms({"block_at": value}, "block_at")
    except DomainError as error:
        assert error.code == "INVALID_PARAMETER" and error.extra["parameter"] == "block_at"
    else:
        assert parsed is None or (type(parsed) is int and TIME_MIN_MS <= parsed <= TIME_MAX_MS)


@pytest.mark.parametrize(
    "value",
    [Decimal("1E+400"), 10**400, 10**30, -1, 0, "1" * 5000, "٣", TIME_MAX_MS + 1, 946_684_799],
)
def test_times_out_of_range_are_refused(value: Any) -> None:
    refused_naming(lambda: params.epoch_ms({"at": value}, "at"), "at", "INVALID_PARAMETER")


def test_times_in_seconds_and_milliseconds_at_the_range_edges() -> None:
    assert params.epoch_ms({"at": 946_684_800}, "at") == TIME_MIN_MS
    assert params.epoch_ms({"at": TIME_MAX_MS}, "at") == TIME_MAX_MS
    assert params.epoch_ms({"at": Decimal("1417104170.5")}, "at") == 1_417_104_170_500


async def _clock() -> WallClock:
    return WallClock(NOW)


CLOCK = trio.run(_clock)  # deadline_for is plain arithmetic; only creation needs trio


@given(
    at=st.one_of(
        st.integers(),
        st.integers(min_value=10**300, max_value=10**400),
        st.integers(min_value=-(10**400), max_value=-(10**300)),
        st.floats(),
    )
)
def test_a_deadline_never_raises_and_beyond_the_range_is_never(at: Any) -> None:
    deadline = CLOCK.deadline_for(at)
    if not at <= TIME_MAX_MS:
        assert deadline == math.inf
    else:
        assert math.isfinite(deadline)


@given(value=JSON_VALUES | st.floats())
def test_a_stored_time_is_read_back_in_range(value: Any) -> None:
    read = params.stored_time(value, "block_at")
    assert read is None or (type(read) is int and 0 <= read <= TIME_MAX_MS)


def _game(**fields: Any) -> Game:
    return new_game(
        "src",
        {"game_name": "A - B", "actions": "goal", "targets": "a,b,a:1", **fields},
        NOW,
        opened=True,
        default_currency="EUR",
    )


def test_stored_docs_with_huge_times_load_as_never() -> None:
    game_doc = {**_game().to_doc(), "close_at": 10**400, "live_finish_at": 1e30}
    game = Game.from_doc(game_doc)
    assert game.close_at == TIME_MAX_MS and game.live_finish_at == TIME_MAX_MS
    pool_doc = {
        **new_pool(game, {"action": "goal", "targets": "a,b"}, NOW).to_doc(),
        "block_at": 10**400,
        "stop_accepting_bets_at": 1e30,
        "finish_at": float("inf"),
        "fail_safe_at": 10**400,
    }
    pool = Pool.from_doc(pool_doc, [Bet("b1", 7, "a", 100, NOW)])
    assert (pool.block_at, pool.stop_accepting_bets_at) == (TIME_MAX_MS, TIME_MAX_MS)
    assert pool.fail_safe_at == TIME_MAX_MS
    assert pool.refusal(NOW) is None and pool.total == 100


# -- rates ----------------------------------------------------------------------------

RATES = st.decimals(min_value=0, max_value=Decimal("0.9999999999"), places=10)


@given(rate=RATES)
def test_a_rate_is_stored_as_exact_decimal_text_that_parse_rate_reads_back(rate: Decimal) -> None:
    parsed = parse_rate(rate)
    assert parse_rate(rate_text(parsed)) == parsed == Fraction(rate)
    assert stored_rate(rate_text(parsed)) == parsed


@given(rate=RATES)
def test_a_games_takeout_is_its_pools_default(rate: Decimal) -> None:
    game = Game.from_doc(_game(takeout=str(rate)).to_doc())
    assert new_pool(game, {"action": "goal", "targets": "a,b"}, NOW).takeout == Fraction(rate)


def test_a_takeout_stored_as_a_fraction_by_older_versions_still_loads() -> None:
    game = Game.from_doc({**_game().to_doc(), "takeout": "1/20"})
    assert game.takeout == "0.05"
    assert new_pool(game, {"action": "goal", "targets": "a"}, NOW).takeout == Fraction(1, 20)
    doc = {**new_pool(game, {"action": "goal", "targets": "a"}, NOW).to_doc(), "takeout": "1/20"}
    assert Pool.from_doc(doc, []).takeout == Fraction(1, 20)


# -- amounts and balances ---------------------------------------------------------------


@settings(max_examples=300)
@given(value=JSON_VALUES, exponent=st.sampled_from(sorted(set(CURRENCY_EXPONENTS.values()))))
def test_an_amount_is_positive_bounded_minor_units_or_a_clean_refusal(
    value: Any, exponent: int
) -> None:
    try:
        minor = parse_amount(value, exponent, field="amount", code="INVALID_AMOUNT")
    except DomainError as error:
        assert error.code == "INVALID_AMOUNT" and error.extra["parameter"] == "amount"
    else:
        assert type(minor) is int and 0 < minor <= MAX_MINOR


@given(
    deposits=st.lists(st.integers(1, MAX_MINOR), max_size=60),
    winnings=st.lists(st.integers(0, MAX_POOL_TOTAL), max_size=60),
)
def test_accepted_deposits_and_winnings_keep_every_stored_sum_inside_int64(
    deposits: list[int], winnings: list[int]
) -> None:
    """Deposits stop at MAX_BALANCE; a payout line is at most a pool's bounded total. The
    wallet's load sums them in halves that SQLite cannot overflow, exactly."""
    balance, lines = 0, []
    for amount, won in zip(deposits, winnings, strict=False):
        try:
            check_deposit(balance, amount, 2)
        except DomainError as error:
            assert error.extra == {"parameter": "amount", "limit": "max_balance"}
        else:
            balance += amount
            lines.append(amount)
        balance += won
        lines.append(won)
    assert all(line <= INT64_MAX for line in lines)
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    db.execute("CREATE TABLE ledger (amount INTEGER)")
    db.executemany("INSERT INTO ledger VALUES (?)", [(line,) for line in lines])
    assert exact_total(*db.execute(f"SELECT {EXACT_SUM} FROM ledger").fetchone()) == balance


def test_the_split_sum_is_exact_where_sqlite_sum_overflows() -> None:
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    db.execute("CREATE TABLE ledger (amount INTEGER)")
    db.executemany("INSERT INTO ledger VALUES (?)", [(INT64_MAX,), (INT64_MAX,), (-5,)])
    with pytest.raises(sqlite3.OperationalError, match="overflow"):
        db.execute("SELECT SUM(amount) FROM ledger").fetchone()
    assert exact_total(*db.execute(f"SELECT {EXACT_SUM} FROM ledger").fetchone()) == (
        2 * INT64_MAX - 5
    )


def test_a_pool_refuses_a_stake_past_its_total_limit() -> None:
    pool = new_pool(_game(), {"action": "goal", "targets": "a,b"}, NOW)
    pool.add(Bet("b1", 1, "a", MAX_POOL_TOTAL - 10, NOW))
    error = refused_naming(lambda: pool.check_bet(2, "b", "0.11", NOW), "amount", "INVALID_STAKE")
    assert error.extra["limit"] == "max_pool_total"


# -- currencies -------------------------------------------------------------------------


@given(code=st.text(alphabet=string.ascii_letters + string.digits, min_size=3, max_size=3))
def test_only_iso_4217_codes_are_currencies(code: str) -> None:
    if code.upper() in CURRENCY_EXPONENTS:
        assert parse_currency(code) == code.upper()
    else:
        refused_naming(lambda: parse_currency(code), "currency", "INVALID_PARAMETER")


def test_currency_exponents_and_defaults() -> None:
    assert (CURRENCY_EXPONENTS["EUR"], CURRENCY_EXPONENTS["JPY"], CURRENCY_EXPONENTS["KWD"]) == (
        2,
        0,
        3,
    )
    assert parse_currency(None, default="USD") == parse_currency(" ", default="USD") == "USD"
    for bad in ("ZZZ", "5", 978, ["EUR"], "XXX"):
        refused_naming(lambda b=bad: parse_currency(b), "currency", "INVALID_PARAMETER")


# -- event targets ----------------------------------------------------------------------


def test_an_event_target_is_a_known_leaf_and_the_refusal_says_which_rule() -> None:
    tree = TargetTree.build(["a", "a:1", "b"])
    assert event_target(tree, " A:1 ") == "a:1"
    unknown = refused_naming(lambda: event_target(tree, "zz"), "target_id", "INVALID_TARGET")
    assert "not a target of this game" in unknown.text
    team = refused_naming(lambda: event_target(tree, "a"), "target_id", "INVALID_TARGET")
    assert "not a leaf" in team.text


# -- over a real websocket, one test per class ----------------------------------------


async def _refused(ws: WsClient, op: int, code: str, parameter: str, **fields: Any) -> None:
    reply = await ws.call(op, **fields)
    assert (reply["res"], reply["error_code"], reply.get("parameter")) == (
        666,
        code,
        parameter,
    ), reply


@asynccontextmanager
async def _admin_with_pool(harness: Harness, **game: Any) -> AsyncIterator[tuple[WsClient, str]]:
    admin = await harness.user(roles=["developer"], deposit="100")
    async with harness.connect(admin) as ws:
        game_id = await setup_game(ws, **game)
        yield ws, game_id


async def test_ws_time_fields_out_of_range_are_refused_by_name(harness: Harness) -> None:
    async with _admin_with_pool(harness) as (ws, game_id):
        pool = await ws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
        pool_id = pool["pool_id"]
        new_pool = {"game_id": game_id, "action": "goal", "targets": "brazil"}
        for op, name, fields in [
            (397, "block_at", {"pool_id": pool_id}),
            (398, "allow_at", {"pool_id": pool_id}),
            (3975, "block_at", {"game_id": game_id, "action": "goal"}),
            (
                395,
                "happened_at",
                {"game_id": game_id, "action_id": "goal", "target_id": "brazil:7"},
            ),
            (385, "finish_at", {**new_pool, "pool_type": 2}),
            (385, "stop_accepting_bets_at", new_pool),
            (385, "fail_safe_at", new_pool),
        ]:
            for bad in (Decimal("1E+400"), Decimal("1E+30"), "9" * 5000, "²"):
                await _refused(ws, op, "INVALID_PARAMETER", name, **fields, **{name: bad})
        source_id = (await ws.call(365, 335, source_name="times.example"))["source_id"]
        for name in ("open_at", "close_at", "live_start_at", "live_finish_at"):
            for bad in (Decimal("1E+400"), "1e400", -1):
                await _refused(
                    ws, 370, "INVALID_PARAMETER", name,
                    source_id=source_id, game_name="G", **{name: bad},
                )  # fmt: skip
        assert (await ws.call(397, 368, pool_id=pool_id))["res"] == 368  # the pool lives on


async def test_ws_integer_and_amount_fields_refuse_unicode_and_huge_numbers(
    harness: Harness,
) -> None:
    async with _admin_with_pool(harness) as (ws, game_id):
        for bad in ("²", "٣", "1" * 5000, Decimal("1E+400000"), 5):
            await _refused(
                ws, 385, "INVALID_PARAMETER", "pool_type", game_id=game_id, pool_type=bad
            )
        pool = await ws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
        for bad in ("1E+9999", Decimal("1E+999999"), "NaN", "Infinity", "²", "1" * 5000):
            await _refused(
                ws, 392, "INVALID_STAKE", "amount", pool_id=pool["pool_id"], target="brazil",
                amount=bad,
            )  # fmt: skip
            await _refused(
                ws, 385, "INVALID_PARAMETER", "min_stake", game_id=game_id, action="goal",
                targets="brazil", min_stake=bad,
            )  # fmt: skip
        await _refused(
            ws, 392, "INVALID_TARGET", "target", pool_id=pool["pool_id"], target="x", amount="1"
        )


async def test_ws_currencies_are_iso_4217_everywhere(harness: Harness) -> None:
    async with _admin_with_pool(harness) as (ws, _):
        source = await ws.call(365, 335, source_name="other.example")
        for bad in ("ZZZ", "5", "eurx"):
            await _refused(
                ws, 370, "INVALID_PARAMETER", "currency",
                source_id=source["source_id"], game_name="G", currency=bad,
            )  # fmt: skip
            for op in (800, 810, 840):
                await _refused(ws, op, "INVALID_PARAMETER", "currency", currency=bad)
        assert (await ws.call(800, 800, currency="jpy"))["currency"] == "JPY"
    user = await harness.user()
    r = await harness.http.post(
        f"/v1/users/{user['user_id']}/deposits",
        json={"currency": "ZZZ", "amount": "1", "reference": "zzz"},
    )
    assert (r.status_code, r.json()["errorCode"], r.json()["parameter"]) == (
        400,
        "INVALID_PARAMETER",
        "currency",
    )


async def test_ws_a_game_takeout_carries_into_its_pools(harness: Harness) -> None:
    async with _admin_with_pool(harness, takeout="0.05") as (ws, game_id):
        await ws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
        created = await ws.expect(352)
        assert created["takeout"] == Decimal("0.05")


async def test_http_a_balance_stops_at_its_limit(harness: Harness) -> None:
    user = await harness.user()
    url = f"/v1/users/{user['user_id']}/deposits"
    top = str(MAX_BALANCE // 100)
    r = await harness.http.post(url, json={"currency": "EUR", "amount": top, "reference": "1"})
    assert r.status_code == 201, r.text
    r = await harness.http.post(url, json={"currency": "EUR", "amount": "0.01", "reference": "2"})
    body = r.json()
    assert (r.status_code, body["errorCode"], body["parameter"], body["limit"]) == (
        400,
        "INVALID_AMOUNT",
        "amount",
        "max_balance",
    )


async def test_ws_an_event_on_an_unknown_target_says_so(harness: Harness) -> None:
    async with _admin_with_pool(harness) as (ws, game_id):
        fields = {"game_id": game_id, "action_id": "goal"}
        reply = await ws.call(395, target_id="chile", **fields)
        assert reply["parameter"] == "target_id" and "not a target of this game" in reply["text"]
        reply = await ws.call(395, target_id="argentina", **fields)
        assert reply["parameter"] == "target_id" and "not a leaf" in reply["text"]


# -- stored out-of-range times, from an older version -------------------------------------


@asynccontextmanager
async def _server_on(data_dir: Path) -> AsyncIterator[Harness]:
    config = ServerConfig(
        data_dir=data_dir, ws_port=0, http_port=0, synchronous="OFF", operator_key="key"
    )
    server = Server(config)
    async with trio.open_nursery() as nursery:
        harness = Harness(await nursery.start(server.run), nursery)
        try:
            yield harness
            assert await harness.audit() == []
        finally:
            await harness.aclose()
            server.request_stop()


def _poison(data_dir: Path, table: str, row_id: str, **times: Any) -> None:
    """Write times straight into a stored doc, as an older version could have."""
    db = sqlite3.connect(data_dir / "tote.db")
    (doc,) = db.execute(f"SELECT doc FROM {table} WHERE id = ?", (row_id,)).fetchone()
    db.execute(
        f"UPDATE {table} SET doc = ? WHERE id = ?",
        (json.dumps({**json.loads(doc), **times}), row_id),
    )
    db.commit()
    db.close()


@pytest.mark.sqlite_only("edits tote.db with sqlite3, as an older version wrote it")
async def test_huge_stored_times_do_not_stop_a_pool_or_a_game(tmp_path: Path) -> None:
    async with _server_on(tmp_path) as harness:
        admin = await harness.user(roles=["developer"])
        player = await harness.user(deposit="50")
        async with harness.connect(admin) as ws:
            game_id = await setup_game(ws)
            fields = {"game_id": game_id, "action": "goal", "targets": "argentina,brazil"}
            first = (await ws.call(385, 350, **fields))["pool_id"]
            second = (await ws.call(385, 350, **fields))["pool_id"]
        async with harness.connect(player) as ws:
            await ws.call(392, 356, pool_id=first, target="brazil", amount="10")
    huge = {"block_at": 10**400, "allow_at": 1e30, "stop_accepting_bets_at": 10**30}
    _poison(tmp_path, "pools", first, **huge)
    _poison(tmp_path, "pools", second, **huge)
    _poison(tmp_path, "games", game_id, close_at=10**400, live_finish_at=1e30)
    async with _server_on(tmp_path) as harness:
        async with harness.connect(player) as ws:
            await ws.call(392, 356, pool_id=first, target="brazil", amount="5")
            await ws.call(392, 356, pool_id=second, target="argentina", amount="5")
        async with harness.connect(admin) as ws:
            assert (await ws.call(616, game_id=game_id))["res"] == 640
            voided = await ws.call(399, 362, pool_id=first)
            assert voided["is_money_return"] is True
            assert (await ws.call(375, 341, game_id=game_id))["res"] == 341
        async with harness.connect(player) as ws:
            balance = await ws.call(810, 810)
            assert balance["available_balance"] == Decimal("50")
