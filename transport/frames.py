"""Server-to-client websocket frames written by hand (RFC 6455 §5.2: final, unmasked,
no extension), so that everything queued for one client leaves in one write.

trio-websocket frames and sends one message per call: a bet's 356 and 815 cost two
syscalls, a broadcast to S subscribers 2·S encodings. The server negotiates no extension
(trio-websocket offers none), so a text frame is a short header and the payload as is.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

FINAL_TEXT = 0x81  # FIN bit and opcode 1 (text)
MAX_7_BIT = 125
MAX_16_BIT = 0xFFFF


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked final text frame whose payload is ``length`` bytes."""
    if length <= MAX_7_BIT:
        return bytes((FINAL_TEXT, length))
    if length <= MAX_16_BIT:
        return struct.pack("!BBH", FINAL_TEXT, 126, length)
    return struct.pack("!BBQ", FINAL_TEXT, 127, length)


def text_frames(payloads: Iterable[bytes]) -> bytes:
    """The frames of these UTF-8 payloads, one after the other, ready for one send."""
    parts: list[bytes] = []
    for payload in payloads:
        parts.append(text_frame_header(len(payload)))
        parts.append(payload)
    return b"".join(parts)
