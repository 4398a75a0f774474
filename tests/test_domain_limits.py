"""The limit arithmetic (decisions §12), without trio: periods, raises that wait a day,
what is left, self-exclusion. Amounts in cents, times in epoch ms, worked by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.limits import (
    DAY_MS,
    LONGEST_MS,
    Breach,
    Flow,
    Flows,
    Kind,
    Limit,
    Period,
    PlayerLimits,
    Waiting,
    exclusion_end,
    flow_of,
    read_changes,
    used_in,
)

T0 = 1_700_000_000_000
LOSS_DAY = (Kind.LOSS, Period.DAY)
DEPOSIT_WEEK = (Kind.DEPOSIT, Period.WEEK)


def test_a_first_limit_and_a_lower_one_apply_at_once() -> None:
    limits = PlayerLimits().changed({LOSS_DAY: 100_00}, T0)
    assert limits.in_force(Kind.LOSS, T0) == {Period.DAY: 100_00}
    lower = limits.changed({LOSS_DAY: 20_00}, T0 + 1)
    assert lower.in_force(Kind.LOSS, T0 + 1) == {Period.DAY: 20_00}
    assert lower.waiting(T0 + 1) == []


def test_a_raise_waits_24_hours_and_the_old_limit_holds_meanwhile() -> None:
    limits = PlayerLimits().changed({LOSS_DAY: 20_00}, T0).changed({LOSS_DAY: 100_00}, T0)
    due = T0 + DAY_MS
    assert limits.in_force(Kind.LOSS, due - 1) == {Period.DAY: 20_00}
    assert limits.waiting(due - 1) == [Waiting(Kind.LOSS, Period.DAY, 100_00, due)]
    assert limits.in_force(Kind.LOSS, due) == {Period.DAY: 100_00}
    assert limits.waiting(due) == []


def test_a_removal_waits_too_and_a_lower_limit_cancels_what_waits() -> None:
    limits = PlayerLimits().changed({DEPOSIT_WEEK: 50_00}, T0).changed({DEPOSIT_WEEK: None}, T0)
    assert limits.in_force(Kind.DEPOSIT, T0 + DAY_MS - 1) == {Period.WEEK: 50_00}
    assert limits.waiting(T0) == [Waiting(Kind.DEPOSIT, Period.WEEK, None, T0 + DAY_MS)]
    assert limits.in_force(Kind.DEPOSIT, T0 + DAY_MS) == {}
    kept = limits.changed({DEPOSIT_WEEK: 40_00}, T0 + 5)
    assert kept.in_force(Kind.DEPOSIT, T0 + 2 * DAY_MS) == {Period.WEEK: 40_00}
    assert kept.waiting(T0 + 5) == []


def test_the_other_slots_stay() -> None:
    limits = PlayerLimits().changed({LOSS_DAY: 10_00, DEPOSIT_WEEK: 30_00}, T0)
    limits = limits.changed({LOSS_DAY: 5_00}, T0)
    assert limits.in_force(Kind.DEPOSIT, T0) == {Period.WEEK: 30_00}
    assert limits.in_force(Kind.LOSS, T0) == {Period.DAY: 5_00}


def test_a_window_is_rolling_and_ends_exactly_one_period_after_a_flow() -> None:
    flows = [Flow(T0, Kind.LOSS, 15_00), Flow(T0 + 3 * DAY_MS, Kind.LOSS, 4_00)]
    assert used_in(flows, Kind.LOSS, Period.DAY, T0 + DAY_MS - 1) == 15_00
    assert used_in(flows, Kind.LOSS, Period.DAY, T0 + DAY_MS) == 0
    assert used_in(flows, Kind.LOSS, Period.WEEK, T0 + 3 * DAY_MS) == 19_00
    assert used_in(flows, Kind.LOSS, Period.MONTH, T0 + 30 * DAY_MS) == 4_00
    assert used_in(flows, Kind.DEPOSIT, Period.MONTH, T0 + 3 * DAY_MS) == 0


def test_a_stake_that_would_pass_the_loss_limit_is_a_breach_with_what_is_left() -> None:
    limits = PlayerLimits().changed({LOSS_DAY: 20_00}, T0)
    flows = Flows([Flow(T0, Kind.LOSS, 15_00)])  # 15.00 staked, pending: counts in full
    assert limits.breach(flows, Kind.LOSS, 5_00, T0) is None  # exactly the limit
    assert limits.breach(flows, Kind.LOSS, 5_01, T0) == Breach(Kind.LOSS, Period.DAY, 20_00, 5_00)
    assert limits.left(flows, T0) == {Kind.DEPOSIT: {}, Kind.LOSS: {Period.DAY: 5_00}}
    assert limits.breach(flows, Kind.LOSS, 20_00, T0 + DAY_MS) is None  # the day is over


def test_a_loss_is_net_of_what_came_back() -> None:
    """Staked 10.00 and 15.00, won 18.00 back: a net loss of 7.00 of a 20.00 limit."""
    limits = PlayerLimits().changed({LOSS_DAY: 20_00}, T0)
    flows = Flows(
        [
            Flow(T0, Kind.LOSS, 10_00),
            Flow(T0 + 1, Kind.LOSS, 15_00),
            Flow(T0 + 2, Kind.LOSS, -18_00),
        ]
    )
    assert limits.left(flows, T0 + 3)[Kind.LOSS] == {Period.DAY: 13_00}
    assert limits.breach(flows, Kind.LOSS, 13_01, T0 + 3) is not None


def test_every_limit_in_force_must_allow_it() -> None:
    limits = PlayerLimits().changed(
        {(Kind.DEPOSIT, Period.DAY): 50_00, (Kind.DEPOSIT, Period.MONTH): 60_00}, T0
    )
    flows = Flows([Flow(T0 - 2 * DAY_MS, Kind.DEPOSIT, 45_00)])  # outside the day, inside the month
    assert limits.breach(flows, Kind.DEPOSIT, 15_00, T0) is None  # 45 + 15 = 60: the month
    assert limits.breach(flows, Kind.DEPOSIT, 15_01, T0) == Breach(
        Kind.DEPOSIT, Period.MONTH, 60_00, 15_00
    )


@given(
    st.lists(
        st.tuples(
            st.integers(0, 40 * DAY_MS),
            st.sampled_from(list(Kind)),
            st.integers(-(10**6), 10**6),
        ),
        max_size=60,
    ),
    st.integers(0, 80 * DAY_MS),
)
def test_the_flow_log_sums_a_window_as_a_pass_over_every_flow_would(
    raw: list[tuple[int, Kind, int]], later: int
) -> None:
    """Flows in time order (as the wallet records them), some forgotten: what a window
    used is what summing every flow gives, for each kind and period, at any time after."""
    flows = [Flow(T0 + at, kind, amount) for at, kind, amount in sorted(raw, key=lambda r: r[0])]
    log = Flows(flows)
    now = T0 + later
    log.forget(now)
    for kind in Kind:
        for period in Period:
            for at in (now, now + DAY_MS, now + LONGEST_MS):
                assert log.used(kind, period, at) == used_in(flows, kind, period, at)


def test_a_flow_dated_before_the_last_counts_from_the_last() -> None:
    """The wall clock stepped back: the flow stays in its window longer, never less."""
    log = Flows([Flow(T0, Kind.LOSS, 1_00), Flow(T0 - DAY_MS, Kind.LOSS, 2_00)])
    assert log.used(Kind.LOSS, Period.DAY, T0 + DAY_MS - 1) == 3_00


def test_ledger_lines_count_as_deposits_stakes_and_returns() -> None:
    assert flow_of(T0, "deposit", 10_00) == Flow(T0, Kind.DEPOSIT, 10_00)
    assert flow_of(T0, "stake", -3_00) == Flow(T0, Kind.LOSS, 3_00)
    assert flow_of(T0, "stake", 3_00) is None  # remote mode: the operator's debit arriving
    assert flow_of(T0, "settlement", 7_00) == Flow(T0, Kind.LOSS, -7_00)
    assert flow_of(T0, "settlement", -7_00) is None  # remote mode: the credit leaving
    assert flow_of(T0, "withdrawal", -5_00) is None


def test_read_changes_takes_periods_amounts_and_null() -> None:
    assert read_changes({"deposit": {"day": "50"}, "loss": {"week": None}}, 2) == {
        (Kind.DEPOSIT, Period.DAY): 50_00,
        (Kind.LOSS, Period.WEEK): None,
    }
    assert read_changes({"currency": "EUR"}, 2) == {}


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"deposit": "50"}, "deposit"),
        ({"loss": ["day"]}, "loss"),
        ({"loss": {"year": "5"}}, "loss"),
        ({"loss": {"day": "-5"}}, "loss.day"),
        ({"loss": {"day": "0"}}, "loss.day"),
        ({"loss": {"day": "1.001"}}, "loss.day"),
        ({"deposit": {"week": 1.5}}, "deposit.week"),
        ({"deposit": {"week": "1e999999"}}, "deposit.week"),
    ],
)
def test_read_changes_refuses_anything_else(body: dict, parameter: str) -> None:
    with pytest.raises(DomainError) as refused:
        read_changes(body, 2)
    assert refused.value.code == "INVALID_PARAMETER"
    assert refused.value.extra["parameter"] == parameter


def test_a_self_exclusion_lasts_a_day_at_least_and_is_never_shortened() -> None:
    assert exclusion_end(0, T0 + DAY_MS, T0) == T0 + DAY_MS
    with pytest.raises(DomainError, match="at least a day"):
        exclusion_end(0, T0 + DAY_MS - 1, T0)
    current = T0 + 7 * DAY_MS
    with pytest.raises(DomainError, match="cannot be shortened") as refused:
        exclusion_end(current, current - 1, T0)
    assert refused.value.extra["excluded_until"] == current
    assert exclusion_end(current, current + DAY_MS, T0) == current + DAY_MS


amounts = st.none() | st.integers(min_value=1, max_value=10**6)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=3 * DAY_MS), amounts), min_size=1, max_size=8
    )
)
def test_no_change_ever_raises_the_limit_in_force_sooner_than_a_day(
    changes: list[tuple[int, int | None]],
) -> None:
    """Whatever a player asks and when: the limit in force right after a request is never
    above the one just before it, and each request is in force a day later."""
    limit, now = Limit(), T0
    for step, wanted in changes:
        now += step
        before = limit.at(now).amount
        limit = limit.changed(wanted, now)
        after = limit.at(now).amount
        if before is not None:
            assert after is not None and after <= before
        assert limit.at(now + DAY_MS).amount == wanted


class _CountedReads(list):  # type: ignore[type-arg]
    reads = 0

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        _CountedReads.reads += 1
        return super().__getitem__(index)


def test_what_a_window_used_is_read_in_a_few_steps_however_many_flows() -> None:
    """The wallet judges every limited player's stake against their last 30 days: a pass
    over them made a player staking a cent at a time cost the wallet 80 ms a bet after
    100,000 bets. The log reads O(log n) entries."""
    log = Flows(Flow(T0 + i, Kind.LOSS, 1) for i in range(100_000))
    log._times[Kind.LOSS] = _CountedReads(log._times[Kind.LOSS])
    assert log.used(Kind.LOSS, Period.DAY, T0 + 100_000) == 100_000
    assert 0 < _CountedReads.reads <= 2 * 18 + 2
