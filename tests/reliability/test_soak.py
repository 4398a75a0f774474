"""Scenarios 1 and 2, short: one seeded chaos round (websocket bets and betslips), one
crash round and one remote wallet crash round, each with two ``kill -9``, on PostgreSQL a
restart round with two ``pg_ctl restart -m immediate``, and a cluster round with two
``kill -9`` of the owner (the long run is ``make soak``, tests/reliability/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.reliability.cluster_round import cluster_round
from tests.reliability.crash import crash_round
from tests.reliability.load import Figures
from tests.reliability.restart import restart_round
from tests.reliability.soak import chaos_round

#: Chaos and crash rounds: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines


async def test_a_chaos_round_loses_nothing() -> None:
    figures = Figures()
    await chaos_round(11, figures)
    assert figures.kills > 0 and figures.confirmed > 0
    assert figures.lost == 0
    print(f"chaos: {figures.line()}")


async def test_a_crash_round_loses_nothing(tmp_path: Path) -> None:
    figures = Figures()
    with trio.fail_after(240):
        await crash_round(11, tmp_path, figures, kills=2)
    assert figures.kills == figures.restarts == 2
    assert figures.lost == 0
    print(f"crash: {figures.line()}")


async def test_a_remote_wallet_crash_round_loses_nothing(tmp_path: Path) -> None:
    figures = Figures()
    with trio.fail_after(240):
        await crash_round(11, tmp_path, figures, kills=2, remote=True)
    assert figures.kills == figures.restarts == 2
    assert figures.lost == 0
    print(f"remote: {figures.line()}")


@pytest.mark.postgresql_only
async def test_a_postgresql_restarted_mid_load_loses_nothing(tmp_path: Path) -> None:
    """``pg_ctl restart -m immediate`` twice under load; tote is not restarted."""
    figures = Figures()
    await restart_round(11, tmp_path, figures, restarts=2)
    assert figures.kills == figures.restarts == 2
    assert figures.lost == 0
    print(f"pgrestart: {figures.line()}")


@pytest.mark.postgresql_only  # the engine does not matter: run it once
async def test_a_cluster_round_loses_nothing(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Three nodes, the owner killed twice under bets; the checker finds nothing."""
    figures = Figures()
    with trio.fail_after(240):
        await cluster_round(11, postgres_url, redis_url, tmp_path, figures, kills=2)
    assert figures.kills == 2 and len(figures.failovers) == 2
    assert figures.lost == figures.stale_writes == 0
    print(f"cluster: {figures.line()}")
