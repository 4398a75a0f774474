"""The cluster checker on hand-made histories: a sound one passes, and each kind of broken
one is caught and named."""

from __future__ import annotations

from collections import Counter

from storage.leases import EpochWrites
from tests.reliability.cluster_checker import (
    Broadcast,
    History,
    Outcome,
    Stored,
    check,
    failover_line,
)

C, R, U = Outcome.CONFIRMED, Outcome.REFUSED, Outcome.UNKNOWN


def sound() -> tuple[History, Stored]:
    """Three bets (confirmed, refused, unknown and stored), one pool resolved and heard by
    both subscribers, two epochs one after the other."""
    history = History(failovers=[2.5, 3.0])
    history.record(("u1", "p1", 101), C)
    history.record(("u1", "p1", 102), R, "POOL_CLOSED")
    history.record(("u2", "p1", 201), U, "UNAVAILABLE")
    history.resolved.add("p1")
    for name in ("on-a", "on-b"):
        subscriber = history.subscriber(name)
        subscriber.received += [Broadcast("g", 3, 360, "p1"), Broadcast("g", 9, 362, "p1")]
    stored = Stored(
        Counter({("u1", "p1", 101): 1, ("u2", "p1", 201): 1}),
        settlements=Counter({"p1": 1}),
        fence_log=[EpochWrites(1, "node-a", 100, 200, 5), EpochWrites(2, "node-b", 300, 400, 2)],
    )
    return history, stored


def test_a_sound_history_passes_with_its_figures() -> None:
    verdict = check(*sound())
    assert verdict.problems == []
    assert (verdict.confirmed, verdict.refused, verdict.unknown) == (1, 1, 1)
    assert verdict.lost == verdict.stale_writes == 0
    assert verdict.line() == (
        "confirmed 1, refused 1, unknown 1 (told: POOL_CLOSED 1, UNAVAILABLE 1), lost 0, "
        "stale_writes 0, failover s p50 2.75 max 3.00 (n 2)"
    )


def test_an_unknown_request_may_be_absent() -> None:
    history, stored = sound()
    del stored.effects[("u2", "p1", 201)]
    assert check(history, stored).problems == []


def test_a_confirmed_bet_not_stored_is_lost() -> None:
    history, stored = sound()
    del stored.effects[("u1", "p1", 101)]
    verdict = check(history, stored)
    assert verdict.lost == 1 and verdict.problems[0].startswith("lost: ('u1', 'p1', 101)")


def test_a_refused_bet_stored_is_a_phantom() -> None:
    history, stored = sound()
    stored.effects[("u1", "p1", 102)] = 1
    assert [p.split(":")[0] for p in check(history, stored).problems] == ["phantom"]


def test_anything_stored_twice_is_a_duplicate() -> None:
    for key in (("u1", "p1", 101), ("u2", "p1", 201)):
        history, stored = sound()
        stored.effects[key] = 2
        assert check(history, stored).problems == [f"duplicate: {key!r} stored 2 times"]


def test_a_stored_effect_nobody_asked_for_is_a_stray() -> None:
    history, stored = sound()
    stored.effects[("u9", "p1", 1)] = 1
    assert check(history, stored).problems == ["stray: ('u9', 'p1', 1) stored, never asked"]


def test_a_key_shared_by_two_requests_is_a_broken_history() -> None:
    history, stored = sound()
    history.record(("u1", "p1", 101), C)
    assert all(p.startswith("history:") for p in check(history, stored).problems)


def test_audit_problems_are_reported() -> None:
    history, stored = sound()
    stored.audit = ["tx 7 does not balance"]
    assert check(history, stored).problems == ["audit: tx 7 does not balance"]


def test_a_pool_settled_twice_or_resolved_and_never_settled() -> None:
    history, stored = sound()
    stored.settlements["p1"] = 2
    assert check(history, stored).problems == ["pool p1: settled 2 times"]
    del stored.settlements["p1"]
    assert check(history, stored).problems == ["pool p1: resolved, never settled"]


def test_an_epoch_writing_after_the_next_epochs_first_write_is_stale() -> None:
    history, stored = sound()
    stored.fence_log[0] = EpochWrites(1, "node-a", 100, 350, 5)  # after epoch 2's 300
    verdict = check(history, stored)
    assert verdict.stale_writes == 1
    assert verdict.problems == [
        "stale write: epoch 1 (node-a) wrote at 350, after epoch 2's first write at 300"
    ]


def test_seq_going_back_or_repeating_on_a_subscriber() -> None:
    for seq in (3, 2):
        history, stored = sound()
        history.subscribers[0].received.append(Broadcast("g", seq, 360, "p1"))
        assert check(history, stored).problems == [f"on-a: seq {seq} (res 360) after 9 in game g"]


def test_seq_is_per_game() -> None:
    history, stored = sound()
    history.subscribers[0].received.append(Broadcast("other", 1, 352, "p2"))
    assert check(history, stored).problems == []


def test_a_362_missing_on_a_subscriber_that_stayed() -> None:
    history, stored = sound()
    history.subscribers[1].received.pop()
    assert check(history, stored).problems == ["on-b: no 362 for pool p1"]
    history.subscribers[1].stayed = False  # closed (1012) and rejoined: may miss it
    assert check(history, stored).problems == []


def test_failover_line_without_failovers() -> None:
    assert failover_line([]) == "failover none"
