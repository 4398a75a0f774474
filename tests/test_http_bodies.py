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
