"""The building blocks of the OpenAPI document (``transport/openapi.py``) that its parts
(``openapi_limits``...) share: references, JSON bodies, error responses, one operation.
Apart so that the parts need not import the document that imports them."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/responses/Error"}
OPERATOR = [{"operator": []}]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def request_body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


def error_responses(*statuses: int) -> dict[str, Any]:
    return {str(status): ERROR for status in statuses}


def operation(
    summary: str,
    responses: dict[str, Any],
    *,
    body: str | None = None,
    operator: bool = True,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    """One operation; operator calls add the 401 and the 503/500 every actor call can give."""
    op: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    if body:
        op["requestBody"] = request_body(body)
    if params:
        op["parameters"] = params
    if operator:
        op["security"] = OPERATOR
        op["responses"].update(error_responses(401, 500, 503))
    op["responses"].update(error_responses(*errors))
    return op
