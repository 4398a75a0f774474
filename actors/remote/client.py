"""The operator's wallet client (remote wallet mode, seed 004): one signed POST and what
its answer means: done, refused (402 on /bets), or unknown (anything else: it may have
happened). It decides nothing and records nothing; the debits and the outbox worker do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import trio

from actors.services import Services
from domain import remote
from domain.codec import encode
from domain.remote import Answer


class OperatorClient:
    """Signed POSTs to the operator's wallet. Each call has one total deadline
    (``wallet_timeout``: connecting, sending, the answer's head and what is read of its
    body) and reads at most ``MAX_ANSWER_BYTES`` of the body. The status line is the
    answer: no status in time (or none we can read) is UNKNOWN."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        assert settings.wallet_url and settings.wallet_secret
        self.url = settings.wallet_url.rstrip("/")
        self.secret = settings.wallet_secret
        self.clock = services.clock
        self.deadline = settings.wallet_timeout
        self.http = httpx.AsyncClient(timeout=settings.wallet_timeout)

    async def post(self, path: str, payload: dict[str, Any], key: str) -> tuple[Answer, str]:
        """One call and what its answer means, with the reason of an UNKNOWN or the
        operator's text of a refusal; nothing the operator does makes it raise."""
        body = encode(payload)
        headers = {
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",  # the bound counts the bytes that arrive
            "X-Idempotency-Key": key,
            "X-Tote-Signature": remote.signature(self.secret, self.clock.now_ms() // 1000, body),
        }
        reply = _Reply()
        with trio.move_on_after(self.deadline):
            try:
                async with self.http.stream(
                    "POST", self.url + path, content=body, headers=headers
                ) as response:
                    reply.status = response.status_code
                    await _read_bounded(response, reply)
            except httpx.HTTPError as error:  # refused, reset, a broken body: see the status
                reply.error = f"{type(error).__name__}: {error}"
        return _meaning(path, reply, self.deadline)

    async def aclose(self) -> None:
        await self.http.aclose()


#: The most of an operator's answer tote reads: a 402's ``error`` fits; more is dropped
#: unread and the connection closed (the status line alone is the answer).
MAX_ANSWER_BYTES = 16 * 1024


@dataclass(slots=True)
class _Reply:
    """What came back of one call: the status (None if no head arrived in time), up to
    ``MAX_ANSWER_BYTES`` of the body, and what went wrong."""

    status: int | None = None
    content: bytes = b""
    error: str = ""


async def _read_bounded(response: httpx.Response, reply: _Reply) -> None:
    """The body into ``reply.content`` until it ends or passes the bound; leaving the
    stream unfinished makes httpx close the connection instead of reusing it."""
    content = bytearray()
    async for chunk in response.aiter_raw():
        content += chunk[: MAX_ANSWER_BYTES + 1 - len(content)]
        if len(content) > MAX_ANSWER_BYTES:
            reply.error = f"answer over {MAX_ANSWER_BYTES} bytes: the rest dropped"
            break
    reply.content = bytes(content)


def _meaning(path: str, reply: _Reply, deadline: float) -> tuple[Answer, str]:
    """A 2xx is done and a 402 to /bets refused, whatever became of the body (the
    operator decided); anything else, or no status in time, may or may not have happened."""
    if reply.status is None:
        return Answer.UNKNOWN, reply.error or f"no answer within {deadline} s"
    if 200 <= reply.status < 300:
        return Answer.DONE, ""
    if reply.status == 402 and path == "/bets":
        return Answer.REFUSED, _error_text(b"" if reply.error else reply.content)
    return Answer.UNKNOWN, f"HTTP {reply.status}"


def _error_text(content: bytes) -> str:
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return "The operator refused the bet."
    error = body.get("error") if isinstance(body, dict) else None
    return str(error)[:200] if error else "The operator refused the bet."
