"""The OpenAPI description of the seed-003 resources (``transport/lotteries.py``), merged
into ``/openapi.json`` by ``transport/openapi.py``. Public: no security requirement."""

from __future__ import annotations

from typing import Any

from domain.lotteries import DEFAULT_PAGE_SIZE, MAX_PAGE, MAX_PAGE_SIZE, ParticipationStatus

_PROBLEM = {"$ref": "#/components/responses/Problem"}


def _path_param(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id (a UUID).",
        "schema": {"type": "string", "pattern": "^[0-9A-Za-z-]{1,64}$"},
    }


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_PAGING = [
    _query_param(
        "page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, "1-based"
    ),
    _query_param(
        "size",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
        "items per page",
    ),
]
_PRODUCT = _path_param("product_id", "gaming product (game source)")
_POOL = _path_param("pool_id", "participation pool (pool)")
_DRAW = _path_param("draw_id", "draw (game)")


def _get(summary: str, params: list[dict[str, Any]], *errors: int) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "HAL+JSON with absolute links and the lo curie",
            "content": {"application/hal+json": {"schema": {"$ref": "#/components/schemas/Hal"}}},
        },
        "503": _PROBLEM,
    }
    responses.update({str(status): _PROBLEM for status in (400, *errors)})
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


SCHEMAS: dict[str, Any] = {
    "Hal": {
        "type": "object",
        "required": ["_links"],
        "properties": {"_links": {"type": "object", "required": ["self", "curies"]}},
        "additionalProperties": True,
        "description": "docs/lotteries.md describes every resource's fields.",
    },
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "errorCode"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errorCode": {"type": "string"},
            "parameter": {"type": "string", "description": "The query parameter at fault."},
        },
    },
}

RESPONSES: dict[str, Any] = {
    "Problem": {
        "description": "refused (RFC 9457 problem details); nothing was changed",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
}


def lottery_paths() -> dict[str, Any]:
    """The paths of every seed-003 resource."""
    pools = "/gaming-products/{product_id}/participation-pools"
    pool = f"{pools}/{{pool_id}}"
    filters = [
        _query_param(
            "status", {"enum": [s.value for s in ParticipationStatus]}, "only pools in it"
        ),
        _query_param("draw", {"type": "string"}, "only pools on this draw of the product"),
    ]
    return {
        "/gaming-products": _get("The entry point: every gaming product", _PAGING, 404),
        "/gaming-products/{product_id}": _get("A gaming product", [_PRODUCT], 404),
        pools: _get(
            "A product's participation pools, earlier draws first",
            [_PRODUCT, *_PAGING, *filters],
            404,
        ),
        pool: _get("A participation pool", [_PRODUCT, _POOL], 404),
        f"{pool}/betting-scheme": _get("What a valid bet in the pool is", [_PRODUCT, _POOL], 404),
        f"{pool}/winning-scheme": _get("How the pool pays out", [_PRODUCT, _POOL], 404),
        "/draws/{draw_id}": _get("A draw: its time and result so far", [_DRAW], 404),
        "/gaming-products/{product_id}/draw-view/{draw_id}": _get(
            "How a product sees one of its draws", [_PRODUCT, _DRAW], 404
        ),
    }
