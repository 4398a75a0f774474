"""The OpenAPI part for player limits and self-exclusion (decisions §12)."""

from __future__ import annotations

from typing import Any

from transport.openapi_parts import json_content as _json
from transport.openapi_parts import operation as _operation
from transport.openapi_parts import ref as _ref

_PERIODS = ("day", "week", "month")
_KINDS = ("deposit", "loss")
_LIMIT_AMOUNT = {"type": "string", "description": "Exact decimal text, e.g. 50.0."}


def _by_period(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {period: value for period in _PERIODS},
    }


def schemas(amount_in: dict[str, Any]) -> dict[str, Any]:
    """The bodies; ``amount_in`` is how the document reads an amount sent in."""
    return {
        "LimitsChange": {
            "type": "object",
            "description": "Each period named is set (null removes it), the others stay. A "
            "lower or first limit applies at once, a higher one or a removal 24 hours later.",
            "properties": {
                "currency": {
                    "type": "string",
                    "pattern": "^[A-Za-z]{3}$",
                    "description": "Omitted: the server's default currency.",
                },
                **{kind: _by_period({"oneOf": [amount_in, {"type": "null"}]}) for kind in _KINDS},
            },
        },
        "Limits": {
            "type": "object",
            "required": ["user_id", "currency", *_KINDS, "pending", "left", "excluded_until"],
            "properties": {
                "user_id": {"type": "integer"},
                "currency": {"type": "string"},
                **{kind: _by_period(_LIMIT_AMOUNT) for kind in _KINDS},
                "pending": {
                    "type": "array",
                    "description": "Raises and removals (amount null) still waiting.",
                    "items": {
                        "type": "object",
                        "required": ["kind", "period", "amount", "from"],
                        "properties": {
                            "kind": {"enum": list(_KINDS)},
                            "period": {"enum": list(_PERIODS)},
                            "amount": {"type": ["string", "null"]},
                            "from": {"type": "integer", "description": "epoch ms"},
                        },
                    },
                },
                "left": {
                    "type": "object",
                    "description": "What each limit in force still allows.",
                    "properties": {kind: _by_period(_LIMIT_AMOUNT) for kind in _KINDS},
                },
                "excluded_until": {"type": ["integer", "null"]},
            },
        },
        "Exclusion": {
            "type": "object",
            "required": ["until"],
            "properties": {
                "until": {
                    "type": "integer",
                    "description": "epoch ms (or s), at least 24 hours from now and not before "
                    "an exclusion in force",
                }
            },
        },
        "Excluded": {
            "type": "object",
            "required": ["user_id", "excluded_until"],
            "properties": {
                "user_id": {"type": "integer"},
                "excluded_until": {"type": "integer"},
            },
        },
    }


def paths(user: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's side of player protection (decisions §12)."""
    currency = {
        "name": "currency",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "Omitted: the server's default currency.",
    }
    limits = {"200": _json(_ref("Limits"), "the limits in force, what is left, what waits")}
    return {
        "/v1/users/{user_id}/limits": {
            "get": _operation(
                "A player's deposit and loss limits in one currency",
                limits,
                params=[*user, currency],
                errors=(400, 404),
            ),
            "put": _operation(
                "Set a player's limits (lower at once, higher or removed after 24 hours)",
                limits,
                body="LimitsChange",
                params=user,
                errors=(400, 404, 413),
            ),
        },
        "/v1/users/{user_id}/exclusion": {
            "post": _operation(
                "Exclude a player from bets and deposits until a time (never shortened)",
                {"200": _json(_ref("Excluded"), "excluded")},
                body="Exclusion",
                params=user,
                errors=(400, 404, 413),
            )
        },
    }
