"""Scenario 5, hostile input over the websocket, on money: a funded player sends bets as
raw frames whose amount, target and pool are hostile JSON tokens (exponents, Unicode
digits, thousands of digits, nesting, keys given twice). Each frame gets one answer; a
refused bet leaves every guarded row as it was, and an accepted one moves exactly the
stake it confirms, in whole cents. (tests/test_fuzz_ws.py and tests/test_ws_hostile.py
cover any op and envelope from a player without money; this adds the money.)"""

from __future__ import annotations

from decimal import Decimal

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import running_harness
from tests.reliability.world import build_world, fingerprint

AMOUNTS = [
    "1",
    "0.01",
    "0.001",
    "1e2",
    "1E-2",
    "0.1e1",
    "-1",
    "0",
    "1e999999",
    "1" + "0" * 400,
    '"1.50"',
    '"\u0663"',
    '"\u00b2"',
    '"NaN"',
    '"1e2"',
    "[[[[[[1]]]]]]",
    '{"amount": 1}',
    "null",
    "true",
    "9223372036854775807",
]
TARGETS = ['"argentina"', '"Brazil"', '"brazil "', '"argentina:1"', '"x"', "1", "null", "[]"]


def frames(pool_id: str) -> st.SearchStrategy[tuple[str, str]]:
    """(request id, raw frame): the frame may not even be JSON we could parse back."""
    pools = st.sampled_from([f'"{pool_id}"', f'"{pool_id.upper()}"', '"nope"', "7", "null"])
    tokens = st.sampled_from(AMOUNTS)
    return st.builds(
        lambda n, pool, target, amount, again: (
            f"h{n}",
            f'{{"header": {{"request_id": "h{n}"}}, "op": 392, "pool_id": {pool}, '
            f'"target": {target}, "amount": {amount}{again}}}',
        ),
        st.integers(0, 10**6),
        pools,
        st.sampled_from(TARGETS),
        tokens,
        st.just("") | tokens.map(lambda t: f', "amount": {t}'),
    )


async def wallet_cents(harness: object, user_id: int) -> int:
    return await harness.services.storage.read(  # type: ignore[attr-defined]
        lambda db: db.scalar(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account = ?", (f"wallet:{user_id}",)
        )
    )


async def scenario(draw: st.DataObject) -> None:
    async with running_harness() as harness:
        world = await build_world(harness)
        victim = world.victim["user_id"]
        async with harness.connect(world.victim) as ws:
            for request_id, raw in draw.draw(st.lists(frames(world.pool_id), max_size=8)):
                before = await fingerprint(harness)
                cents = await wallet_cents(harness, victim)
                await ws.send_raw(raw)
                reply = await ws.expect((356, 666), request_id=request_id)
                if reply["res"] == 666:
                    assert reply["error_code"] != "INTERNAL_ERROR", reply
                    assert await fingerprint(harness) == before, raw
                else:
                    stake = Decimal(str(reply["amount"])) * 100
                    assert stake == stake.to_integral_value() and stake > 0, reply
                    assert await wallet_cents(harness, victim) == cents - int(stake), raw
            assert (await ws.call(1))["res"] == 1  # still connected


@settings(max_examples=20, deadline=None)
@given(draw=st.data())
def test_hostile_bets_move_exactly_what_they_confirm_or_nothing(draw: st.DataObject) -> None:
    trio.run(scenario, draw)
