"""Open status endpoints (health, readiness, the OpenAPI document) and the ledger audit."""

from __future__ import annotations

from quart import Blueprint, Response

from actors.remote import backlog as callbacks_backlog
from actors.services import Services
from storage.audit import audit_ledger
from transport.httpkit import json_response, operator_only
from transport.openapi import openapi_document


def status_blueprint(services: Services) -> Blueprint:
    routes = Blueprint("status", __name__)
    operator = operator_only(services)

    @routes.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @routes.get("/readyz")
    async def readyz() -> Response:
        if services.ready.is_set():
            return json_response({"status": "ready"})
        return json_response({"status": "starting"}, 503)

    @routes.get("/openapi.json")
    async def openapi() -> Response:
        return json_response(openapi_document())

    @routes.get("/v1/audit")
    @operator
    async def run_audit() -> Response:
        books = await services.storage.read_snapshot(audit_ledger)
        report = {
            "ok": books.ok,
            "problems": books.problems,
            "transactions": books.transactions,
            "lines": books.lines,
        }
        if services.operator is not None:  # remote wallet mode: the outbox
            backlog = await services.storage.read(callbacks_backlog)
            report["callbacks"] = {
                "pending": backlog.pending,
                "oldest_ms": backlog.oldest_ms,
                "max_attempts": backlog.max_attempts,
            }
        return json_response(report)

    return routes
