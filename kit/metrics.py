"""What a server counts and logs about itself: the Prometheus metrics of ``/metrics`` and
the structured log lines of the same events.

One :class:`Metrics` per server, on a registry of its own (not prometheus-client's global
one), so that tests running several servers in one process do not mix their counts. The
code that sees an event makes one call here (``connection_opened``, ``message``,
``committed``, ``actor_restarted``); what is a gauge of the present (connections, outbox
bytes, inbox depths) is read when scraped rather than kept up to date on every message.

Labels are bounded: an op is its name from the op table (``unknown`` otherwise), a result
is ``ok`` or an error code, an actor is its kind (``pool``, not ``pool:<id>``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("tote.events")

#: Seconds: from a fast in-memory answer to a request that waited out its timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Methods counted by name; any other (a client may send any token) is OTHER.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Client(Protocol):
    """A websocket connection, as far as the metrics look at it."""

    user_id: int

    @property
    def outbox_bytes(self) -> int: ...


def actor_kind(name: str) -> str:
    """``pool:3f2a…`` -> ``pool``: one label value per kind of actor, not per actor."""
    return name.partition(":")[0]


class Metrics:
    """The metric objects of one server and the hooks that update them."""

    def __init__(self, *, slow_commit_seconds: float = 0.5) -> None:
        self.slow_commit_seconds = slow_commit_seconds
        self.registry = CollectorRegistry()
        self._clients: set[Client] = set()
        self._inbox_depths: Callable[[], dict[str, int]] = dict
        self._op_names: dict[int, str] = {}
        self._by_label: dict[tuple[str, str], tuple[Any, Any, bool]] = {}
        r = self.registry
        self.connections_opened = Counter(
            "tote_ws_connections_opened", "Websocket connections accepted.", registry=r
        )
        self.messages = Counter(
            "tote_ws_messages",
            "Websocket messages handled, by op and result (ok or the error code).",
            ["op", "result"],
            registry=r,
        )
        self.latency = Histogram(
            "tote_ws_message_seconds",
            "Time from reading a message to its answer being queued, by op (answered ones).",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "tote_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.bets = Counter("tote_bets", "Bets accepted (committed).", registry=r)
        self.commits = Counter("tote_storage_commits", "SQLite transactions committed.", registry=r)
        self.commit_batch = Histogram(
            "tote_storage_commit_batch_size",
            "Requests committed together in one transaction (group commit).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "tote_storage_commit_seconds",
            "Time of one commit, fsync included.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.restarts = Counter(
            "tote_actor_restarts",
            "Actors rebuilt from storage after a crash.",
            ["actor"],
            registry=r,
        )
        r.register(_Present(self))

    # -- wiring -----------------------------------------------------------------------

    def watch_inboxes(self, inbox_depths: Callable[[], dict[str, int]]) -> None:
        """Where to read the actors' inbox depths when scraped."""
        self._inbox_depths = inbox_depths

    def name_ops(self, op_names: dict[int, str]) -> None:
        """The op names that label messages (the op table lives in the transport)."""
        self._op_names = op_names

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)

    # -- hooks ------------------------------------------------------------------------

    def connection_opened(self, client: Client) -> None:
        self._clients.add(client)
        self.connections_opened.inc()
        log.info("connection_opened", extra={"user_id": client.user_id})

    def connection_closed(self, client: Client, reason: tuple[int, str] | None) -> None:
        self._clients.discard(client)
        code, text = reason or (1000, "closed by the client or a server stop")
        log.info(
            "connection_closed",
            extra={"user_id": client.user_id, "close_code": code, "reason": text},
        )

    def message(self, op: Any, result: str, seconds: float | None = None) -> None:
        """A message answered (``ok``, with its latency) or refused (its error code)."""
        name = self._op_names.get(op, "unknown") if isinstance(op, int) else "unknown"
        counter, latency, is_bet = self._series(name, result)
        counter.inc()
        if seconds is not None:
            latency.observe(seconds)
        if is_bet:
            self.bets.inc()
        elif result != "ok":
            _log_refusal("refused", result, op=name)

    def http_request(self, route: str, method: str, status: int, error_code: str | None) -> None:
        """An HTTP answer; a refusal is logged with its error code."""
        method = method if method in HTTP_METHODS else "OTHER"
        self.http_requests.labels(route, method, str(status)).inc()
        if error_code is not None:
            _log_refusal("http_refused", error_code, route=route, status=status)

    def _series(self, name: str, result: str) -> tuple[Any, Any, bool]:
        """The labelled children of one (op, result), made once: ``labels()`` costs more
        than the increment. Both labels are bounded, so is this cache."""
        key = (name, result)
        found = self._by_label.get(key)
        if found is None:
            is_bet = result == "ok" and name == "place_bet_in_betting_pool"
            found = (self.messages.labels(name, result), self.latency.labels(name), is_bet)
            self._by_label[key] = found
        return found

    def committed(self, requests: int, seconds: float) -> None:
        self.commits.inc()
        self.commit_batch.observe(requests)
        self.commit_seconds.observe(seconds)
        if seconds >= self.slow_commit_seconds:
            log.warning("slow_commit", extra={"seconds": round(seconds, 3), "requests": requests})

    def actor_restarted(self, name: str, restarts: int) -> None:
        self.restarts.labels(actor_kind(name)).inc()
        log.warning("actor_restarted", extra={"actor": name, "restarts": restarts})


def _log_refusal(event: str, error_code: str, **fields: Any) -> None:
    """A refusal at INFO, except a flood's (RATE_LIMITED): bounded by nothing but the
    flood, those are written only at DEBUG."""
    level = logging.DEBUG if error_code == "RATE_LIMITED" else logging.INFO
    log.log(level, event, extra={**fields, "error_code": error_code})


class _Present(Collector):
    """Gauges read at scrape time: open connections, unsent bytes, actors and inboxes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        clients = list(self.metrics._clients)
        yield GaugeMetricFamily(
            "tote_ws_connections", "Websocket connections open.", value=len(clients)
        )
        yield GaugeMetricFamily(
            "tote_ws_outbox_bytes",
            "Bytes queued for clients and not yet sent, all connections.",
            value=sum(client.outbox_bytes for client in clients),
        )
        actors = GaugeMetricFamily("tote_actors", "Actors running, by kind.", labels=["actor"])
        depth = GaugeMetricFamily(
            "tote_actor_inbox_depth", "Requests queued, by kind of actor.", labels=["actor"]
        )
        deepest = GaugeMetricFamily(
            "tote_actor_inbox_depth_max",
            "The longest inbox of one actor, by kind.",
            labels=["actor"],
        )
        by_kind: dict[str, list[int]] = {}
        for name, queued in self.metrics._inbox_depths().items():
            by_kind.setdefault(actor_kind(name), []).append(queued)
        for kind, depths in sorted(by_kind.items()):
            actors.add_metric([kind], len(depths))
            depth.add_metric([kind], sum(depths))
            deepest.add_metric([kind], max(depths))
        yield from (actors, depth, deepest)
