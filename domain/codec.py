"""JSON on the wire, with money exact: msgspec reads JSON numbers with a fraction as
``Decimal`` (never binary float) and writes ``Decimal`` as a JSON number."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

_decoder = msgspec.json.Decoder(float_hook=Decimal)
_encoder = msgspec.json.Encoder(decimal_format="number")

DecodeError = msgspec.DecodeError


def decode(data: bytes | str) -> Any:
    return _decoder.decode(data)


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def server_message(res: int, fields: dict[str, Any], *, t: int, request_id: Any = None) -> bytes:
    """A server message in the envelope of decisions §1: response_header first, then res."""
    header: dict[str, Any] = {"t": t}
    if request_id is not None:
        header["request_id"] = request_id
    return _encoder.encode({"response_header": header, "res": res, **fields})
