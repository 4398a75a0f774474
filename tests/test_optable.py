"""The op table is built in one place from each ``ops_*`` module's ``TABLE``."""

from __future__ import annotations

from typing import Any

import pytest

from transport import ops_games, ops_general, ops_limits, ops_pools
from transport.ops import OPS
from transport.optable import Context, Op, build_ops, recorder


def test_ops_is_every_module_table_by_code() -> None:
    tables = (ops_games.TABLE, ops_general.TABLE, ops_limits.TABLE, ops_pools.TABLE)
    assert {spec.code: spec for table in tables for spec in table} == OPS


def test_a_code_declared_twice_is_refused() -> None:
    declared: list[Op] = []
    op = recorder(declared)

    @op(1, "ping_again", replies=(1,))
    async def ping_again(ctx: Context, msg: dict[str, Any]) -> None:
        """Another ping."""

    with pytest.raises(ValueError, match="op 1 declared twice: 'ping' and 'ping_again'"):
        build_ops(ops_general.TABLE, declared)


def test_the_summary_defaults_to_the_docstring() -> None:
    declared: list[Op] = []

    @recorder(declared)(7, "seven", replies=(7,))
    async def seven(ctx: Context, msg: dict[str, Any]) -> None:
        """Say seven."""

    assert declared[0].summary == "Say seven."
