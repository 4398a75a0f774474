"""``/metrics`` over a real server, the per-server registry, and the structured log lines
of connections, refusals, restarts and slow commits."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.wallet import GetBalances
from kit.metrics import Metrics
from tests.conftest import Harness, running_harness
from tests.test_ws_pools import table
from tote.logs import KeyValueFormatter


async def scrape(harness: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics (no operator key), by name and labels."""
    r = await harness.http.get("/metrics", headers={"Authorization": ""})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


BET = "place_bet_in_betting_pool"


async def test_metrics_count_connections_messages_bets_and_commits(harness: Harness) -> None:
    async with table(harness, "ann") as t:
        pool_id = await t.pool()
        await t.bet("ann", pool_id, "argentina", "2")
        await t.bet("ann", pool_id, "argentina", "1")
        refused = await t["ann"].call(392, pool_id=pool_id, target="argentina", amount="-1")
        assert refused["res"] == 666
        await t.drain_all()  # nothing left unsent
        m = await scrape(harness)

        assert m[("tote_ws_connections", ())] == 2  # the admin and ann
        assert m[("tote_ws_connections_opened_total", ())] == 2
        assert m[("tote_bets_total", ())] == 2
        assert m[("tote_ws_messages_total", (("op", BET), ("result", "ok")))] == 2
        assert m[("tote_ws_messages_total", (("op", BET), ("result", "INVALID_STAKE")))] == 1
        assert m[("tote_ws_message_seconds_count", (("op", BET),))] == 2
        assert m[("tote_ws_outbox_bytes", ())] >= 0
        commits = m[("tote_storage_commits_total", ())]
        assert commits > 0 and m[("tote_storage_commit_batch_size_count", ())] == commits
        assert m[("tote_storage_commit_batch_size_sum", ())] >= commits
        assert m[("tote_actors", (("actor", "pool"),))] == 1
        assert ("tote_actor_inbox_depth", (("actor", "storage"),)) in m
        assert ("tote_actor_inbox_depth_max", (("actor", "wallet"),)) in m


async def test_each_server_counts_its_own(harness: Harness) -> None:
    async with running_harness() as other, harness.connect(await harness.user()) as ws:
        await ws.call(1)  # ping
        mine, theirs = await scrape(harness), await scrape(other)
    assert mine[("tote_ws_connections_opened_total", ())] == 1
    assert theirs[("tote_ws_connections_opened_total", ())] == 0


async def test_an_actor_restart_is_counted_by_kind_and_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    services = harness.services
    services.supervisor.kill("wallet")
    await services.ask_wallet(GetBalances(1))  # served by the new incarnation
    m = await scrape(harness)
    assert m[("tote_actor_restarts_total", (("actor", "wallet"),))] == 1
    (line,) = [r for r in caplog.records if r.getMessage() == "actor_restarted"]
    assert (line.actor, line.restarts, line.levelno) == ("wallet", 1, logging.WARNING)  # type: ignore[attr-defined]


async def test_refusals_and_connections_are_logged_with_their_fields(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    user = await harness.user()
    async with harness.connect(user) as ws:
        await ws.call(9999)
    events = {r.getMessage(): r for r in caplog.records}
    assert events["connection_opened"].user_id == user["user_id"]  # type: ignore[attr-defined]
    assert events["refused"].error_code == "UNKNOWN_OP"  # type: ignore[attr-defined]
    assert events["refused"].op == "unknown"  # type: ignore[attr-defined]


class FakeClient:
    def __init__(self, user_id: int, outbox_bytes: int) -> None:
        self.user_id = user_id
        self.outbox_bytes = outbox_bytes


def test_gauges_are_read_when_scraped() -> None:
    metrics = Metrics()
    one, two = FakeClient(1, 100), FakeClient(2, 20)
    metrics.connection_opened(one)
    metrics.connection_opened(two)
    metrics.watch_inboxes(lambda: {"pool:a": 3, "pool:b": 1, "wallet": 0})
    text = metrics.exposition().decode()
    assert "tote_ws_connections 2.0" in text and "tote_ws_outbox_bytes 120.0" in text
    assert 'tote_actor_inbox_depth{actor="pool"} 4.0' in text
    assert 'tote_actor_inbox_depth_max{actor="pool"} 3.0' in text
    assert 'tote_actors{actor="pool"} 2.0' in text
    metrics.connection_closed(one, (1008, "too slow"))
    text = metrics.exposition().decode()
    assert "tote_ws_connections 1.0" in text and "tote_ws_outbox_bytes 20.0" in text
    assert "tote_ws_connections_opened_total 2.0" in text


def test_a_slow_commit_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics(slow_commit_seconds=0.5)
    metrics.committed(3, 0.1)
    assert not caplog.records
    metrics.committed(7, 0.75)
    (record,) = caplog.records
    assert record.getMessage() == "slow_commit" and record.levelno == logging.WARNING
    assert (record.requests, record.seconds) == (7, 0.75)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"user_id": 7}, "event=connection_opened user_id=7"),
        ({"reason": 'too "slow" = bad'}, 'reason="too \\"slow\\" = bad"'),
        ({"text": "two\nlines"}, 'text="two\\nlines"'),
    ],
)
def test_log_lines_are_key_value(extra: dict[str, Any], expected: str) -> None:
    record = logging.LogRecord("tote.events", logging.INFO, "", 0, "connection_opened", (), None)
    record.__dict__.update(extra)
    line = KeyValueFormatter().format(record)
    assert line.startswith("ts=") and "level=info logger=tote.events" in line
    assert expected in line and "\n" not in line


async def test_http_answers_are_counted_and_refusals_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert (await harness.http.get("/v1/games")).status_code == 200
    assert (await harness.http.get("/v1/nothing")).status_code == 404
    assert (await harness.http.request("BREW", "/v1/games")).status_code == 405
    bad_key = {"Authorization": "Bearer nope"}
    assert (await harness.http.get("/v1/games", headers=bad_key)).status_code == 401
    m = await scrape(harness)
    counted = {
        labels: value for (name, labels), value in m.items() if name == "tote_http_requests_total"
    }
    route = (("method", "GET"), ("route", "/v1/games"))
    assert counted[(*route, ("status", "200"))] == 1
    assert counted[(*route, ("status", "401"))] == 1
    assert counted[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert counted[(("method", "OTHER"), ("route", "unmatched"), ("status", "405"))] == 1
    refusals = [
        (r.route, r.status, r.error_code)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "http_refused"
    ]
    assert ("/v1/games", 401, "AUTHENTICATION_FAILED") in refusals
    assert ("unmatched", 404, "NOT_FOUND") in refusals
