"""``GET /metrics``: the server's metrics in the Prometheus text format (kit.metrics),
and the count (and log line, for a refusal) of every HTTP answer.

``/metrics`` is open like ``/healthz``, as scrapers expect: it shows counts and timings,
never a user, a balance or a key. Bind the HTTP port to a private address to keep it in."""

from __future__ import annotations

import quart
from quart import Response, request

from actors.services import Services
from domain.codec import DecodeError, decode
from kit.metrics import CONTENT_TYPE


def metrics_blueprint(services: Services) -> quart.Blueprint:
    blueprint = quart.Blueprint("metrics", __name__)

    @blueprint.get("/metrics")
    async def metrics() -> Response:
        # On the event loop, not in a thread: the scrape-time gauges read the live
        # connections and inboxes, which only the loop may touch. Labels are bounded, so
        # the text stays small (a few hundred series).
        return Response(services.metrics.exposition(), content_type=CONTENT_TYPE)

    @blueprint.after_app_request
    async def count(response: Response) -> Response:
        """Every answer of the app, the refusals of its error handlers included."""
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        error_code = await _error_code(response) if response.status_code >= 400 else None
        services.metrics.http_request(rule, request.method, response.status_code, error_code)
        return response

    return blueprint


async def _error_code(response: Response) -> str:
    """The ``errorCode`` of an error body (every refusal of the app has one)."""
    try:
        body = decode(await response.get_data())
    except DecodeError:
        return "UNKNOWN"
    code = body.get("errorCode") if isinstance(body, dict) else None
    return code if isinstance(code, str) else "UNKNOWN"
