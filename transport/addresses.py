"""The cap on connections per client address, shared by the HTTP and websocket ports
(docs/decisions.md, "Operator HTTP connections" and "A cap per address on the websocket
port"): a client is counted per IPv4 address, per IPv6 /64 and per /48, and the
connection past the cap is answered a canned refusal before anything it sends is read."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from domain.codec import encode
from transport.http_connection import close_after

#: The IPv6 prefixes a client is counted under, each with its multiple of the cap: its
#: /64 (a host is given a whole /64) and its /48 (ISPs delegate a /56 or a /48 to one
#: customer: a cap per /64 alone let one of them hold 256 or 65,536 times the cap).
IPV6_PREFIXES = ((64, 1), (48, 8))


def address_keys(host: str) -> tuple[tuple[str, int], ...]:
    """The units the per-address cap counts a client under, each with its multiple of the
    cap: an IPv4 address (IPv4-mapped IPv6 included), or the ``IPV6_PREFIXES`` of an IPv6
    one. Raises ValueError on text that is not an IP address."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ((str(ip.ipv4_mapped), 1),)
        return tuple(
            (str(ipaddress.IPv6Network((ip, bits), strict=False)), times)
            for bits, times in IPV6_PREFIXES
        )
    return ((str(ip), 1),)


def too_many_answer(body: dict[str, Any]) -> bytes:
    """A whole 429 answer with the JSON ``body``, for a connection refused before its
    request is read (so it says ``connection: close``)."""
    data = encode(body)
    head = (
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + data


class AddressCounts:
    """How many connections each client address holds, against a limit."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    def full(self, keys: tuple[tuple[str, int], ...]) -> bool:
        return any(self._open[key] >= self._limit * times for key, times in keys)

    @contextmanager
    def holding(self, keys: tuple[tuple[str, int], ...]) -> Iterator[None]:
        """Counts one more connection under each of ``keys`` while the block runs."""
        for key, _ in keys:
            self._open[key] += 1
        try:
            yield
        finally:
            for key, _ in keys:
                self._open[key] -= 1
                if not self._open[key]:
                    del self._open[key]


class AddressCap:
    """Serves a client address's connections up to ``limit`` at once; the next ones are
    sent ``refusal`` (a whole HTTP answer) and closed, as many refusals lingering at once
    per address as the limit (past that, closed at once): a client reconnecting fast
    holds at most twice the cap of our descriptors, whatever it sends or does not."""

    def __init__(self, limit: int, refusal: bytes) -> None:
        self._held = AddressCounts(limit)
        self._refusing = AddressCounts(limit)
        self._refusal = refusal

    async def serve(
        self,
        stream: trio.SocketStream,
        handler: Callable[[trio.SocketStream], Awaitable[object]],
    ) -> None:
        """``handler(stream)`` when the client's address is under the cap, else the
        refusal; the caller closes the socket."""
        try:
            keys = address_keys(stream.socket.getpeername()[0])
        except OSError:
            return  # reset before we saw it
        if not self._held.full(keys):
            with self._held.holding(keys):
                await handler(stream)
        elif not self._refusing.full(keys):
            with self._refusing.holding(keys):
                await close_after(stream, self._refusal)
