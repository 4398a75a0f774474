"""The protocols ``Services`` holds (``Directory``, ``SlipDesk``, ``OperatorWallet``) are
declared apart from their implementations, to keep ``actors.services`` out of an import
cycle; this keeps each implementation taking what its protocol says, until a type
checker runs in ``make lint``."""

from __future__ import annotations

import inspect

import pytest

from actors.betslips import BetslipDesk
from actors.directory import Games
from actors.remote import OperatorClient
from actors.services import Directory, OperatorWallet, SlipDesk


def _members(protocol: type) -> list[str]:
    return [
        name
        for name, value in vars(protocol).items()
        if (callable(value) and not name.startswith("_")) or name == "aclose"
    ]


def _shape(function: object) -> list[tuple[str, object, object]]:
    """Parameter names, kinds and defaults (annotations differ in spelling, not meaning)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [(Directory, Games), (SlipDesk, BetslipDesk), (OperatorWallet, OperatorClient)],
)
def test_each_implementation_takes_what_its_protocol_declares(
    protocol: type, implementation: type
) -> None:
    members = _members(protocol)
    assert members
    for name in members:
        declared, implemented = getattr(protocol, name), getattr(implementation, name)
        assert _shape(declared) == _shape(implemented), name
        assert inspect.iscoroutinefunction(declared) == inspect.iscoroutinefunction(implemented)
