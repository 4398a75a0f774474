"""The shipped benchmark runs end to end: a tiny run of every scenario, servers and
clients in their own processes. It must work, not be fast: no figure is asserted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ISSUE_KEYS = {
    "bets_per_second",
    "echo_round_trips_per_second",
    "bets_to_echo_ratio",
    "bet_latency_p99_ms",
    "server_cpu_us_per_bet",
    "settle_seconds",
    "settle_bets",
    "settle_max_stall_ms",
    "fanout_subscribers",
    "fanout_joins_failed",
    "fanout_p99_ms",
    "memory_per_connection_kb",
    "fanout_server_cpu_us_per_delivery",
    "fanout_clients_cpu_share",
    "bet_latency_p99_ms_alone",
    "bet_latency_p99_ms_audience",
}


def bench(*options: str) -> subprocess.CompletedProcess[str]:
    """``tote bench`` with ``options``, run to its end (a few minutes at most); its
    servers and client processes are killed with it whatever happens."""
    with subprocess.Popen(
        [sys.executable, "-m", "tote.cli", "bench", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_tiny_benchmark_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    tiny = ["--connections", "2", "--seconds", "0.3", "--paced-rate", "100"]
    tiny += ["--settle-bets", "10", "--subscribers", "3", "--processes", "1"]
    finished = bench(*tiny, "--json", str(output))
    assert finished.returncode == 0, finished.stderr
    figures = json.loads(output.read_text())
    assert figures.keys() >= ISSUE_KEYS
    assert figures["settle_bets"] == 10
    assert figures["fanout_subscribers"] == 3
    assert figures["fanout_joins_failed"] == 0
    assert figures["bets_failed"] == 0
    assert "bets_to_echo_ratio" in finished.stdout


CLUSTER_KEYS = {
    "nodes",
    "bet_owner_p50_ms",
    "bet_owner_p99_ms",
    "bet_edge_p50_ms",
    "bet_edge_p99_ms",
    "forward_added_p50_ms",
    "forward_added_p99_ms",
    "redis_ping_p50_ms",
    "one_node_lag_p99_ms",
    "spread_lag_p99_ms",
    "spread_deliveries_per_second",
    "one_node_same_lag_p99_ms",
    "spread_to_one_node_p99_ratio",
    "spread_to_one_node_same_p99_ratio",
}


def test_a_tiny_cluster_benchmark_writes_every_figure(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """``tote bench --cluster 2``: two node processes on one PostgreSQL and one Redis."""
    output = tmp_path / "cluster.json"
    tiny = ["--connections", "2", "--seconds", "0.3", "--forward-rate", "20"]
    tiny += ["--subscribers", "3", "--sample", "2", "--processes", "1"]
    cluster = ["--cluster", "2", "--database", postgres_url, "--redis", redis_url]
    finished = bench(*cluster, *tiny, "--json", str(output))
    assert finished.returncode == 0, finished.stderr
    figures = json.loads(output.read_text())
    assert figures.keys() >= CLUSTER_KEYS
    assert figures["nodes"] == 2
    assert figures["spread_subscribers"] == figures["one_node_same_subscribers"] == 6
    failed = ("bet_owner_failed", "bet_edge_failed", "spread_joins_failed", "one_node_joins_failed")
    assert [figures[name] for name in failed] == [0, 0, 0, 0]
    assert set(figures["peak_rss_kb"]) == {"node-0", "node-1"}


def test_the_cluster_benchmark_needs_postgresql_and_redis() -> None:
    finished = bench("--cluster", "2")
    assert finished.returncode == 2
    assert "--cluster needs --database postgresql://" in finished.stderr
