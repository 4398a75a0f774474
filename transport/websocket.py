"""The websocket server: handshake authentication, the envelope, and one task pair per
connection (a reader that dispatches, a writer that drains a bounded outbox)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from actors.registry import Authenticate, User
from actors.services import Services
from domain.codec import DecodeError, decode, encode, server_message
from domain.errors import DomainError
from transport.ops import OPS, Context
from transport.ratelimit import TokenBucket

log = logging.getLogger(__name__)

CLOSE_SLOW = 1008  # policy violation: a client that does not read its messages
CLOSE_EXPIRED = 4001


class Connection:
    """One authenticated client. ``push`` never waits: a full outbox closes the client."""

    def __init__(self, ws: WebSocketConnection, user: User, services: Services) -> None:
        self.ws = ws
        self.user_id = user.id
        self.user_name = user.name
        self.services = services
        self.logged_on = False
        self._out_send, self._out_receive = trio.open_memory_channel[bytes](
            services.settings.outbox_messages
        )
        self._scope = trio.CancelScope()
        self.close_reason: tuple[int, str] | None = None

    def push(self, data: bytes) -> None:
        try:
            self._out_send.send_nowait(data)
        except trio.WouldBlock:
            self.drop(CLOSE_SLOW, "too slow: outbox full")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def drop(self, code: int, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = (code, reason)
        self._scope.cancel()

    async def serve(self, expires_at: int) -> None:
        services = self.services
        services.hub.connect(self)
        try:
            with self._scope:
                self._scope.deadline = services.clock.deadline_for(expires_at)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write)
                    await self._read()
                    nursery.cancel_scope.cancel()
            if self._scope.cancelled_caught and self.close_reason is None:
                self.close_reason = (CLOSE_EXPIRED, "session expired")
        finally:
            services.hub.disconnect(self)
            self._out_send.close()
            if self.close_reason is not None:
                with trio.move_on_after(2) as cleanup:
                    cleanup.shield = True
                    try:
                        await self.ws.aclose(*self.close_reason)
                    except Exception:  # already gone: nothing to tell the client
                        log.debug("close failed", exc_info=True)

    async def _write(self) -> None:
        try:
            async for data in self._out_receive:
                await self.ws.send_message(data.decode())
        except ConnectionClosed:
            self._scope.cancel()  # the client is gone: stop reading for it too

    async def _read(self) -> None:
        settings = self.services.settings
        bucket = TokenBucket(settings.rate_per_second, settings.rate_burst)
        while True:
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed:
                return
            if not bucket.take():
                self._error(
                    None,
                    None,
                    DomainError(
                        "RATE_LIMITED", f"More than {settings.rate_per_second:g} messages a second."
                    ),
                )
                continue
            await self._dispatch(raw)

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            msg = decode(raw)
        except DecodeError:
            self._error(None, None, DomainError("MALFORMED_MESSAGE", "The message is not JSON."))
            return
        if not isinstance(msg, dict):
            self._error(
                None, None, DomainError("MALFORMED_MESSAGE", "The message must be a JSON object.")
            )
            return
        header = msg.get("header")
        request_id = header.get("request_id") if isinstance(header, dict) else None
        op = msg.get("op")
        if header is not None and not isinstance(header, dict):
            self._error(
                op, request_id, DomainError("MALFORMED_MESSAGE", "header must be an object.")
            )
            return
        if isinstance(op, str) and op.strip().isdigit():
            op = int(op)
        if not isinstance(op, int) or isinstance(op, bool):
            self._error(
                op, request_id, DomainError("MALFORMED_MESSAGE", "op must be an integer op code.")
            )
            return
        spec = OPS.get(op)
        if spec is None:
            self._error(op, request_id, DomainError("UNKNOWN_OP", f"There is no op {op}."))
            return
        ctx = Context(self, self.services, op, request_id)
        try:
            await spec.handler(ctx, msg)
        except DomainError as error:
            self._error(op, request_id, error)
        except Exception:
            log.exception("op %s failed", op)
            self._error(
                op,
                request_id,
                DomainError("INTERNAL_ERROR", "The server failed to process this message."),
            )

    def _error(self, op: Any, request_id: Any, error: DomainError) -> None:
        fields = {"text": error.text, "error_code": error.code, "op": op, **error.extra}
        self.push(
            server_message(666, fields, t=self.services.clock.now_ms(), request_id=request_id)
        )


async def _refuse(request: WebSocketRequest, error: DomainError) -> None:
    """Refuse the handshake: 401 for bad credentials, 503 when we could not check them."""
    status = 401 if error.code == "AUTHENTICATION_FAILED" else 503
    await request.reject(
        status,
        extra_headers=[(b"content-type", b"application/json")],
        body=encode({"error_code": error.code, "text": error.text}),
    )


async def serve_ws(
    services: Services,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the websocket API; ``task_status`` gets the bound port."""

    async def handler(request: WebSocketRequest) -> None:
        query = parse_qs(urlsplit(request.path).query)
        try:
            user_id = int(query.get("id", [""])[0])
            nonce = query.get("n", [""])[0]
            digest = query.get("h", [""])[0]
            user, expires_at = await services.ask_registry(Authenticate(user_id, nonce, digest))
        except ValueError:
            await _refuse(request, DomainError("AUTHENTICATION_FAILED", "id must be a user id."))
            return
        except DomainError as error:
            await _refuse(request, error)
            return
        ws = await request.accept()
        try:
            await Connection(ws, user, services).serve(expires_at)
        except Exception:  # one broken connection must never take the server down
            log.exception("connection of user %s failed", user.id)

    async with trio.open_nursery() as nursery:
        ws_server = await nursery.start(
            partial(
                serve_websocket,
                handler,
                host,
                port,
                None,
                max_message_size=services.settings.max_frame_bytes,
            )
        )
        task_status.started(ws_server.port)
