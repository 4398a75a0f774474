"""Hand-made server frames read back by wsproto, the library the clients use."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from transport.frames import text_frame


def _read_back(data: bytes) -> list[str]:
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(data)
    frames = list(client.received_frames())
    assert all(frame.opcode is Opcode.TEXT and frame.frame_finished for frame in frames)
    return [frame.payload for frame in frames]


@given(st.lists(st.text(), max_size=5))
def test_frames_of_any_text_read_back_as_the_same_messages(texts: list[str]) -> None:
    assert _read_back(b"".join(text_frame(text.encode()) for text in texts)) == texts


def test_each_length_encoding_reads_back() -> None:
    texts = ["a" * n for n in (0, 125, 126, 0xFFFF, 0x10000)]  # 7-, 16- and 64-bit lengths
    assert _read_back(b"".join(text_frame(text.encode()) for text in texts)) == texts
