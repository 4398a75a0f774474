"""The cluster's codec: every message and reply that crosses nodes comes back as itself,
exactly (Decimals too, in ``Any`` fields), and no message of a protocol module is left
neither registered nor excluded (issue 22)."""

from __future__ import annotations

import dataclasses
import enum
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec
import pytest

from actors import game, registry, wallet
from actors.directory import CreateGame
from actors.pool import protocol as pool_protocol
from cluster import codec, messages
from domain.errors import DomainError, ErrorCode, OutcomeUnknown
from kit.runtime import Ask

PROTOCOLS = (registry, wallet, game, pool_protocol, messages)

#: what an ``Any`` field is given: exact numbers, nesting, a key that looks like a tag
ANY_EXAMPLE = {"x": Decimal("1.10"), "n": [1, None, "a"], "t": (Decimal("2"),), "$t": "not a tag"}


def example(hint: Any) -> Any:
    """A value of the type ``hint`` (every field filled), to round-trip."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return ANY_EXAMPLE
    if hint is type(None) or hint is None:
        return None
    if origin in (typing.Union, types.UnionType):
        return example(next(a for a in args if a is not type(None)))
    if origin in (list, Sequence):
        return [example(args[0])]
    if origin is tuple:
        items = args[:1] if len(args) == 2 and args[1] is Ellipsis else args
        return tuple(example(a) for a in items)
    if origin in (dict, Mapping):
        return {example(args[0]): example(args[1])}
    if origin in (set, frozenset):
        return origin({example(args[0])})
    if isinstance(hint, type):
        return _of_class(hint)
    raise AssertionError(f"no example for {hint!r}")


def _of_class(kind: type) -> Any:
    scalars: dict[type, Any] = {
        bool: True,
        int: 7,
        float: 1.5,
        str: "s",
        bytes: b"\x00x",
        Decimal: Decimal("0.10"),
        Fraction: Fraction(1, 3),
    }
    if issubclass(kind, enum.Enum):
        return list(kind)[-1]
    if kind in scalars:
        return scalars[kind]
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind, vars(sys.modules[kind.__module__]))
        return kind(**{f.name: example(hints[f.name]) for f in dataclasses.fields(kind) if f.init})
    raise AssertionError(f"no example for {kind!r}")


def reply_of(message: type) -> Any:
    """The reply type a message names in its ``Ask[...]``, resolved."""
    for base in getattr(message, "__orig_bases__", ()):
        if typing.get_origin(base) is Ask:
            (reply,) = typing.get_args(base)
            if isinstance(reply, typing.ForwardRef):
                reply = reply.__forward_arg__
            if isinstance(reply, str):
                reply = eval(reply, vars(sys.modules[message.__module__]))
            return reply
    raise AssertionError(f"{message} names no reply")


def classes_in(hint: Any) -> set[type]:
    """The dataclasses and enums a type hint can hold (the reply's parts)."""
    if hint is None or hint is type(None) or hint is Any:
        return set()
    args = typing.get_args(hint)
    if args:
        return set().union(*(classes_in(a) for a in args if a is not Ellipsis))
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or issubclass(hint, enum.Enum)):
        return {hint}
    return set()


def messages_of(module: types.ModuleType) -> list[type]:
    return [
        kind
        for kind in vars(module).values()
        if isinstance(kind, type)
        and issubclass(kind, Ask)
        and kind is not Ask
        and kind.__module__ == module.__name__
    ]


def test_every_message_of_a_protocol_is_registered_or_excluded() -> None:
    for module in PROTOCOLS:
        for message in messages_of(module):
            known = message in codec.TYPES.values() or message in codec.NOT_FORWARDED
            assert known, f"{message.__qualname__}: register it in cluster/codec.py or exclude it"


def test_every_registered_message_has_its_reply_registered() -> None:
    crossing = set(codec.TYPES.values()) | set(codec.REPLIES_NOT_FORWARDED)
    for message in [m for m in crossing if issubclass(m, Ask)]:
        missing = classes_in(reply_of(message)) - crossing
        assert not missing, f"{message.__qualname__} replies with unregistered {missing}"


def test_the_excluded_do_not_cross() -> None:
    assert not set(codec.NOT_FORWARDED) & set(codec.TYPES.values())


@pytest.mark.parametrize("kind", list(codec.TYPES.values()), ids=lambda k: k.__qualname__)
def test_an_example_of_every_registered_type_comes_back_as_itself(kind: type) -> None:
    value = _of_class(kind)
    back = codec.decode(codec.encode(value))
    assert type(back) is type(value)
    assert back == value
    assert codec.encode(back) == codec.encode(value)


def test_decimals_stay_exact_and_decimal_also_in_any_fields() -> None:
    fields = {
        "name": "derby",
        "stake": Decimal("0.1"),
        "whole": Decimal("5"),
        "n": 5,
        "big": Decimal("12345678901234567890.000000001"),
        "list": [Decimal("1E+2")],
    }
    back = codec.decode(codec.encode(CreateGame("src", 3, fields, True)))
    assert back.fields == fields
    assert type(back.fields["whole"]) is Decimal and str(back.fields["whole"]) == "5"
    assert type(back.fields["n"]) is int
    assert str(back.fields["list"][0]) == "1E+2"


def test_enums_tuples_sets_none_and_non_string_keys() -> None:
    value = {
        "code": ErrorCode.NOT_FOUND,
        "pair": (1, None, ("a",)),
        "set": frozenset({1, 2}),
        "none": None,
        3: "int key",
        (1, 2): "tuple key",
    }
    back = codec.decode(codec.encode(value))
    assert back == value
    assert type(back["code"]) is ErrorCode
    assert type(back["pair"]) is tuple and type(back["set"]) is frozenset


def test_pre_encoded_json_comes_back_as_the_same_bytes() -> None:
    """A game's details carry their targets and events as ``msgspec.Raw`` (JSON encoded
    once): the bytes cross as they are."""
    value = {"targets": msgspec.Raw(b'{"a":[1,2]}'), "events": msgspec.Raw(b"[]")}
    back = codec.decode(codec.encode(value))
    assert type(back["targets"]) is msgspec.Raw
    assert bytes(back["targets"]) == b'{"a":[1,2]}' and bytes(back["events"]) == b"[]"


def test_errors_come_back_as_themselves() -> None:
    error = DomainError(ErrorCode.INVALID_PARAMETER, "amount is wrong", parameter="amount")
    back = codec.decode(codec.encode(error))
    assert type(back) is DomainError
    assert (back.code, back.text, back.extra) == (
        "INVALID_PARAMETER",
        "amount is wrong",
        {"parameter": "amount"},
    )
    unknown = codec.decode(codec.encode(OutcomeUnknown("ACTOR_RESTARTED", "restarted")))
    assert type(unknown) is OutcomeUnknown and unknown.code == ErrorCode.ACTOR_RESTARTED
    other = codec.decode(codec.encode(DomainError("SOMETHING_NEW", "a code we do not know")))
    assert other.code == "SOMETHING_NEW"
    assert codec.error_fields(error) == {
        "code": "INVALID_PARAMETER",
        "message": "amount is wrong",
        "details": {"$d": [["parameter", "amount"]]},
        "unknown": False,
    }


def test_a_message_with_a_callable_does_not_cross() -> None:
    join = game.Join(1, "ann", lambda data: None, None, None)
    with pytest.raises(codec.NotForwardable):
        codec.encode(join)
    with pytest.raises(codec.NotForwardable):
        codec.encode({"f": print})
