"""A trio loop in a thread, for the sync tools (schemathesis, hypothesis' stateful
runner) that drive tote from outside, blocking, one call at a time."""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    contextmanager,
)
from typing import Any, Generic, TypeVar

import trio

from tests.conftest import Harness, running_harness

T = TypeVar("T")
R = TypeVar("R")


class Portal(Generic[T]):
    """What the loop's context manager yielded, and a way to run code in that loop."""

    def __init__(self, value: T, token: trio.lowlevel.TrioToken) -> None:
        self.value = value
        self._token = token

    def run(self, fn: Callable[..., Awaitable[R]], *args: Any) -> R:
        return trio.from_thread.run(fn, *args, trio_token=self._token)


@contextmanager
def loop_in_thread(
    opened: Callable[[], AbstractAsyncContextManager[T]], clock: trio.abc.Clock | None = None
) -> Iterator[Portal[T]]:
    """Enter ``opened()`` in a new trio loop in a thread and keep it open while the block
    runs; an exception raised in that loop (an audit failing on the way out) is raised
    here."""
    handed: queue.Queue[Portal[T] | BaseException] = queue.Queue(maxsize=1)
    stop = threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        async with opened() as value:
            handed.put(Portal(value, trio.lowlevel.current_trio_token()))
            await trio.to_thread.run_sync(stop.wait)

    def main() -> None:
        try:
            trio.run(serve, clock=clock)
        except BaseException as error:
            failure.append(error)
            handed.put(error)

    thread = threading.Thread(target=main, name="tote-test-loop", daemon=True)
    thread.start()
    started = handed.get(timeout=60)
    if isinstance(started, BaseException):
        raise started
    try:
        yield started
    finally:
        stop.set()
        thread.join(timeout=60)
    if failure:
        raise failure[0]


def server_in_thread() -> AbstractContextManager[Portal[Harness]]:
    """A whole server (sockets included), audited when it stops."""
    return loop_in_thread(running_harness)
