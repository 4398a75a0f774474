"""Broadcasts on every node (docs/cluster.md): the owner's hub mirrors what it sends into
Redis, and every other node reads it back into its own hub.

The owner's side (``Broadcaster``, the hub's ``mirror``) turns each message into a Bus
command: a game's broadcast is appended to the game's stream ``tote:ev:<game>`` with its
own id (``<seq>-0``, or ``<seq>-<k>`` for the k-th unnumbered one after ``seq``), so that
Redis itself refuses a stale owner's late one; a push to a user (815) is published on
``tote:users``. The Bus sends them in order from one task and drops (and counts) what
does not fit its bounded queue: an actor never waits for Redis.

An edge's side (``BroadcastReader``) reads the streams of the games that have local
subscribers (XREAD BLOCK, from the last id it delivered), mends a gap (an entry whose
``prev`` is above what it delivered) with XRANGE, and closes the game's local subscribers
when what is missing is no longer in the stream. The 815 channel is drained by a task of
its own into a bounded channel. A Redis outage pauses the reader (retried with a growing
pause), never an actor; what it cost shows as gaps.

``join_on_edge`` / ``leave_on_edge``: a join on an edge is counted by the owner's game
actor (``JoinFrom``), then greeted once this node's copy of the game has what the owner
had sent by then.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import trio
from coredis.exceptions import RedisError

from actors.game import GameAcknowledged, Join, JoinFrom, Leave, LeaveFrom
from actors.hub import Delivery, Hub, Joined, Mirrored
from domain.errors import DomainError, OutcomeUnknown

log = logging.getLogger(__name__)

EVENTS = "tote:ev:"  # + game id: a game's broadcasts
USERS = "tote:users"  # pub/sub: b"<user_id>\n<frame bytes>"
#: Entries a game's stream keeps (about: MAXLEN ~); the nodes keep their own history.
STREAM_ENTRIES = 10_000
#: How long a game's stream outlives its last broadcasts (refreshed every 100th seq).
STREAM_SECONDS = 24 * 3600
#: How long one XREAD waits for entries (ms): a game that gets subscribers is read at
#: the latest this much later.
BLOCK_MS = 100
#: How often an edge drops the copies of games it no longer follows (seconds).
FORGET_SECONDS = 10.0
#: Entries one XREAD returns per stream at most.
READ_COUNT = 500
#: Every Redis call's deadline, past its block time.
CALL_SECONDS = 5.0
#: The reader's pause after a failed call: doubled each time, up to the last.
RETRY_SECONDS = (0.1, 5.0)
#: 815s read and not yet delivered (more are dropped and counted: the next one mends).
USER_QUEUE = 1_024
#: What a command costs the Bus's queue beyond its data (key, id, fields).
COMMAND_OVERHEAD = 100
#: Redis's refusal of an XADD whose id is not above the stream's last.
STALE_REFUSAL = "equal or smaller"
#: Errors of a Redis call (its deadline included): the reader pauses and tries again.
REDIS_ERRORS = (RedisError, OSError, trio.TooSlowError)


class Bus(Protocol):
    """What this module needs of ``cluster.bus.Bus``."""

    @property
    def client(self) -> Any: ...

    def send(self, command: tuple[Any, ...], size: int) -> bool: ...


@dataclass(slots=True)
class FanoutStats:
    """Counters for metrics and tests."""

    sent: int = 0  # commands the Bus took
    dropped: int = 0  # commands the Bus refused (its queue full)
    stale: int = 0  # XADDs Redis refused (a stale owner's): dropped, never retried
    delivered: int = 0  # stream entries delivered to this node's hub
    duplicates: int = 0  # entries at or below what was delivered
    mended: int = 0  # gaps filled from the stream
    lost: int = 0  # gaps that could not be filled (the game's subscribers closed)
    outages: int = 0  # failed Redis calls of the reader
    users_dropped: int = 0  # 815s dropped (the queue full)
    malformed: int = 0  # stream entries that were not broadcasts (read past)


def stream_key(game_id: str) -> str:
    return EVENTS + game_id


def mirror_command(entry: Mirrored, epoch: int) -> tuple[Any, ...]:
    """The Redis command that carries ``entry`` to the other nodes."""
    if entry.game_id is None:
        return ("PUBLISH", USERS, b"%d\n" % entry.user_ids[0] + entry.data)
    return (
        *("XADD", stream_key(entry.game_id), "MAXLEN", "~", STREAM_ENTRIES),
        f"{entry.seq}-{entry.k}",
        *("epoch", epoch, "prev", entry.prev, "to", ",".join(map(str, entry.user_ids))),
        *("data", entry.data),
    )


def parse_entry(
    game_id: str, identifier: bytes, fields: dict[bytes, bytes]
) -> tuple[Mirrored, int]:
    """A stream entry as the hub takes it, and its owner's epoch."""
    seq, _, k = identifier.partition(b"-")
    to = fields.get(b"to", b"")
    users = tuple(int(u) for u in to.split(b",")) if to else ()
    entry = Mirrored(fields[b"data"], game_id, int(seq), int(fields[b"prev"]), int(k), users)
    return entry, int(fields[b"epoch"])


class Broadcaster:
    """The owner's mirror (``Hub.mirror``): each message to the Bus, in order, never
    waiting."""

    def __init__(self, bus: Bus, epoch: int) -> None:
        self.bus = bus
        self.epoch = epoch
        self.stats = FanoutStats()
        self._expiring: set[str] = set()  # games whose stream was given its expiry

    def __call__(self, entry: Mirrored) -> None:
        if self.bus.send(mirror_command(entry, self.epoch), len(entry.data) + COMMAND_OVERHEAD):
            self.stats.sent += 1
        else:
            self.stats.dropped += 1  # the other nodes see a gap and mend or resume
        game_id = entry.game_id
        if game_id is not None and (game_id not in self._expiring or entry.seq % 100 == 0):
            self._expiring.add(game_id)  # a day after its last broadcasts, Redis drops it
            self.bus.send(("EXPIRE", stream_key(game_id), STREAM_SECONDS), COMMAND_OVERHEAD)

    def refused(self, error: Exception) -> bool:
        """The Bus's call for a command Redis refused: True (counted) when it was a stale
        XADD (its id not above the stream's last: a newer owner wrote after it), which
        is dropped and never retried."""
        if STALE_REFUSAL in str(error):
            self.stats.stale += 1
            log.warning("a broadcast refused by Redis (a newer owner's are there): %s", error)
            return True
        return False


class BroadcastReader:
    """An edge's copy of the owner's broadcasts, into ``hub``. Startable (``run``)."""

    def __init__(self, client: Any, hub: Hub, *, block_ms: int = BLOCK_MS) -> None:
        self.client = client
        self.hub = hub
        self.block_ms = block_ms
        self.stats = FanoutStats()
        self._wanted: dict[str, int] = {}  # games joins wait for: how many joins
        self._epochs: dict[str, int] = {}  # the owner epoch of each game's last entry
        #: per game, the id of the last entry read that was not a broadcast (read past it)
        self._skipped: dict[str, tuple[int, int]] = {}
        self._changed = trio.Event()  # a game is wanted
        self._progress = trio.Event()  # entries were delivered
        self._forget_at = 0.0  # trio time of the next forget_idle_copies
        #: set once the 815 channel is subscribed (a push published before is not seen)
        self.users_subscribed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[bytes](USER_QUEUE)
        async with send, receive, trio.open_nursery() as nursery:
            nursery.start_soon(self._retrying, self._read_streams)
            nursery.start_soon(self._retrying, self._read_users, send)
            nursery.start_soon(self._deliver_users, receive)
            task_status.started()

    async def _retrying(self, read: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``read`` again after each Redis failure, pausing longer each time (up to
        ``RETRY_SECONDS[1]``); a call that succeeds resets the pause."""
        first, most = RETRY_SECONDS
        pause = first
        while True:
            try:
                await read(*args)
            except REDIS_ERRORS as error:
                self.stats.outages += 1
                self._round_done()
                log.warning("broadcasts: Redis failed (%s); again in %gs", error, pause)
                await trio.sleep(pause)
                pause = min(pause * 2, most)
                continue
            pause = first

    # -- streams ------------------------------------------------------------------------

    @contextmanager
    def wanting(self, game_id: str) -> Iterator[None]:
        """Read the game's stream while this is open (a join waits for its copy)."""
        self._wanted[game_id] = self._wanted.get(game_id, 0) + 1
        self._changed.set()
        try:
            yield
        finally:
            left = self._wanted.pop(game_id) - 1
            if left:
                self._wanted[game_id] = left

    async def caught_up(self, game_id: str, seq: int) -> None:
        """Wait until this node delivered the game's broadcasts up to ``seq``."""
        while self.hub.last_seq(game_id) < seq:
            await self.next_round()

    async def next_round(self) -> None:
        """Wait until a round of reading ends (entries delivered, or a Redis call failed)."""
        await self._progress.wait()

    def _round_done(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def _read_streams(self) -> None:
        """One XREAD over the followed games' streams, then deliver what came (and, once
        in a while, forget the copies of games nobody here follows any more)."""
        if trio.current_time() >= self._forget_at:
            self._forget_at = trio.current_time() + FORGET_SECONDS
            self.hub.forget_idle_copies(keep=self._wanted)
            self._epochs = {g: e for g, e in self._epochs.items() if self.hub.cursor(g)}
            self._skipped = {g: i for g, i in self._skipped.items() if self.hub.cursor(g)}
        cursors = {}
        for game_id in {*self.hub.remote_games(), *self._wanted}:
            if (cursor := self.hub.cursor(game_id)) is not None:
                cursor = max(cursor, self._skipped.get(game_id, cursor))
                cursors[stream_key(game_id)] = f"{cursor[0]}-{cursor[1]}"
        if not cursors:
            with trio.move_on_after(self.block_ms / 1000):
                await self._changed.wait()
            self._changed = trio.Event()
            return
        with trio.fail_after(self.block_ms / 1000 + CALL_SECONDS):
            result = await self.client.xread(cursors, count=READ_COUNT, block=self.block_ms)
        for key, entries in (result or {}).items():
            game_id = key.decode()[len(EVENTS) :]
            for entry in entries:
                await self._take(game_id, entry.identifier, entry.field_values)
        self._round_done()

    async def _take(self, game_id: str, identifier: bytes, fields: dict[bytes, bytes]) -> None:
        """Deliver one entry; a gap is mended from the stream first. An entry no owner
        of this version wrote is read past (logged, counted), never delivered."""
        try:
            entry, epoch = parse_entry(game_id, identifier, fields)
        except (KeyError, ValueError) as error:
            self.stats.malformed += 1
            log.error(
                "game %s: stream entry %r is not a broadcast (%r)", game_id, identifier, error
            )
            seq, _, k = identifier.partition(b"-")
            self._skipped[game_id] = (int(seq), int(k))
            return
        if epoch != self._epochs.get(game_id):
            self._epochs[game_id] = epoch
            log.info("game %s: broadcasts of owner epoch %d from seq %d", game_id, epoch, entry.seq)
        if self._deliver(entry) is Delivery.GAP:
            await self._mend(entry)

    def _deliver(self, entry: Mirrored, *, gap_ok: bool = False) -> Delivery:
        done = self.hub.deliver_remote(entry, gap_ok=gap_ok)
        if done is Delivery.DELIVERED:
            self.stats.delivered += 1
        elif done is Delivery.DUPLICATE:
            self.stats.duplicates += 1
        return done

    async def _mend(self, entry: Mirrored) -> None:
        """Read what is missing before ``entry`` from the stream and deliver it, then
        ``entry``; what the stream no longer has closes the game's subscribers."""
        assert entry.game_id is not None
        start = f"({self.hub.last_seq(entry.game_id)}-0"
        with trio.fail_after(CALL_SECONDS):
            found = await self.client.xrange(
                stream_key(entry.game_id), start, f"({entry.seq}-{entry.k}"
            )
        for item in found:
            try:
                missing, _ = parse_entry(entry.game_id, item.identifier, item.field_values)
            except (KeyError, ValueError):
                continue  # not a broadcast (counted when read): the next shows the gap
            if self._deliver(missing) is Delivery.GAP:
                self._lost(missing)
        if self._deliver(entry) is Delivery.GAP:
            self._lost(entry)
        else:
            self.stats.mended += 1

    def _lost(self, entry: Mirrored) -> None:
        self.stats.lost += 1
        self._deliver(entry, gap_ok=True)

    # -- 815 ----------------------------------------------------------------------------

    async def _read_users(self, send: trio.MemorySendChannel[bytes]) -> None:
        """The user pushes' channel into ``send``; dropped (and counted) when it is full
        (at most once: the next 815 holds the whole balance)."""
        async with self.client.pubsub(channels=[USERS], ignore_subscribe_messages=True) as sub:
            self.users_subscribed.set()
            async for message in sub:
                try:
                    send.send_nowait(message["data"])
                except trio.WouldBlock:
                    self.stats.users_dropped += 1

    async def _deliver_users(self, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        """To this node's connections of the user. The owner sends its 815s itself (its
        hub's ``mirror`` is set): what comes back on the channel is not delivered again."""
        async for payload in receive:
            user, _, data = payload.partition(b"\n")
            if self.hub.mirror is None:
                self.hub.deliver_user(int(user), data)


# -- joins and leaves on an edge ----------------------------------------------------------

#: Sends a message to the owner's game actor and returns its answer: (message, timeout).
AskOwner = Callable[[Any, float], Awaitable[Any]]
#: The same for any game: (game id, message, timeout).
AskGame = Callable[[str, Any, float], Awaitable[Any]]
#: How often an edge tells the owner the counts that changed without a join or leave
#: (connections that dropped, subscribers closed after a gap).
REPORT_SECONDS = 1.0
#: Every this many rounds, an edge tells every count, changed or not.
FULL_REPORT_ROUNDS = 10


async def join_on_edge(
    reader: BroadcastReader,
    ask_owner: AskOwner,
    node_id: str,
    game_id: str,
    msg: Join,
    *,
    timeout: float,
    replay_bytes: int = 1 << 20,
) -> Joined:
    """A ``Join`` on an edge: the owner counts it (``JoinFrom``: INVALID_STATE for a
    closed game, INVALID_PARAMETER for a ``since_seq`` past its latest), then, once this
    node's copy has every broadcast up to the seq the owner answered, the local hub
    greets and replays as on one node. Raises OutcomeUnknown (UNAVAILABLE) when the copy
    does not get there within ``timeout`` (the owner counted the viewer; the next join
    or leave of this node sets the count right)."""
    hub = reader.hub
    deadline = trio.current_time() + timeout
    with reader.wanting(game_id):
        known = hub.subscribed(game_id, msg.address)
        viewers = hub.viewers(game_id) + (0 if known else 1)
        ask = JoinFrom(msg.user_id, msg.user_name, node_id, viewers, not known, msg.since_seq)
        answer: Joined = await ask_owner(ask, timeout)
        hub.follow(game_id, answer.seq)
        with trio.move_on_at(deadline):
            await reader.caught_up(game_id, answer.seq)
        if hub.last_seq(game_id) < answer.seq:
            raise OutcomeUnknown(
                "UNAVAILABLE", "The game's broadcasts did not reach this server in time."
            )
        greet = msg.greet
        joined, _ = hub.join(
            game_id,
            msg.address,
            since_seq=msg.since_seq,
            greet=None if greet is None else lambda j: greet(replace(j, viewers=answer.viewers)),
            replay_bytes=replay_bytes,
        )
    return replace(joined, viewers=answer.viewers)


async def leave_on_edge(
    hub: Hub, ask_owner: AskOwner, node_id: str, game_id: str, msg: Leave, *, timeout: float
) -> GameAcknowledged:
    """A ``Leave`` on an edge: unsubscribed here, and the owner told this node's count.
    Raises what the owner's answer raises."""
    if not hub.leave(game_id, msg.address):  # not subscribed here: nothing changed
        return GameAcknowledged(game_id)
    ask = LeaveFrom(msg.user_id, msg.user_name, node_id, hub.viewers(game_id), True)
    result: GameAcknowledged = await ask_owner(ask, timeout)
    return result


async def report_viewers(
    hub: Hub,
    ask_game: AskGame,
    node_id: str,
    *,
    timeout: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """An edge's task: once a second, each copied game whose local subscribers changed
    since this task last told is told the count (``LeaveFrom`` with ``announce`` False),
    so the owner's presence counts connections that dropped; every ``FULL_REPORT_ROUNDS``
    rounds every game is told, changed or not (a new owner's game actors start with no
    count of this node). A failed ask is tried again at the next round (the count is
    absolute)."""
    told: dict[str, int] = {}
    task_status.started()
    for round_number in itertools.count(1):
        await trio.sleep(REPORT_SECONDS)
        every = round_number % FULL_REPORT_ROUNDS == 0
        for game_id in {*hub.remote_games(), *told}:
            viewers = hub.viewers(game_id)
            if told.get(game_id) == viewers and not every:
                continue
            try:
                await ask_game(game_id, LeaveFrom(0, "", node_id, viewers, False), timeout)
            except DomainError as error:
                log.info("game %s: viewers not told (%s)", game_id, error)
                continue
            if viewers:
                told[game_id] = viewers
            else:
                told.pop(game_id, None)
