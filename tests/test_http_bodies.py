"""HTTP request bodies go through the one wire codec: a body it refuses is a 400 JSON
error and moves no money, whatever is wrong with it."""

from __future__ import annotations

import pytest

from tests.conftest import Harness

DEPOSIT = b'{"currency": "EUR", "amount": "1", "reference": "r"'


@pytest.mark.parametrize(
    "body",
    [
        b'{"currency": "EUR", "amount": "1", "amount": "1000", "reference": "r"}',
        DEPOSIT + b', "x": {"k": 1, "k": 2}}',  # a repeated key at any depth
        DEPOSIT + b', "x": "\xff"}',  # not UTF-8
        DEPOSIT + b', "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        DEPOSIT,  # not closed
    ],
)
async def test_a_body_the_codec_refuses_is_a_400_and_moves_nothing(
    harness: Harness, body: bytes
) -> None:
    user = await harness.user(deposit="5.00")
    r = await harness.http.post(
        f"/v1/users/{user['user_id']}/deposits",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "MALFORMED_MESSAGE"
    balances = await harness.http.get(f"/v1/users/{user['user_id']}/balances")
    assert balances.json()["EUR"]["current"] == 5


@pytest.mark.parametrize("path_id", ["\u0663", "\u00b2", "\uff11", "1" * 40])
async def test_a_path_id_is_ascii_digits_or_not_found(harness: Harness, path_id: str) -> None:
    user = await harness.user(deposit="5.00")
    assert user["user_id"] == 1  # what a fullwidth one would have been read as
    r = await harness.http.post(
        f"/v1/users/{path_id}/withdrawals",
        json={"currency": "EUR", "amount": "5", "reference": "w"},
    )
    assert r.status_code == 404, r.text
    balances = await harness.http.get(f"/v1/users/{user['user_id']}/balances")
    assert balances.json()["EUR"]["current"] == 5


async def test_a_refused_field_is_named_in_parameter(harness: Harness) -> None:
    r = await harness.http.post("/v1/users", json={"name": "ann", "roles": ["king"]})
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "roles"
