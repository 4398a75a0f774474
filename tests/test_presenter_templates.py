"""The two messages of every bet (356, 815) are joined from byte templates for speed
(transport/presenters.py); they must be the very bytes the general presenter gives."""

from __future__ import annotations

from typing import Any

import pytest

from actors import pool as p
from actors.wallet import Balance, BalanceChanged
from domain.money import exponent_of
from transport.presenters import answer_messages, frame, present, server_message

T = 1_765_000_000_123
REQUEST_IDS: list[Any] = [None, "b12", 7, -3, 'é "quoted" \\ \u2028 ✓', ""]
AMOUNTS = [0, 1, 5, 100, 1050, -250, 10**15 + 7]
CURRENCIES = ["EUR", "JPY", "KWD", "XYZ"]


def _general(result: object, *, request_id: Any = None, header: Any = None) -> list[bytes]:
    return [
        server_message(res, fields, t=T, request_id=request_id, header=header)
        for res, fields in present(result)
    ]


@pytest.mark.parametrize("request_id", REQUEST_IDS)
@pytest.mark.parametrize("amount", AMOUNTS)
@pytest.mark.parametrize("currency", CURRENCIES)
def test_the_356_template_gives_the_presenters_bytes(
    request_id: Any, amount: int, currency: str
) -> None:
    placed = p.BetPlaced(
        'pool-\u00e9"1', "bet/2", 'tar"get\n', amount, currency, exponent_of(currency)
    )
    assert answer_messages(placed, t=T, request_id=request_id) == _general(
        placed, request_id=request_id
    )


@pytest.mark.parametrize("current", AMOUNTS)
@pytest.mark.parametrize("currency", CURRENCIES)
def test_the_815_template_gives_the_presenters_bytes(current: int, currency: str) -> None:
    changed = BalanceChanged(currency, Balance(current, current // 2 - 1, 3))
    assert frame(changed, {}, t=T) == _general(changed, header={})[0]


def test_the_815_to_a_game_keeps_its_header() -> None:
    changed = BalanceChanged("EUR", Balance(100, 50, 0))
    header = {"game_id": "g1", "seq": 4}
    assert frame(changed, header, t=T) == _general(changed, header=header)[0]
