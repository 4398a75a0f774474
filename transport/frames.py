"""Server-to-client websocket text frames written by hand (RFC 6455 §5.2: final,
unmasked, no extension), so that a broadcast is framed once and the same bytes go to
every subscriber, and everything queued for one client leaves in one write.

The server negotiates no extension, so a text frame is a short header and the payload as
is. Reading frames, control frames and the close handshake are wsproto's
(transport/websocket.py); only this, the hot path of sending, is written here.
"""

from __future__ import annotations

import struct

FINAL_TEXT = 0x81  # FIN bit and opcode 1 (text)
MAX_7_BIT = 125
MAX_16_BIT = 0xFFFF


class Frame(bytes):
    """Bytes that are already one or more complete websocket frames, ready for the socket
    (a payload is plain ``bytes``: ``Connection.push`` frames it)."""

    __slots__ = ()


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked final text frame whose payload is ``length`` bytes."""
    if length <= MAX_7_BIT:
        return bytes((FINAL_TEXT, length))
    if length <= MAX_16_BIT:
        return struct.pack("!BBH", FINAL_TEXT, 126, length)
    return struct.pack("!BBQ", FINAL_TEXT, 127, length)


def text_frame(payload: bytes) -> Frame:
    """The frame of this UTF-8 payload, ready to send as is."""
    return Frame(text_frame_header(len(payload)) + payload)
