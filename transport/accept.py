"""The accept loop of both servers: trio's ``serve_listeners``, except for what it logs
when the process is out of descriptors.

trio's loop logs a traceback for every failed accept, one every 100 ms while the process
sits at its descriptor limit (a full log disk next). This one logs one line when an
episode begins and one when accepts succeed again, and otherwise behaves the same: it
retries every ``RETRY_SECONDS``, the connections it has are served, and new ones wait
in the listen backlog until a descriptor is free.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger(__name__)

#: What ``accept`` fails with when the process or the host has no room for one more
#: socket; trio's own list. Any other error ends the loop (a closed listener, a bug).
OUT_OF_ROOM = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
#: Seconds between two tries while out of room (trio's figure).
RETRY_SECONDS = 0.1


async def accept_forever(
    listener: trio.abc.Listener[trio.SocketStream],
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    handler_nursery: trio.Nursery,
    server: str,
) -> None:
    """Start ``handler`` in ``handler_nursery`` for each connection ``listener`` accepts;
    ``server`` names the server in the log. Raises what ``accept`` raises besides
    running out of room."""
    failed = 0
    async with listener:
        while True:
            failed = await _accept_one(listener, handler, handler_nursery, server, failed)


async def _accept_one(
    listener: trio.abc.Listener[trio.SocketStream],
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    handler_nursery: trio.Nursery,
    server: str,
    failed: int,
) -> int:
    """One accept; returns how many have failed in a row since the last success."""
    try:
        stream = await listener.accept()
    except OSError as error:
        if error.errno not in OUT_OF_ROOM:
            raise
        if not failed:
            log.error(
                "%s: accept failed with %s (%s); retrying every %g s, new connections "
                "wait in the listen backlog",
                server,
                errno.errorcode[error.errno],
                os.strerror(error.errno),
                RETRY_SECONDS,
            )
        await trio.sleep(RETRY_SECONDS)
        return failed + 1
    if failed:
        log.warning("%s: accepting again after %d failed tries", server, failed)
    handler_nursery.start_soon(_run_handler, handler, stream)
    return 0


async def _run_handler(
    handler: Callable[[trio.SocketStream], Awaitable[object]], stream: trio.SocketStream
) -> None:
    """The socket is closed when its handler ends, however it ends."""
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)


async def serve_listeners(
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    listeners: list[trio.SocketListener],
    server: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on every listener, each connection's handler in a nursery of its own
    (cancelled with this task); started once the listeners are accepting."""
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(accept_forever, listener, handler, nursery, server)
        task_status.started()
