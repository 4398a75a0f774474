"""The hub's fan-out: a small audience is served in the publisher's turn; a big one by the
hub's own task, a slice at a time, in order (what queues up for the same recipients
leaves in one write), to the subscribers of the moment of
publication; over the queue's bound the publisher delivers the oldest itself, nothing lost."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors import hub as hub_module
from actors.hub import INLINE_ADDRESSES, Hub


class Audience:
    """Addresses that keep what they get."""

    def __init__(self, size: int) -> None:
        self.got: list[list[bytes]] = [[] for _ in range(size)]
        self.addresses = [inbox.append for inbox in self.got]

    def subscribe(self, hub: Hub, game_id: str = "g") -> None:
        for address in self.addresses:
            hub.join(game_id, address)


def rendered(event: object, header: dict[str, object]) -> bytes:
    return str(event).encode()


def new_hub() -> Hub:
    """A hub with game "g"'s numbers reserved, as its game actor does on load."""
    hub = Hub(rendered)
    hub.reserve("g", 0, 10**9, lambda: True)
    return hub


async def test_a_small_audience_is_served_in_the_publishers_turn() -> None:
    hub = new_hub()
    audience = Audience(INLINE_ADDRESSES)
    audience.subscribe(hub)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        hub.to_game("g", 1)
        assert all(got == [b"1"] for got in audience.got)  # no await since: in the turn
        nursery.cancel_scope.cancel()


async def test_a_big_audience_is_served_by_the_fan_out_task_in_order() -> None:
    hub = new_hub()
    audience = Audience(1000)
    audience.subscribe(hub)
    late = []
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        hub.to_game("g", 1)
        hub.to_game("g", 2)
        assert not any(audience.got)  # the publisher's turn only queued them
        hub.join("g", late.append)  # joins after both were published
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert all(got == [b"12"] for got in audience.got)  # queued together: one write
    assert late == []


async def test_the_task_yields_between_slices() -> None:
    hub = new_hub()
    audience = Audience(hub_module.DELIVERIES_PER_SLICE * 3)
    audience.subscribe(hub)
    seen: list[int] = []

    async def bystander() -> None:
        for _ in range(3):
            seen.append(sum(map(len, audience.got)))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        hub.to_game("g", 1)
        nursery.start_soon(bystander)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert any(0 < count < len(audience.got) for count in seen)  # ran mid-fan-out
    assert all(got == [b"1"] for got in audience.got)


@pytest.mark.parametrize(("bound", "value"), [("QUEUE_DELIVERIES", 250), ("QUEUE_BYTES", 2000)])
async def test_over_a_queue_bound_the_publisher_delivers_the_oldest_itself(
    monkeypatch: pytest.MonkeyPatch, bound: str, value: int
) -> None:
    """Deliveries: 100, 201, 201, 303 waiting. Bytes (1 and 8 a recipient): 801, 1610,
    1611, 2428. Either bound is passed by the fourth broadcast only."""
    monkeypatch.setattr(hub_module, bound, value)
    hub = new_hub()
    audience = Audience(100)
    audience.subscribe(hub)
    late: list[bytes] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        hub.to_game("g", 1)
        hub.join("g", late.append)  # new recipients: the next is queued apart
        hub.to_game("g", 2)
        hub.join("g", audience.addresses[0])  # already in: the same recipients
        hub.to_game("g", 3)  # joins the one not yet started
        assert not any(audience.got)
        hub.join("g", [].append)
        hub.to_game("g", 4)  # over: the oldest delivered here until under
        assert all(got == [b"1"] for got in audience.got)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert all(got == [b"1", b"23", b"4"] for got in audience.got)
    assert late == [b"23", b"4"]
