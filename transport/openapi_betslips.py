"""The OpenAPI part of the betslip endpoint (seed 002) and of the partner keys."""

from __future__ import annotations

from typing import Any

from domain.betslip import MAX_BETS, OPTIONAL_TEXT, REQUIRED_TEXT
from transport.routes_betslips import SLIP_STATUS

_DECIMAL = {
    "oneOf": [{"type": "number"}, {"type": "string"}],
    "description": "Exact decimal (a string keeps it exact for float-parsing clients).",
}


def _schema(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _schema(name)}}}


SCHEMAS: dict[str, Any] = {
    "BetDetails": {
        "type": "object",
        "required": [*REQUIRED_TEXT, "decimalPrice", "stake"],
        "properties": {
            **{name: {"type": "string"} for name in (*REQUIRED_TEXT, *OPTIONAL_TEXT)},
            "eventStage": {"type": "string", "enum": ["IN_PLAY", "PRE_PLAY"]},
            "decimalPrice": _DECIMAL,
            "stake": _DECIMAL,
        },
        "description": "eventId: a game id; marketId: a pool of that game; selectionId: a "
        "target of that pool; marketTypeId: the pool's action. The other names are the "
        "caller's labels, stored with the bet and echoed back.",
    },
    "Betslip": {
        "type": "object",
        "required": ["requestId", "userId", "sessionToken", "timestamp", "bets"],
        "properties": {
            "requestId": {"type": "string"},
            "userId": {"type": "string", "pattern": "^[0-9]+$"},
            "sessionToken": {"type": "string"},
            "timestamp": {"type": "string", "pattern": "^[0-9]+$"},
            "bets": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BETS,
                "items": _schema("BetDetails"),
            },
        },
    },
    "PlacedBetslip": {
        "type": "object",
        "properties": {
            "requestId": {"type": "string"},
            "userId": {"type": "string"},
            "sessionToken": {"type": "string"},
            "timestamp": {"type": "string"},
            "status": {"type": "string", "const": "PLACED"},
            "bets": {
                "type": "array",
                "items": {
                    "allOf": [
                        _schema("BetDetails"),
                        {"properties": {"potentialPayout": {"type": "number"}}},
                    ]
                },
            },
        },
    },
    "BetslipFailure": {
        "type": "object",
        "required": ["status", "errorCode"],
        "properties": {
            "status": {"type": "string", "const": "FAILURE"},
            "errorCode": {"type": "string", "enum": sorted(SLIP_STATUS)},
            "errorMessage": {"type": "string"},
            "failedBets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        **{
                            name: {"type": "string"}
                            for name in ("betId", "sportId", "eventId", "marketId", "selectionId")
                        },
                        "reason": {
                            "type": "object",
                            "properties": {
                                "minStake": {"type": "number"},
                                "maxStake": {"type": "number"},
                            },
                        },
                    },
                },
            },
        },
    },
    "Partner": {
        "type": "object",
        "properties": {
            "partner_id": {"type": "string"},
            "key": {"type": "string", "description": "Shown once; only its hash is kept."},
            "scope": {"type": "string", "const": "betslips"},
        },
    },
}


def betslip_paths(operator: list[dict[str, list]], error: dict[str, str]) -> dict[str, Any]:
    failures = {
        str(status): _json("BetslipFailure", "refused (4xx: final, the same for this key)")
        for status in sorted(set(SLIP_STATUS.values()))
    }
    return {
        "/v1/betslips": {
            "post": {
                "summary": "Place a betslip, all bets or none (seed 002)",
                "security": operator,
                "parameters": [
                    {
                        "name": "X-Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema("Betslip")}},
                },
                "responses": {"200": _json("PlacedBetslip", "placed"), **failures},
            }
        },
        "/v1/partners": {
            "post": {
                "summary": "Mint a partner key that may only place betslips",
                "security": operator,
                "responses": {"201": _json("Partner", "minted"), "401": error},
            }
        },
        "/v1/partners/{partner_id}": {
            "delete": {
                "summary": "Revoke a partner key",
                "security": operator,
                "parameters": [
                    {
                        "name": "partner_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "revoked"},
                    "401": error,
                    "404": error,
                },
            }
        },
    }
