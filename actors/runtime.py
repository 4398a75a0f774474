"""Actor plumbing: bounded inboxes, reply slots and a supervisor that restarts actors.

An actor is a trio task that owns its state and reads requests from a :class:`Mailbox`.
A caller sends a :class:`Request` and waits on its one-shot reply slot with a deadline;
the actor answers with ``send_nowait`` and never waits on a slow caller. The supervisor,
not the actor, owns the mailbox, so an actor that crashes (or is cancelled by a chaos
test) is restarted behind the same address; whatever it had taken but not answered is
answered with an error so that no caller is left hanging.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import outcome
import trio

from domain.errors import DomainError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


@dataclass(eq=False)
class Request:
    """A message plus the one-shot slot its answer goes into."""

    body: Any
    _slot: trio.MemorySendChannel[outcome.Outcome[Any]]
    _on_answer: Callable[[Request], None] | None = field(default=None, repr=False)
    answered: bool = False

    def reply(self, value: Any = None) -> None:
        self._answer(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self._answer(outcome.Error(error))

    def _answer(self, result: outcome.Outcome[Any]) -> None:
        if self.answered:
            return
        self.answered = True
        if self._on_answer is not None:
            self._on_answer(self)
        # a caller that gave up waiting has closed its slot: nothing left to tell
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock
        ):
            self._slot.send_nowait(result)


class Actor(Protocol):
    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


class Mailbox:
    """A bounded inbox that outlives the actor reading it (the actor's address)."""

    def __init__(self, name: str, capacity: int = 256) -> None:
        self.name = name
        self._send, self._receive = trio.open_memory_channel[Request](capacity)
        self._taken: set[Request] = set()

    async def ask(self, body: Any, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Send ``body`` and wait for the answer; raise its error, or REQUEST_TIMED_OUT."""
        slot_send, slot_receive = trio.open_memory_channel[outcome.Outcome[Any]](1)
        request = Request(body, slot_send)
        try:
            with trio.fail_after(timeout):
                try:
                    await self._send.send(request)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    raise DomainError(
                        "UNAVAILABLE", f"{self.name} is shutting down; try again later."
                    ) from None
                result = await slot_receive.receive()
        except trio.TooSlowError:
            raise DomainError(
                "REQUEST_TIMED_OUT", f"{self.name} did not answer within {timeout:g}s."
            ) from None
        finally:
            slot_receive.close()
        return result.unwrap()

    async def receive(self) -> Request:
        """Take the next request; raises trio.EndOfChannel once closed and drained."""
        return self._track(await self._receive.receive())

    def receive_nowait(self) -> Request:
        """Take a queued request without waiting (for batching); raises trio.WouldBlock."""
        return self._track(self._receive.receive_nowait())

    def _track(self, request: Request) -> Request:
        self._taken.add(request)
        request._on_answer = self._forget
        return request

    def _forget(self, request: Request) -> None:
        self._taken.discard(request)

    def fail_taken(self, error: DomainError) -> int:
        """Answer every request the (dead) actor took but did not answer."""
        taken, self._taken = self._taken, set()
        for request in list(taken):
            request.fail(error)
        return len(taken)

    def fail_queued(self, error: DomainError) -> int:
        count = 0
        while True:
            try:
                request = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return count
            request.fail(error)
            count += 1

    def has_queued(self) -> bool:
        return self._send.statistics().current_buffer_used > 0

    def close(self) -> None:
        """Stop taking new requests; the actor drains what is queued, then stops."""
        self._send.close()


ActorFactory = Callable[[Mailbox], Awaitable[Actor]]


@dataclass
class _Child:
    name: str
    mailbox: Mailbox
    factory: ActorFactory
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    restarts: int = 0
    stopping: bool = False
    done: trio.Event = field(default_factory=trio.Event)


class Supervisor:
    """Owns the nursery of every actor; restarts a crashed one from storage.

    A child that raises, or whose own cancel scope is cancelled from outside (a chaos
    test), is rebuilt by its factory, which reloads its state from storage. Requests it
    had taken are answered with ``ACTOR_RESTARTED``; requests still queued are served by
    the new incarnation. A child that returns on its own (idle, nothing queued) is
    forgotten until spawned again. A child is never given up (a dead wallet would stop all money),
    but one that keeps crashing is restarted with a growing pause, up to ``max_backoff``
    seconds, so a crash loop cannot spin; callers waiting meanwhile time out cleanly.
    """

    def __init__(self, *, max_backoff: float = 2.0, window: float = 10.0) -> None:
        self._children: dict[str, _Child] = {}
        self._nursery: trio.Nursery | None = None
        self._max_backoff = max_backoff
        self._window = window

    async def run(
        self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            await trio.sleep_forever()

    async def spawn(self, name: str, factory: ActorFactory, *, capacity: int = 256) -> Mailbox:
        """Build and start an actor; returns once it is ready to take requests."""
        assert self._nursery is not None, "Supervisor.run has not started"
        if name in self._children:
            return self._children[name].mailbox
        child = _Child(name, Mailbox(name, capacity), factory)
        self._children[name] = child
        try:
            await self._nursery.start(self._keep_running, child)
        except BaseException:
            self._children.pop(name, None)
            raise
        return child.mailbox

    def mailbox(self, name: str) -> Mailbox | None:
        child = self._children.get(name)
        return child.mailbox if child else None

    def kill(self, name: str) -> None:
        """Cancel an actor from outside, as a crash would; it is restarted. (An actor not
        running, e.g. passivated, has nothing to kill.)"""
        if (child := self._children.get(name)) is not None:
            child.scope.cancel()

    def restarts(self, name: str) -> int:
        """Restarts of the running incarnation's lifetime (0 when not running)."""
        child = self._children.get(name)
        return child.restarts if child is not None else 0

    async def stop(self, name: str, *, timeout: float = 5.0) -> None:
        """Close an actor's inbox, let it drain, and wait for it to end."""
        child = self._children.get(name)
        if child is None:
            return
        child.stopping = True
        child.mailbox.close()
        with trio.move_on_after(timeout):
            await child.done.wait()
        child.scope.cancel()
        await child.done.wait()
        child.mailbox.fail_queued(DomainError("UNAVAILABLE", f"{name} has stopped."))

    async def stop_all(self, *, timeout: float = 5.0) -> None:
        """Graceful shutdown, newest first: an actor drains before those it depends on
        (pools before the wallet, everything before storage) are closed. ``timeout`` bounds
        the whole shutdown; past it, the actors left are cancelled at once."""
        deadline = trio.current_time() + timeout
        for name in reversed(list(self._children)):
            await self.stop(name, timeout=max(0.0, deadline - trio.current_time()))
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _keep_running(self, child: _Child, *, task_status: trio.TaskStatus[None]) -> None:
        recent: deque[float] = deque()
        first = True
        try:
            while True:
                child.scope = trio.CancelScope()
                crashed = False
                with child.scope:
                    try:
                        actor = await child.factory(child.mailbox)
                        async with trio.open_nursery() as nursery:
                            await nursery.start(actor.run)
                            if first:
                                first = False
                                task_status.started()
                    except* Exception as group:
                        if first:
                            raise
                        crashed = True
                        log.error("actor %s crashed", child.name, exc_info=group)
                if child.stopping:
                    child.mailbox.fail_taken(DomainError("UNAVAILABLE", f"{child.name} stopped."))
                    return
                if not (crashed or child.scope.cancelled_caught):
                    # The actor went idle and ended itself (passivation): it is forgotten,
                    # and spawned again from storage when next needed. A request that
                    # slipped in meanwhile wakes it instead.
                    if child.mailbox.has_queued():
                        continue
                    del self._children[child.name]
                    child.mailbox.close()
                    return
                child.restarts += 1
                child.mailbox.fail_taken(
                    DomainError(
                        "ACTOR_RESTARTED",
                        f"{child.name} restarted while handling this request; "
                        "it may or may not have been applied, check before retrying.",
                    )
                )
                now = trio.current_time()
                recent.append(now)
                while recent and recent[0] < now - self._window:
                    recent.popleft()
                if len(recent) > 1:  # the first restart is immediate, then back off
                    log.warning(
                        "actor %s: %d restarts in %gs", child.name, len(recent), self._window
                    )
                    await trio.sleep(min(self._max_backoff, 0.01 * 2 ** len(recent)))
        finally:
            child.done.set()
