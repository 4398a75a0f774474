"""Op 392 is read straight into a typed body when it has its usual shape
(``transport.ops_pools.read_bet``); everything else goes the general path, whose errors
the websocket tests check. Here: which messages take which path, and what the fast path
reads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from transport.ops import TYPED
from transport.ops_pools import read_bet

POOL = "pool-1"
LONG = "r" * 257  # past the longest request_id


@pytest.mark.parametrize(
    ("raw", "request_id"),
    [
        (
            f'{{"header":{{"request_id":"b1"}},"op":392,"amount":"1.00","pool_id":"{POOL}","target":"a"}}',
            "b1",
        ),
        (
            f'{{"op":392,"pool_id":"{POOL}","target":"b","amount":2.5,"header":{{"request_id":7}}}}',
            7,
        ),
        (f'{{"op":392,"pool_id":"{POOL}","target":"b","amount":2}}', None),
        (f'{{"op":392,"pool_id":"{POOL}","target":"b","amount":2,"header":null}}', None),
        (f'{{"op":392,"pool_id":"{POOL}","target":"b","amount":2,"header":{{}}}}', None),
    ],
)
def test_the_usual_shape_is_read_typed(raw: str, request_id: object) -> None:
    for data in (raw, raw.encode()):
        bet = read_bet(data)
        assert bet is not None
        assert (bet.pool_id, bet.request_id) == (POOL, request_id)
    assert read_bet(raw.replace("2.5", "2.50")) is not None


def test_a_fraction_is_exact() -> None:
    bet = read_bet(f'{{"op":392,"pool_id":"{POOL}","target":"a","amount":0.1}}')
    assert bet is not None and bet.amount == Decimal("0.1")


@pytest.mark.parametrize(
    "raw",
    [
        f'{{"op":392,"pool_id":"{POOL}","pool_id":"x","target":"a","amount":1}}',  # repeated
        f'{{"op":392,"pool_id":"{POOL}","target":"a:b","amount":1}}',  # a colon in a string
        f'{{"op":"392","pool_id":"{POOL}","target":"a","amount":1}}',  # op as text
        f'{{"op":393,"pool_id":"{POOL}","target":"a","amount":1}}',
        f'{{"op":392,"pool_id":"{POOL}","target":"a","amount":1,"extra":1}}',
        f'{{"op":392,"pool_id":"{POOL}","target":"a","amount":1,"header":{{"x":1}}}}',
        f'{{"op":392,"pool_id":"{POOL}","target":"a","amount":1,"header":{{"request_id":true}}}}',
        f'{{"op":392,"pool_id":"{POOL}","target":"a","amount":1,"header":[]}}',
        f'{{"op":392,"pool_id":"{POOL}","target":"a","amount":1,"header":{{"request_id":"{LONG}"}}}}',
        f'{{"op":392,"pool_id":" {POOL}","target":"a","amount":1}}',  # strip
        f'{{"op":392,"pool_id":"{"p" * 257}","target":"a","amount":1}}',  # too long
        '{"op":392,"pool_id":12,"target":"a","amount":1}',
        '{"op":392,"pool_id":"null","target":"a","amount":1}',
        f'{{"op":392,"pool_id":"{POOL}","target":" ","amount":1}}',  # null
        f'{{"op":392,"pool_id":"{POOL}","target":"a","amount":null}}',
        f'{{"op":392,"pool_id":"{POOL}","target":{{"a":1}},"amount":1}}',
        f'{{"op":392,"pool_id":"{POOL}","target":"a"}}',  # missing
        f'{{"op":392,"pool_id":"{POOL}","target":"a","amount":1',  # not JSON
        "[392]",
    ],
)
def test_anything_else_goes_the_general_path(raw: str) -> None:
    assert read_bet(raw) is None
    assert read_bet(raw.encode()) is None


def test_only_op_392_has_a_typed_path() -> None:
    assert [spec.code for spec in TYPED] == [392]
