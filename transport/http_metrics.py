"""``GET /metrics``: the server's metrics in the Prometheus text format (tote.metrics).

Open like ``/healthz``, as scrapers expect: it shows counts and timings, never a user, a
balance or a key. Bind the HTTP port to a private address to keep it in."""

from __future__ import annotations

import quart
from quart import Response

from actors.services import Services
from tote.metrics import CONTENT_TYPE


def metrics_blueprint(services: Services) -> quart.Blueprint:
    blueprint = quart.Blueprint("metrics", __name__)

    @blueprint.get("/metrics")
    async def metrics() -> Response:
        # On the event loop, not in a thread: the scrape-time gauges read the live
        # connections and inboxes, which only the loop may touch. Labels are bounded, so
        # the text stays small (a few hundred series).
        return Response(services.metrics.exposition(), content_type=CONTENT_TYPE)

    return blueprint
