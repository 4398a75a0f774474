"""The hand-written OpenAPI 3.1 description of the operator HTTP API (``GET /openapi.json``).

Written by hand rather than generated so the document says what the API promises (exact
decimal money, idempotent references, the error body), not what a framework guesses.
``tests/test_http_api.py`` checks that every route of the app is described here.
"""

from __future__ import annotations

from typing import Any

from transport import openapi_betslips, openapi_limits, openapi_lotteries
from transport.openapi_parts import ERROR as _ERROR
from transport.openapi_parts import OPERATOR as _OPERATOR
from transport.openapi_parts import json_content as _json
from transport.openapi_parts import operation as _operation
from transport.openapi_parts import ref as _ref


def _user_id_param() -> dict[str, Any]:
    return {
        "name": "user_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }


_MONEY = {
    "type": "number",
    "description": "Exact decimal text (never a rounded binary float), e.g. 10.3.",
}
_AMOUNT_IN = {
    "oneOf": [{"type": "number"}, {"type": "string", "pattern": r"^\d+(\.\d+)?$"}],
    "description": "Positive, with no more decimals than the currency allows "
    "(2 unless ISO 4217 says otherwise). A string keeps it exact "
    "in clients that parse JSON numbers as floats.",
}


def _page_of(name: str, item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A page of a listing: the items in creation order, and whether more follow."""
    return {
        "type": "object",
        "required": [name, "more"],
        "properties": {
            **extra,
            name: {"type": "array", "items": {"type": "object", "properties": item}},
            "more": {"type": "boolean", "description": "A next page exists (offset + limit)."},
        },
    }


_PAGE = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
]

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["status", "errorCode"],
        "properties": {
            "status": {"const": "FAILURE"},
            "errorCode": {"type": "string", "examples": ["INVALID_AMOUNT", "NOT_FOUND"]},
            "errorMessage": {"type": "string"},
            "parameter": {"type": "string", "description": "The field at fault, if one is."},
            "limit": {"type": "string", "description": "The limit an amount broke, if any."},
        },
        "additionalProperties": True,
    },
    "NewUser": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "password": {
                "type": "string",
                "maxLength": 1024,
                "description": "Omitted: the user can never log in with a password.",
            },
            "roles": {
                "oneOf": [
                    {"type": "array", "items": {"enum": ["developer", "house", "player"]}},
                    {"type": "string", "description": "comma-separated"},
                ]
            },
        },
    },
    "User": {
        "type": "object",
        "required": ["user_id", "name", "roles"],
        "properties": {
            "user_id": {"type": "integer"},
            "name": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Session": {
        "type": "object",
        "required": ["user_id", "session_key", "expires_at"],
        "properties": {
            "user_id": {"type": "integer"},
            "session_key": {"type": "string"},
            "expires_at": {"type": "integer", "description": "epoch ms"},
        },
    },
    "Login": {
        "type": "object",
        "required": ["name", "password"],
        "properties": {"name": {"type": "string"}, "password": {"type": "string"}},
    },
    "LoginResult": {
        "type": "object",
        "required": ["id", "user_session_key"],
        "properties": {"id": {"type": "integer"}, "user_session_key": {"type": "string"}},
    },
    "MoneyMovement": {
        "type": "object",
        "required": ["amount", "reference"],
        "properties": {
            "currency": {
                "type": "string",
                "pattern": "^[A-Za-z]{3}$",
                "description": "Upper-cased; omitted: the server's default currency.",
            },
            "amount": _AMOUNT_IN,
            "reference": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "Idempotency key: a replay answers 200 with "
                "duplicate true; reuse with another payload is 409.",
            },
        },
    },
    "Balance": {
        "type": "object",
        "required": ["current", "available", "exposure"],
        "properties": {"current": _MONEY, "available": _MONEY, "exposure": _MONEY},
    },
    "MoneyResult": {
        "type": "object",
        "required": ["user_id", "currency", "reference", "duplicate", "balance"],
        "properties": {
            "user_id": {"type": "integer"},
            "currency": {"type": "string"},
            "reference": {"type": "string"},
            "duplicate": {"type": "boolean"},
            "balance": _ref("Balance"),
        },
    },
    "Balances": {
        "type": "object",
        "additionalProperties": _ref("Balance"),
        "description": "currency -> balance; empty for a user who never held money.",
    },
    "Blocked": {
        "type": "object",
        "required": ["user_id", "blocked"],
        "properties": {"user_id": {"type": "integer"}, "blocked": {"type": "boolean"}},
    },
    "NewSourceAdmin": {
        "type": "object",
        "required": ["user_id"],
        "properties": {"user_id": {"type": "integer", "minimum": 1}},
    },
    "Source": {
        "type": "object",
        "required": ["id", "name", "admins"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "admins": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Audit": {
        "type": "object",
        "required": ["ok", "problems", "transactions", "lines"],
        "properties": {
            "ok": {"type": "boolean"},
            "problems": {"type": "array", "items": {"type": "string"}},
            "transactions": {"type": "integer"},
            "lines": {"type": "integer"},
        },
    },
    "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
    "SourceList": _page_of(
        "sources",
        {
            "source_id": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "owner_id": {"type": "integer"},
            "admins": {"type": "array", "items": {"type": "integer"}},
            "closed": {"type": "boolean"},
            "created_at": {"type": "integer", "description": "ms since the epoch"},
            "games": {"type": "integer"},
        },
    ),
    "GameList": _page_of(
        "games",
        {
            "game_id": {"type": "string"},
            "source_id": {"type": "string"},
            "game_name": {"type": "string"},
            "status": {"type": "string", "examples": ["game_in_progress_betting_active"]},
            "currency": {"type": "string"},
            "open_at": {"type": "integer"},
            "live_start_at": {"type": "integer"},
            "created_at": {"type": "integer"},
            "closed_at": {"type": ["integer", "null"]},
            "admins": {"type": "array", "items": {"type": "integer"}},
            "pools": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "How many pools the game has, by status.",
            },
        },
    ),
    "PoolList": _page_of(
        "pools",
        {
            "pool_id": {"type": "string"},
            "status": {"type": "string", "examples": ["open", "resolved"]},
            "action": {"type": ["string", "null"]},
            "pool_type": {"type": ["string", "null"]},
            "currency": {"type": "string"},
            "start_at": {"type": ["integer", "null"]},
            "finish_at": {"type": ["integer", "null"]},
            "winning_target": {"type": ["string", "null"]},
            "bets": {"type": "integer"},
            "staked": _MONEY,
        },
        game_id={"type": "string"},
    ),
}


def openapi_document() -> dict[str, Any]:
    """The whole document, as a dict for the exact-decimal JSON codec."""
    user = [_user_id_param()]
    money_responses = {
        "201": _json(_ref("MoneyResult"), "applied"),
        "200": _json(_ref("MoneyResult"), "a replay of this reference"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tote operator API",
            "version": "1",
            "description": "Provisioning and money movements for a tote server. "
            "Every error answers with the Error body.",
        },
        "components": {
            "securitySchemes": {
                "operator": {"type": "http", "scheme": "bearer", "description": "The operator key."}
            },
            "schemas": {
                **_SCHEMAS,
                **openapi_limits.schemas(_AMOUNT_IN),
                **openapi_lotteries.SCHEMAS,
                **openapi_betslips.SCHEMAS,
            },
            "responses": {
                "Error": _json(_ref("Error"), "refused; nothing was changed"),
                **openapi_lotteries.RESPONSES,
            },
        },
        "paths": {
            "/v1/users": {
                "post": _operation(
                    "Create a user",
                    {"201": _json(_ref("User"), "created")},
                    body="NewUser",
                    errors=(400, 409, 413),
                )
            },
            "/v1/users/{user_id}/sessions": {
                "post": _operation(
                    "Mint a session key for a user",
                    {"201": _json(_ref("Session"), "created")},
                    params=user,
                    errors=(404,),
                )
            },
            "/v1/login": {
                "post": _operation(
                    "A player's own login; no operator key",
                    {"200": _json(_ref("LoginResult"), "logged in")},
                    body="Login",
                    operator=False,
                    errors=(400, 403, 503),
                )
            },
            "/v1/users/{user_id}/deposits": {
                "post": _operation(
                    "Credit a wallet",
                    money_responses,
                    body="MoneyMovement",
                    params=user,
                    errors=(400, 404, 409, 413),
                )
            },
            "/v1/users/{user_id}/withdrawals": {
                "post": _operation(
                    "Debit the available balance (INSUFFICIENT_FUNDS, USER_BLOCKED: 400)",
                    money_responses,
                    body="MoneyMovement",
                    params=user,
                    errors=(400, 404, 409, 413),
                )
            },
            "/v1/users/{user_id}/balances": {
                "get": _operation(
                    "A user's balances",
                    {"200": _json(_ref("Balances"), "balances")},
                    params=user,
                    errors=(404,),
                )
            },
            "/v1/users/{user_id}/block": {
                "post": _operation(
                    "Block a user from betting and withdrawing",
                    {"200": _json(_ref("Blocked"), "blocked")},
                    params=user,
                    errors=(404,),
                )
            },
            "/v1/users/{user_id}/unblock": {
                "post": _operation(
                    "Unblock a user",
                    {"200": _json(_ref("Blocked"), "unblocked")},
                    params=user,
                    errors=(404,),
                )
            },
            "/v1/users/{user_id}/cooldown": {
                "post": {
                    **_operation(
                        "No bets from the user until `until` (epoch ms; a past time lifts it)",
                        {
                            "200": {
                                "description": "set",
                                "content": {
                                    "application/json": {
                                        "schema": {
                                            "type": "object",
                                            "properties": {
                                                "user_id": {"type": "integer"},
                                                "cooldown_until": {"type": "integer"},
                                            },
                                        }
                                    }
                                },
                            }
                        },
                        params=user,
                        errors=(400, 404),
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["until"],
                                    "properties": {"until": {"type": "integer"}},
                                }
                            }
                        },
                    },
                }
            },
            **openapi_limits.paths(user),
            "/v1/sources/{source_id}/admins": {
                "post": _operation(
                    "Add a game source admin",
                    {"200": _json(_ref("Source"), "the source")},
                    body="NewSourceAdmin",
                    errors=(400, 404),
                    params=[
                        {
                            "name": "source_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
            "/v1/sources": {
                "get": _operation(
                    "List game sources",
                    {"200": _json(_ref("SourceList"), "a page of sources")},
                    params=_PAGE,
                    errors=(400,),
                )
            },
            "/v1/games": {
                "get": _operation(
                    "List games with their status and pools by status",
                    {"200": _json(_ref("GameList"), "a page of games")},
                    params=_PAGE,
                    errors=(400,),
                )
            },
            "/v1/games/{game_id}/pools": {
                "get": _operation(
                    "List a game's pools with their bets and stakes",
                    {"200": _json(_ref("PoolList"), "a page of pools")},
                    params=[
                        {
                            "name": "game_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                        },
                        *_PAGE,
                    ],
                    errors=(400, 404),
                )
            },
            "/v1/audit": {
                "get": _operation(
                    "Check the double-entry ledger", {"200": _json(_ref("Audit"), "the result")}
                )
            },
            "/healthz": {
                "get": _operation(
                    "Liveness", {"200": _json(_ref("Status"), "alive")}, operator=False
                )
            },
            "/readyz": {
                "get": _operation(
                    "Readiness: storage recovered and actors running",
                    {
                        "200": _json(_ref("Status"), "ready"),
                        "503": _json(_ref("Status"), "starting"),
                    },
                    operator=False,
                )
            },
            "/metrics": {
                "get": _operation(
                    "Metrics in the Prometheus text format (docs/operations.md)",
                    {
                        "200": {
                            "description": "Prometheus text exposition 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                    operator=False,
                )
            },
            "/openapi.json": {
                "get": _operation(
                    "This document", {"200": {"description": "OpenAPI 3.1"}}, operator=False
                )
            },
            **openapi_lotteries.lottery_paths(),
            **openapi_betslips.betslip_paths(_OPERATOR, _ERROR),
            "/": {
                "get": _operation(
                    "The browser client's page", {"200": {"description": "HTML"}}, operator=False
                )
            },
            "/web/config.json": {
                "get": _operation(
                    "Where the page opens its websocket: {ws_port, currency}",
                    {"200": {"description": "JSON"}},
                    operator=False,
                )
            },
            "/web/{name}": {
                "get": _operation(
                    "The page's script (app.js) and style (app.css)",
                    {"200": {"description": "JavaScript or CSS"}},
                    errors=(404,),
                    operator=False,
                    params=[
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
        },
    }
