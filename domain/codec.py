"""JSON on the wire, with money exact: msgspec reads JSON numbers with a fraction as
``Decimal`` (never binary float) and writes ``Decimal`` as a JSON number.

Both transports decode with ``decode``: whatever the bytes are (not JSON, not UTF-8,
nested past the recursion limit, an object that repeats a key), the only error it raises
is ``DecodeError`` with a sentence for the client.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import msgspec

from domain.errors import DomainError

_decoder = msgspec.json.Decoder(float_hook=Decimal)
_encoder = msgspec.json.Encoder(decimal_format="number")

#: Longest string ``request_id`` a request may carry (every reply to it repeats it).
MAX_REQUEST_ID = 256
#: Longest string ``op`` a refusal repeats; op codes have at most 9 digits.
MAX_NAMED_OP = 32
MAX_OP_DIGITS = 9

#: One JSON string literal, escapes included (the unrolled form scans in linear time).
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRING_TEXT = re.compile(_STRING)
_STRING_BYTES = re.compile(_STRING.encode())


class DecodeError(ValueError):
    """The data is not one JSON value we accept; the message says why, for the client."""


class _Envelope(msgspec.Struct):
    """The two envelope fields of a request; msgspec skips every other field unbuilt."""

    op: Any = None
    header: Any = None


_envelope_decoder = msgspec.json.Decoder(_Envelope, float_hook=Decimal)


def decode(data: bytes | str) -> Any:
    """The JSON value in ``data``; DecodeError for anything else, and for an object with
    the same key twice (JSON leaves that open; msgspec would keep the last value, so
    ``{"amount": "1", "amount": "1000"}`` would mean 1000)."""
    try:
        value = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise DecodeError(f"Not valid JSON: {error}.") from None
    except RecursionError:
        raise DecodeError("The JSON is nested too deeply.") from None
    keys = _keys_in_value(value)
    # Every key has its colon, so as many colons as keys means no key repeats; only when
    # string values hold colons too does the text need a closer look.
    if colons(data) != keys and _keys_in_text(data) != keys:
        raise DecodeError("The JSON has an object with the same key twice.")
    return value


def decode_envelope(data: bytes | str) -> tuple[Any, Any]:
    """``(op, header)`` as sent, without building the rest of the message, or
    ``(None, None)`` when they cannot be read: enough to name a refused request cheaply."""
    try:
        envelope = _envelope_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None, None
    return envelope.op, envelope.header


def op_code(value: Any) -> int | None:
    """The op code ``op`` holds: an integer, or up to 9 ASCII digits in a string
    (decisions §1 reads integers sent as strings); None for any other JSON value. Only
    ASCII digits count: ``"²".isdigit()`` is true, but ``int("²")`` fails."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit() and len(digits) <= MAX_OP_DIGITS:
            return int(digits)
    return None


def named_op(value: Any) -> Any:
    """``op`` as a refusal names it: a number or a short string as sent, else null (a
    refusal never repeats a large or nested value back)."""
    if isinstance(value, (int, Decimal)):
        return value
    if isinstance(value, str) and len(value) <= MAX_NAMED_OP:
        return value
    return None


def request_id_in(header: Any) -> Any:
    """The ``request_id`` the replies echo: absent, a string of at most 256 characters or
    an integer. MALFORMED_MESSAGE for anything else, naming the field."""
    if header is None:
        return None
    if not isinstance(header, dict):
        raise DomainError("MALFORMED_MESSAGE", "header must be an object.", parameter="header")
    request_id = header.get("request_id")
    if request_id is None or (isinstance(request_id, int) and not isinstance(request_id, bool)):
        return request_id
    if isinstance(request_id, str) and len(request_id) <= MAX_REQUEST_ID:
        return request_id
    raise DomainError(
        "MALFORMED_MESSAGE",
        f"request_id must be a string of at most {MAX_REQUEST_ID} characters or an integer.",
        parameter="request_id",
    )


def colons(data: bytes | str) -> int:
    """How many colons the text holds: as many as its keys when no string holds one (so
    equal to the keys decoded means no key repeats)."""
    return data.count(":") if isinstance(data, str) else data.count(b":")


def _keys_in_text(data: bytes | str) -> int:
    """How many object keys valid JSON text holds: outside string literals a colon only
    ever separates a key from its value."""
    if isinstance(data, str):
        return _STRING_TEXT.sub("", data).count(":")
    return _STRING_BYTES.sub(b"", data).count(b":")


def _keys_in_value(value: Any) -> int:
    """How many keys the decoded objects hold (fewer than in the text when one repeats);
    iterative, so any depth msgspec could decode is fine."""
    keys = 0
    pending = [value] if type(value) is dict or type(value) is list else []
    while pending:
        item = pending.pop()
        if type(item) is dict:
            keys += len(item)
            item = item.values()
        for inner in item:
            if type(inner) is dict or type(inner) is list:
                pending.append(inner)
    return keys


def encode(value: Any) -> bytes:
    return _encoder.encode(value)
