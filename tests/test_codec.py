"""The wire codec without sockets: exact decimals, one error type for any bad input, and
no object that gives the same key twice, at any depth (the stdlib json parser with an
``object_pairs_hook`` is the oracle here, never on the server's path)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.codec import DecodeError, decode, decode_envelope, op_code, request_id_in
from domain.errors import DomainError

KEYS = st.sampled_from(["a", "b", "op", ":", '"', "\\", "\u00e9", "a:b", ""])
SCALAR_TEXT = st.one_of(
    st.just("null"),
    st.just("true"),
    st.integers().map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.text(max_size=6).map(json.dumps),
    KEYS.map(lambda k: json.dumps(k, ensure_ascii=False)),
)


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{json.dumps(k)} : {v}" for k, v in pairs) + "}"


JSON_TEXT = st.recursive(
    SCALAR_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
        | st.lists(st.tuples(KEYS, inner), max_size=4).map(_object)
    ),
    max_leaves=12,
)


def _has_repeated_key(text: str) -> bool:
    repeated = False

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        repeated = repeated or len({k for k, _ in pairs}) < len(pairs)
        return dict(pairs)

    json.loads(text, object_pairs_hook=pairs_hook)
    return repeated


@given(JSON_TEXT)
def test_repeated_keys_are_refused_at_any_depth_and_nothing_else_is(text: str) -> None:
    for data in (text, text.encode()):
        if _has_repeated_key(text):
            with pytest.raises(DecodeError, match="same key twice"):
                decode(data)
        else:
            assert decode(data) == json.loads(text, parse_float=Decimal)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "{",
        "not json",
        '{"a": NaN}',
        "[" * 100_000,
        "[" * 5_000 + "]" * 5_000,
        "-" + "9" * 5000,
        b'{"a": "\xff"}',
        '{"a": "\\ud800"}',
    ],
)
def test_every_bad_input_is_one_decode_error(data: str | bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)
    assert decode_envelope(data) == (None, None)


def test_fractions_stay_decimal() -> None:
    assert decode('{"amount": 10.10, "n": 3}') == {"amount": Decimal("10.10"), "n": 3}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (392, 392),
        ("392", 392),
        (" 1 ", 1),
        ("\u00b2", None),
        ("\u0661", None),
        ("9" * 10, None),
        (True, None),
        (1.0, None),
        (Decimal("1"), None),
        (None, None),
        ([1], None),
        ({}, None),
    ],
)
def test_op_codes_are_integers_or_ascii_digit_strings(value: Any, code: int | None) -> None:
    assert op_code(value) == code


@pytest.mark.parametrize("header", [5, "x", [1], {"request_id": [1]}, {"request_id": 1.5}])
def test_a_request_id_that_cannot_be_echoed_is_refused(header: Any) -> None:
    with pytest.raises(DomainError) as caught:
        request_id_in(header)
    assert caught.value.code == "MALFORMED_MESSAGE"
    assert caught.value.extra["parameter"] in ("header", "request_id")
