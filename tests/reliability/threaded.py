"""A test server on its own trio loop in a thread, for the sync tools (schemathesis,
hypothesis' stateful runner) that drive it from the outside, blocking, one call at a time."""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import trio

from tests.conftest import Harness, running_harness

T = TypeVar("T")


class ThreadedHarness:
    """The harness of a server running in another thread; ``run`` calls into its loop."""

    def __init__(self, harness: Harness, token: trio.lowlevel.TrioToken) -> None:
        self.harness = harness
        self._token = token

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self._token)


@contextmanager
def server_in_thread() -> Iterator[ThreadedHarness]:
    """Start a server (audited on the way out, like the ``harness`` fixture) and stop it
    when the block ends; an exception in the server's thread is raised here."""
    handed: queue.Queue[ThreadedHarness | BaseException] = queue.Queue(maxsize=1)
    stop = threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        async with running_harness() as harness:
            handed.put(ThreadedHarness(harness, trio.lowlevel.current_trio_token()))
            await trio.to_thread.run_sync(stop.wait)

    def main() -> None:
        try:
            trio.run(serve)
        except BaseException as error:
            failure.append(error)
            handed.put(error)

    thread = threading.Thread(target=main, name="tote-test-server", daemon=True)
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
