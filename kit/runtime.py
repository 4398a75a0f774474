"""The actor kit: addresses, requests answered exactly once, one serve loop, supervision.

An actor is a trio task that owns its state and reads requests from a :class:`Mailbox`,
its address. A caller :meth:`Mailbox.ask`\\ s and waits for the answer under a deadline;
the actor answers without ever waiting on the caller.

Every business actor subclasses :class:`Actor`, whose :meth:`Actor.run` is the one serve
loop: it takes a batch of queued requests, fires due timers, answers every request
exactly once and applies the **uncertain-outcome policy**. A request that reached an actor
but whose answer never came back (the caller's deadline passed, or the actor died while
handling it) may still have been applied; the caller sees :class:`OutcomeUnknown`. An
actor that gets it from storage or from another actor cannot know what was committed, so
the kit stops it and the :class:`Supervisor` rebuilds it from storage: no actor keeps
memory that disagrees with the database. A request that timed out *before* its actor
took it is withdrawn instead, so that answer is certain: not applied.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, overload

import outcome
import trio

from domain.errors import DomainError, OutcomeUnknown

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


class RequestState(enum.Enum):
    QUEUED = "queued"
    TAKEN = "taken"
    ANSWERED = "answered"
    WITHDRAWN = "withdrawn"  # the caller gave up before the actor took it


class Request:
    """A message and the one answer its caller waits for."""

    __slots__ = ("_answer", "_on_answer", "_waiter", "body", "state")

    def __init__(self, body: Any) -> None:
        self.body = body
        self.state = RequestState.QUEUED
        self._answer: outcome.Outcome[Any] | None = None
        self._waiter: Any = None  # the trio task parked in wait()
        self._on_answer: Callable[[Request], None] | None = None

    @property
    def answered(self) -> bool:
        return self.state is RequestState.ANSWERED

    def reply(self, value: Any = None) -> None:
        self._settle(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self._settle(outcome.Error(error))

    def _settle(self, result: outcome.Outcome[Any]) -> None:
        if self.state is RequestState.ANSWERED:
            return  # exactly once: a late second answer is dropped
        self.state = RequestState.ANSWERED
        if self._on_answer is not None:
            self._on_answer(self)
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(waiter, result)
        else:
            self._answer = result

    async def wait(self) -> Any:
        """The answer (raised if it is an error). Parks the task without a channel: an
        ask is on every bet's path, so it costs one reschedule."""
        if self._answer is not None:
            return self._answer.unwrap()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        self._waiter = trio.lowlevel.current_task()
        return await trio.lowlevel.wait_task_rescheduled(abort)


R = TypeVar("R")


class Ask(Generic[R]):
    """A message that declares its reply, Akka Typed style: ``class PlaceBet(Ask[BetPlaced])``
    makes ``await box.ask(PlaceBet(...))`` a ``BetPlaced`` for the type checker. No fields,
    no behaviour: a subclass stays an ordinary (frozen) dataclass."""

    __slots__ = ()


class Mailbox:
    """A bounded inbox that outlives the actor reading it (the actor's address)."""

    def __init__(self, name: str, capacity: int = 256) -> None:
        self.name = name
        self._send, self._receive = trio.open_memory_channel[Request](capacity)
        self._taken: set[Request] = set()

    @overload
    async def ask(self, body: Ask[R], *, timeout: float = ...) -> R: ...

    @overload
    async def ask(self, body: Any, *, timeout: float = ...) -> Any: ...

    async def ask(self, body: Any, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Send ``body`` and wait for its answer; raise its error. Past ``timeout``: a
        request still queued is withdrawn (``REQUEST_TIMED_OUT``, certainly not applied);
        one already taken raises :class:`OutcomeUnknown`."""
        request = Request(body)
        try:
            with trio.move_on_after(timeout):
                await trio.lowlevel.checkpoint_if_cancelled()  # a deadline already past
                try:
                    self._send.send_nowait(request)
                except trio.WouldBlock:
                    await self._send.send(request)  # a full inbox pushes back on the caller
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    raise DomainError(
                        "UNAVAILABLE", f"{self.name} is shutting down; try again later."
                    ) from None
                return await request.wait()
        finally:
            if request.state is RequestState.QUEUED:
                request.state = RequestState.WITHDRAWN
        if request.answered:  # answered just as the deadline passed
            return await request.wait()
        if request.state is RequestState.WITHDRAWN:
            raise DomainError(
                "REQUEST_TIMED_OUT",
                f"{self.name} did not take this request within {timeout:g}s; it was not applied.",
            )
        raise OutcomeUnknown(
            "REQUEST_TIMED_OUT",
            f"{self.name} did not answer within {timeout:g}s; "
            "the request may or may not have been applied.",
        )

    def tell(self, body: Any) -> bool:
        """Queue ``body`` without waiting and with nobody waiting for its answer (an
        actor's note to itself from a synchronous caller); False when the inbox is full
        or closed."""
        try:
            self._send.send_nowait(Request(body))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    async def receive(self) -> Request:
        """Take the next request; raises trio.EndOfChannel once closed and drained."""
        while True:
            request = await self._receive.receive()
            if self._take(request):
                return request

    def receive_nowait(self) -> Request:
        """Take a queued request without waiting; raises trio.WouldBlock or EndOfChannel."""
        while True:
            request = self._receive.receive_nowait()
            if self._take(request):
                return request

    def _take(self, request: Request) -> bool:
        if request.state is not RequestState.QUEUED:
            return False  # withdrawn by its caller: nobody waits, nothing may be applied
        request.state = RequestState.TAKEN
        self._taken.add(request)
        request._on_answer = self._taken.discard
        return True

    def adopt(self, request: Request) -> None:
        """Count a request its actor made itself and answers later (a held bet's
        decision) as taken: if the actor dies first, ``fail_taken`` answers it."""
        self._take(request)

    def fail_taken(self, error: DomainError) -> int:
        """Answer every request the (dead) actor took but did not answer."""
        taken, self._taken = self._taken, set()
        for request in list(taken):
            request.fail(error)
        return len(taken)

    def fail_queued(self, error: DomainError) -> int:
        """Answer every queued request (none of them was applied)."""
        count = 0
        while True:
            try:
                request = self.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return count
            request.fail(error)
            count += 1

    def has_queued(self) -> bool:
        return self.queued() > 0

    def queued(self) -> int:
        """Requests waiting in the inbox (withdrawn ones included until skipped)."""
        return self._send.statistics().current_buffer_used

    def close(self) -> None:
        """Stop taking new requests; the actor drains what is queued, then stops."""
        self._send.close()


class Handlers:
    """A table from message type to the method that answers it, in the style of Akka
    Typed's ``Behaviors.receiveMessage``: one small method per message instead of one long
    ``match``, written once at the end of an actor's class body::

        handlers = Handlers("The registry", {GetUser: _get_user, GamesOf: _games_of})

    ``of(body)`` is the (unbound) method for ``body``'s exact type; the actor calls it with
    itself, the message and whatever else its handlers take (the wallet's batch)."""

    __slots__ = ("_owner", "_table")

    def __init__(self, owner: str, table: dict[type, Callable[..., Any]]) -> None:
        self._owner = owner  # how an UNKNOWN_OP names the actor
        self._table = table

    def of(self, body: object) -> Callable[..., Any]:
        """The handler of ``body``; ``UNKNOWN_OP`` for a message the actor does not take."""
        handler = self._table.get(type(body))
        if handler is None:
            raise DomainError("UNKNOWN_OP", f"{self._owner} does not handle {type(body).__name__}.")
        return handler


class Actor:
    """Base of every business actor: the one serve loop. Subclasses declare what they
    take (their messages, beside them) and override the hooks they need.

    - :meth:`handle` answers one message; :meth:`handle_batch` answers several messages
      that :meth:`batch_key` puts in one group (the default handles them one by one).
    - :meth:`next_deadline` and :meth:`on_deadline` are the actor's timers. Timers due by
      now fire before the next request is judged.
    - :meth:`can_passivate`: with ``idle_seconds`` set, an actor idle that long leaves
      memory; the directory spawns it again from storage when it is next asked.

    A :class:`DomainError` fails the request and changes nothing. An unexpected exception
    fails only its request (``INTERNAL_ERROR``): actors validate and compute before they
    commit and adopt state only after the commit, so memory is still right. An
    :class:`OutcomeUnknown` fails the request and stops the actor for a rebuild.
    """

    max_batch: int = 256
    idle_seconds: float | None = None

    def __init__(self, inbox: Mailbox) -> None:
        self.inbox = inbox
        self._timers_paused_until = -math.inf
        self._timer_failures = 0
        self.last_active = -math.inf  # set when the loop starts
        self._deferred: set[Request] = set()

    # -- hooks ------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Finish what a previous incarnation left (runs after ``started``)."""

    async def on_stop(self) -> None:
        """The inbox closed and drained: a graceful stop."""

    async def handle(self, body: Any) -> Any:
        raise DomainError("UNKNOWN_OP", f"{self.inbox.name} does not handle {type(body).__name__}.")

    def batch_key(self, body: Any) -> Hashable | None:
        """Requests with the same non-None key, queued together, form one batch."""
        return None

    async def handle_batch(self, requests: list[Request]) -> None:
        for request in requests:
            await self._serve_one(request)

    def next_deadline(self) -> float:
        return math.inf

    async def on_deadline(self) -> None:
        """Fire the timers due by now."""

    def can_passivate(self) -> bool:
        return False

    def defer(self, request: Request) -> None:
        """``handle_batch`` answers ``request`` on a later turn (a message the actor sends
        itself brings what it waits for): the batch's end does not fail it as unanswered.
        It stays taken, so if the actor dies first the supervisor answers it."""
        self._deferred.add(request)

    # -- the loop ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self.last_active = trio.current_time()
        await self.on_start()
        held: Request | None = None
        while True:
            deadline = self.next_deadline()
            if held is None:
                try:
                    held = await self._receive_until(self._wake_at(deadline))
                except trio.EndOfChannel:
                    await self.on_stop()
                    return
                if held is None and self._idle_long_enough():
                    return
            await self._fire_due_timers(deadline)
            if held is None:
                continue
            self.last_active = trio.current_time()
            batch, held = self._gather(held)
            if len(batch) == 1 and self.batch_key(batch[0].body) is None:
                await self._serve_one(batch[0])
            else:
                await self._serve_batch(batch)

    async def _receive_until(self, wake: float) -> Request | None:
        """The next request, or None if ``wake`` comes first. Without a timer (the wallet,
        storage) the wait needs no cancel scope: one less per batch on every bet's path."""
        if wake == math.inf:
            return await self.inbox.receive()
        with trio.move_on_at(wake):
            return await self.inbox.receive()
        return None

    def _gather(self, first: Request) -> tuple[list[Request], Request | None]:
        """``first`` and the requests of its batch queued behind it, up to the first one
        of another kind (served next, so nothing overtakes an earlier request)."""
        key = self.batch_key(first.body)
        batch = [first]
        if key is None:
            return batch, None
        while len(batch) < self.max_batch:
            try:
                more = self.inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if self.batch_key(more.body) != key:
                return batch, more
            batch.append(more)
        return batch, None

    async def _serve_one(self, request: Request) -> None:
        try:
            result = await self.handle(request.body)
        except BaseException as error:
            self._fail([request], error)
        else:
            request.reply(result)

    async def _serve_batch(self, batch: list[Request]) -> None:
        try:
            await self.handle_batch(batch)
        except BaseException as error:
            self._fail(batch, error)
        unanswered = [r for r in batch if not r.answered]
        if self._deferred:
            unanswered = [r for r in unanswered if r not in self._deferred]
            self._deferred.clear()
        if unanswered:
            log.error("%s left %d requests unanswered", self.inbox.name, len(unanswered))
            self._fail(unanswered, DomainError("INTERNAL_ERROR", "The request was not answered."))

    def _fail(self, requests: Iterable[Request], error: BaseException) -> None:
        """Answer ``requests`` for ``error``; re-raise what must stop the actor."""
        if isinstance(error, DomainError):
            reply = error
        elif isinstance(error, Exception):
            log.exception("%s failed on a request", self.inbox.name, exc_info=error)
            reply = DomainError("INTERNAL_ERROR", "The server failed to process this request.")
        else:  # Cancelled, KeyboardInterrupt: the supervisor answers what was taken
            raise error
        for request in requests:
            request.fail(reply)
        if isinstance(error, OutcomeUnknown):
            raise error  # our memory may disagree with storage: rebuild from it

    # -- timers -----------------------------------------------------------------------

    def _wake_at(self, deadline: float) -> float:
        wake = max(deadline, self._timers_paused_until)
        if self.idle_seconds is not None and self.can_passivate():
            wake = min(wake, self.last_active + self.idle_seconds)
        return wake

    def _idle_long_enough(self) -> bool:
        return (
            self.idle_seconds is not None
            and self.can_passivate()
            and not self.inbox.has_queued()
            and trio.current_time() >= self.last_active + self.idle_seconds
        )

    async def _fire_due_timers(self, deadline: float) -> None:
        """A timer that fails is retried with a growing pause; requests are still served.
        ``deadline`` is ``next_deadline()`` as of this turn of the loop (computed once: a
        pool's costs a little, on every bet), so ``on_deadline`` checks what is due."""
        now = trio.current_time()
        if now < self._timers_paused_until or deadline > now:
            return
        try:
            await self.on_deadline()
        except OutcomeUnknown:
            raise
        except Exception:
            self._timer_failures += 1
            pause = min(30.0, 0.5 * 2 ** min(self._timer_failures, 6))
            log.exception("%s: a timer failed; retrying in %gs", self.inbox.name, pause)
            self._timers_paused_until = trio.current_time() + pause
        else:
            self._timer_failures = 0


class Startable(Protocol):
    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


ActorFactory = Callable[[Mailbox], Awaitable[Startable]]


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

    A child that raises (a crash, or :class:`OutcomeUnknown`), or whose own cancel scope
    is cancelled from outside (a chaos test), is rebuilt by its factory, which reloads
    its state from storage. Requests it had taken are answered with ``ACTOR_RESTARTED``
    (may or may not have been applied); requests still queued are served by the new
    incarnation. A child that returns on its own (idle, nothing queued) is forgotten until
    spawned again. A child is never given up (a dead wallet would stop all money), but one
    that keeps crashing is restarted with a growing pause, up to ``max_backoff`` seconds;
    while it cannot even be loaded, its queued requests are refused with ``UNAVAILABLE``
    rather than left to time out.
    """

    def __init__(
        self,
        *,
        max_backoff: float = 2.0,
        window: float = 10.0,
        on_restart: Callable[[str, int], None] = lambda name, restarts: None,
    ) -> None:
        self._on_restart = on_restart  # (actor name, its restarts so far): metrics and logs
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
        """Build and start an actor; returns once it is ready to take requests. An actor
        that cannot be built is ``UNAVAILABLE`` to the caller, who carries on."""
        assert self._nursery is not None, "Supervisor.run has not started"
        if name in self._children:
            return self._children[name].mailbox
        child = _Child(name, Mailbox(name, capacity), factory)
        self._children[name] = child
        try:
            await self._nursery.start(self._keep_running, child)
        except Exception as error:
            self._children.pop(name, None)
            cause = _sole_cause(error)
            if isinstance(cause, DomainError):
                raise cause from None
            log.exception("actor %s could not be started", name)
            raise DomainError(
                "UNAVAILABLE", f"{name} could not be loaded; an operator has been alerted."
            ) from error
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

    def inbox_depths(self) -> dict[str, int]:
        """Requests queued for each running actor (read by the metrics when scraped)."""
        return {name: child.mailbox.queued() for name, child in self._children.items()}

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
                crashed = loaded = False
                with child.scope:
                    try:
                        actor = await child.factory(child.mailbox)
                        loaded = True
                        async with trio.open_nursery() as nursery:
                            await nursery.start(actor.run)
                            if first:
                                first = False
                                task_status.started()
                    except* OutcomeUnknown:
                        if first:
                            raise
                        crashed = True
                        log.warning("actor %s: a commit of unknown outcome; reloading", child.name)
                    except* Exception as group:
                        if first:
                            raise
                        crashed = True
                        log.error("actor %s crashed", child.name, exc_info=group)
                if child.stopping:
                    child.mailbox.fail_taken(
                        OutcomeUnknown("UNAVAILABLE", f"{child.name} stopped while handling this.")
                    )
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
                self._on_restart(child.name, child.restarts)
                child.mailbox.fail_taken(
                    OutcomeUnknown(
                        "ACTOR_RESTARTED",
                        f"{child.name} restarted while handling this request; "
                        "it may or may not have been applied, check before retrying.",
                    )
                )
                if not loaded:
                    child.mailbox.fail_queued(
                        DomainError("UNAVAILABLE", f"{child.name} cannot be loaded right now.")
                    )
                await self._pause_after_restart(child, recent)
        finally:
            child.done.set()

    async def _pause_after_restart(self, child: _Child, recent: deque[float]) -> None:
        """The first restart is immediate; then each waits twice as long, up to a limit."""
        now = trio.current_time()
        recent.append(now)
        while recent and recent[0] < now - self._window:
            recent.popleft()
        if len(recent) > 1:
            log.warning("actor %s: %d restarts in %gs", child.name, len(recent), self._window)
            await trio.sleep(min(self._max_backoff, 0.01 * 2 ** len(recent)))


def _sole_cause(error: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
