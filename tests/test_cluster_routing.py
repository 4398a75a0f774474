"""What an edge's routed services and forwarder answer when the owner's outcome is unknown: never
"certainly not applied" for what may have been (issue 22, hostile review)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import coredis
import pytest
import trio

from cluster.forward import never_connected
from cluster.routing import LocalActors, RoutedDesk
from domain.betslip import SlipAnswer, fingerprint
from domain.errors import DomainError, OutcomeUnknown
from storage import betslips as betslips_store
from storage.database import Database
from tests.postgres import open_test_database

T = TypeVar("T")
BODY = {"bets": [{"pool_id": "p-1", "target": "yes", "amount": "2.00"}]}


class Unanswering:
    """An actor that takes every request and never answers in time."""

    async def ask(self, body: Any, *, timeout: float) -> Any:
        await trio.sleep_forever()


class StandInServices:
    registry = Unanswering()
    games = None


async def test_an_owner_side_timeout_is_an_unknown_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    local = LocalActors(StandInServices(), render=lambda outcome: outcome)  # type: ignore[arg-type]
    with pytest.raises(OutcomeUnknown) as unknown:
        await local.handle("registry", "anything", 2.0)
    assert unknown.value.code == "REQUEST_TIMED_OUT"


class UnknownRouter:
    """A router whose forward of the slip was lost (the owner died with it in hand)."""

    def local(self) -> None:
        return None

    async def ask(self, key: str, message: Any, timeout: float) -> Any:
        raise OutcomeUnknown(
            "ACTOR_RESTARTED", "The owner changed while the request was in flight."
        )


class DatabaseStorage:
    """The storage actor's ``read``, on a database of the test's engine."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def read(self, query: Callable[[Database], T]) -> T:
        return query(self.db)


@pytest.fixture
def storage() -> Iterator[DatabaseStorage]:
    db = open_test_database()
    try:
        yield DatabaseStorage(db)
    finally:
        db.close()


def desk(storage: DatabaseStorage) -> RoutedDesk:
    return RoutedDesk(UnknownRouter(), storage, 5.0)  # type: ignore[arg-type]


async def test_a_lost_slip_not_stored_is_in_progress_never_not_placed(
    storage: DatabaseStorage,
) -> None:
    with pytest.raises(DomainError) as answer:
        await desk(storage).place("k-1", BODY, render=lambda outcome: outcome)
    assert answer.value.code == "REQUEST_IN_PROGRESS"
    assert not isinstance(answer.value, OutcomeUnknown)


async def test_a_lost_slip_that_was_stored_is_answered_as_stored(
    storage: DatabaseStorage,
) -> None:
    body = b'{"status":"placed"}'
    row = betslips_store.slip_answer("k-2", fingerprint(BODY), 1, None, body, 0)
    storage.db.apply_batch([[row]])
    answer = await desk(storage).place("k-2", BODY, render=lambda outcome: outcome)
    assert answer == SlipAnswer(None, body)
    with pytest.raises(DomainError) as reused:
        await desk(storage).place("k-2", {"other": 1}, render=lambda outcome: outcome)
    assert reused.value.code == "IDEMPOTENCY_KEY_REUSED"


def _caused(error: BaseException, cause: BaseException | None) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "nothing_sent"),
    [
        # what coredis 6.9 raised here with Redis down (the connect refused)
        (
            _caused(
                coredis.exceptions.ConnectionError("Unable to establish a connection to h:1"),
                _caused(OSError("All connection attempts failed"), ConnectionRefusedError(111)),
            ),
            True,
        ),
        (coredis.exceptions.ConnectionError("Unable to establish a connection to h:1"), True),
        # and with Redis killed after the request went out
        (coredis.exceptions.ConnectionError("Connection lost while receiving response"), False),
        (coredis.exceptions.ConnectionError("Connection lost while sending request"), False),
        (coredis.exceptions.ConnectionError("Connection lost!"), False),
        (trio.TooSlowError(), False),
    ],
)
def test_only_a_connection_never_made_is_certainly_not_sent(
    error: BaseException, nothing_sent: bool
) -> None:
    assert never_connected(error) is nothing_sent
