"""A fake operator for remote wallet mode (seed 004): a real HTTP server on loopback that
keeps its players' balances, honours idempotency keys, verifies signatures, and can be
told to misbehave the ways a real one does."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec
import trio

from domain import remote
from domain.codec import decode, encode


class Mode(Enum):
    OK = "ok"
    REFUSE = "refuse"  # 402 {"error": ...} (a /bets only)
    FAIL = "fail"  # 500, nothing applied
    HANG = "hang"  # never answers, nothing applied
    LATE = "late"  # applied, then never answers (the caller times out)
    DROP = "drop"  # applied, then the connection closes without an answer
    TRICKLE = "trickle"  # applied, then the answer's head, then its body a byte at a time
    HUGE = "huge"  # applied, then the answer with HUGE_BYTES of padding, as fast as read
    HOLD = "hold"  # answered (as OK) only once ``proceed`` is set: a slow operator


#: The padding of a TRICKLE answer's body (it never ends unless released) and of a HUGE one.
TRICKLE_BYTES = 1_000_000
HUGE_BYTES = 400_000_000
#: Seconds between two bytes of a TRICKLE body: each read is quick, the whole never ends.
TRICKLE_STEP = 0.05


@dataclass
class FakeOperator:
    secret: str
    balances: dict[int, Decimal] = field(default_factory=dict)
    #: what to do with the next calls, by path; an empty queue means OK
    modes: dict[str, deque[Mode]] = field(
        default_factory=lambda: {"/bets": deque(), "/winners": deque()}
    )
    answered: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # key -> answer
    debited: Counter[int] = field(default_factory=Counter)  # bet uid -> times debited
    credited: Counter[int] = field(default_factory=Counter)  # bet uid -> times credited
    calls: Counter[str] = field(default_factory=Counter)
    #: the misbehaviours actually served (a queued mode counts once it is popped)
    misbehaved: Counter[Mode] = field(default_factory=Counter)
    bad_signatures: int = 0
    #: every signed call's body, decoded, by path
    received: dict[str, list[Any]] = field(default_factory=lambda: {"/bets": [], "/winners": []})
    trickling: int = 0  # TRICKLE answers being sent now
    #: answers the caller stopped reading (it closed the connection before their end)
    cut: Counter[Mode] = field(default_factory=Counter)
    huge_sent: int = 0  # body bytes of HUGE answers that left before the caller closed
    port: int = 0
    down: bool = False  # every call 503, nothing applied
    #: the epoch seconds signatures are checked against (tote's clock under a mock clock)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.changed = trio.Event()
        #: set: a TRICKLE answer sends the rest of its body at once
        self.release = trio.Event()
        #: set: a HOLD call goes on (applied and answered as OK)
        self.proceed = trio.Event()

    def total(self) -> Decimal:
        return sum(self.balances.values(), Decimal(0))

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._connection, listeners, handler_nursery=nursery)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    request = await _read_request(stream)
                    if request is None:
                        return
                    if not await self._answer(stream, *request):
                        return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    async def _answer(
        self, stream: trio.SocketStream, path: str, headers: dict, body: bytes
    ) -> bool:
        self.calls[path] += 1
        self._signal()
        if not remote.verify(
            self.secret, headers.get("x-tote-signature", ""), body, int(self.clock())
        ):
            self.bad_signatures += 1
            await _respond(stream, 401, {"error": "bad signature"})
            return True
        if self.down:
            await _respond(stream, 503, {"error": "maintenance"})
            return True
        self.received.setdefault(path, []).append(decode(body))
        key = headers.get("x-idempotency-key", "")
        queue = self.modes.get(path, deque())
        mode = queue.popleft() if queue else Mode.OK
        if mode is not Mode.OK:
            self.misbehaved[mode] += 1
        if mode is Mode.FAIL:
            await _respond(stream, 500, {"error": "down"})
            return True
        if mode is Mode.HANG:
            await trio.sleep_forever()
        if mode is Mode.HOLD:
            self._signal()  # it is held now: ``wait_until`` sees it
            await self.proceed.wait()
        if key not in self.answered:
            if mode is Mode.REFUSE:
                self.answered[key] = (402, encode({"error": "Not enough money"}))
            else:
                self.answered[key] = self._apply(path, decode(body))
            self._signal()
        if mode is Mode.LATE:
            await trio.sleep_forever()
        if mode is Mode.DROP:
            return False
        status, answer = self.answered[key]
        if mode in (Mode.TRICKLE, Mode.HUGE):
            await self._padded(stream, mode, status, answer)
            return False
        await _respond_bytes(stream, status, answer)
        return True

    async def _padded(
        self, stream: trio.SocketStream, mode: Mode, status: int, answer: bytes
    ) -> None:
        """The answer, then whitespace (still valid JSON): a byte per TRICKLE_STEP, or
        as fast as the caller reads; counts a cut when the caller closes first."""
        padding = TRICKLE_BYTES if mode is Mode.TRICKLE else HUGE_BYTES
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(answer) + padding}\r\n\r\n"
        )
        self.trickling += mode is Mode.TRICKLE
        try:
            await stream.send_all(head.encode() + answer)
            if mode is Mode.HUGE:
                await self._pad_fast(stream, padding)
            else:
                await self._pad_slowly(stream, padding)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.cut[mode] += 1
        finally:
            self.trickling -= mode is Mode.TRICKLE
            self._signal()

    async def _pad_fast(self, stream: trio.SocketStream, padding: int) -> None:
        chunk = b" " * 65536
        while self.huge_sent < padding:
            size = min(len(chunk), padding - self.huge_sent)
            await stream.send_all(chunk[:size])
            self.huge_sent += size

    async def _pad_slowly(self, stream: trio.SocketStream, padding: int) -> None:
        for sent in range(padding):
            if self.release.is_set():
                await stream.send_all(b" " * (padding - sent))
                return
            await stream.send_all(b" ")
            with trio.move_on_after(TRICKLE_STEP):
                await self.release.wait()

    def _signal(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def _apply(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if path == "/bets":
            need: Counter[int] = Counter()
            for entry in body["bets"]:
                need[entry["user"]["uid"]] += Decimal(entry["bet"]["amount"])
            if any(self.balances.get(uid, Decimal(0)) < amount for uid, amount in need.items()):
                return 402, encode({"error": "Not enough money"})
            for uid, amount in need.items():
                self.balances[uid] -= amount
            for entry in body["bets"]:
                self.debited[entry["bet"]["uid"]] += 1
            return 200, b'{"ok": true}'
        for pool in body["pools"]:
            for entry in pool["bets"]:
                uid = int(entry["user"]["uid"])
                self.balances[uid] = self.balances.get(uid, Decimal(0)) + Decimal(
                    entry["bet"]["payout"]
                )
                self.credited[entry["bet"]["uid"]] += 1
        return 200, b'{"ok": true}'

    async def wait_until(self, condition: Any) -> None:
        """Wait, without a clock, until ``condition()`` holds (checked after each call)."""
        while not condition():
            await self.changed.wait()


async def _read_request(stream: trio.SocketStream) -> tuple[str, dict, bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        rest += chunk
    return path, headers, rest[:length]


async def _respond(stream: trio.SocketStream, status: int, body: Any) -> None:
    await _respond_bytes(stream, status, msgspec.json.encode(body))


async def _respond_bytes(stream: trio.SocketStream, status: int, body: bytes) -> None:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    await stream.send_all(head.encode() + body)
