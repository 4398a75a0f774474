"""The shipped benchmark runs end to end: a tiny run of every scenario, servers and
clients in their own processes. It must work, not be fast: no figure is asserted."""

from __future__ import annotations

import json
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


def test_a_tiny_benchmark_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    tiny = ["--connections", "2", "--seconds", "0.3", "--paced-rate", "100"]
    tiny += ["--settle-bets", "10", "--subscribers", "3", "--processes", "1"]
    finished = subprocess.run(
        [sys.executable, "-m", "tote.cli", "bench", *tiny, "--json", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    figures = json.loads(output.read_text())
    assert figures.keys() >= ISSUE_KEYS
    assert figures["settle_bets"] == 10
    assert figures["fanout_subscribers"] == 3
    assert figures["fanout_joins_failed"] == 0
    assert figures["bets_failed"] == 0
    assert "bets_to_echo_ratio" in finished.stdout
