"""Scenario 6, who may do what: every websocket op (from the op table) and every HTTP
operation (from our own /openapi.json), sent by every kind of stranger at the owner's
things. A generated matrix: zero unexpected allows, nothing durable changed by the
strangers, nothing of the victim's shown to them, and the rightful owner let through
(so the refusals are the authorization and not a badly aimed request).

tests/test_roles.py checks the plain player on the role ops; this extends it to every
stranger, every op and the HTTP API."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from domain.codec import encode
from domain.roles import Role
from tests.conftest import Harness
from tests.reliability.world import World, build_world, fingerprint
from transport.ops import OPS

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

#: Run last, in this order: each takes away what the ops after it would act on.
DESTRUCTIVE = (399, 375, 366)
#: The ops whose refusal is an answer of their own rather than a 666 (seed 001).
OWN_REFUSAL = {616: 645, 100: 110}


def expected_allow(op: int, standing: set[str]) -> bool:
    """The rule the docs state: the op's declared role, and nothing more."""
    role = OPS[op].role
    return role is Role.ANYONE or (role is Role.DEVELOPER and "developer" in standing)


def refused(op: int, reply: dict[str, Any]) -> bool:
    return reply["res"] == 666 or reply["res"] == OWN_REFUSAL.get(op)


async def test_every_websocket_op_by_every_stranger(harness: Harness) -> None:
    world = await build_world(harness)
    before = await fingerprint(harness)
    unexpected: list[tuple[str, int, dict[str, Any]]] = []
    cells = 0
    for who, user in world.strangers.items():
        standing = set(user["roles"])
        async with harness.connect(user) as ws:
            for op in sorted(OPS):
                if op == 365:  # opening a source of one's own is a developer's right
                    continue
                reply = await ws.call(op, **world.fields())
                cells += 1
                if not refused(op, reply) and not expected_allow(op, standing):
                    unexpected.append((who, op, reply))
                if refused(op, reply) and OPS[op].role is not Role.ANYONE and op != 616:
                    assert reply["error_code"] == "NOT_AUTHORIZED", (who, op, reply)
                assert world.bet_id not in encode(reply).decode(), (who, op, reply)
    assert unexpected == []
    assert await fingerprint(harness) == before
    print(f"websocket matrix: {cells} cells, {len(world.strangers)} strangers, 0 unexpected")
    await owner_is_let_through(harness, world)


async def owner_is_let_through(harness: Harness, world: World) -> None:
    """Each role op by the owner passes the authorization (it may still fail later on
    the state it finds, e.g. a second become-admin)."""
    order = sorted(
        (op for op, spec in OPS.items() if spec.role is not Role.ANYONE),
        key=lambda op: (DESTRUCTIVE.index(op) if op in DESTRUCTIVE else -1, op),
    )
    async with harness.connect(world.owner) as ws:
        for op in order:
            reply = await ws.call(op, **world.fields())
            assert reply.get("error_code") != "NOT_AUTHORIZED", (op, reply)


# -- HTTP: every documented operation, from the OpenAPI document ------------------------

PATH_PARAM = re.compile(r"\{(\w+)\}")


def plausible_body(world: World) -> dict[str, Any]:
    """One body every operation can read: the fields each one looks for."""
    return {
        "name": "newcomer",
        "password": "pw-newcomer",
        "roles": [],
        "currency": "EUR",
        "amount": "1",
        "reference": "matrix-1",
        "user_id": world.victim["user_id"],
    }


def operations(document: dict[str, Any], world: World) -> list[tuple[str, str, bool]]:
    """(method, concrete url, needs the operator key) for every documented operation."""
    values = {"user_id": world.victim["user_id"], "source_id": world.source_id}
    out = []
    for path, item in document["paths"].items():
        url = PATH_PARAM.sub(lambda m: str(values.get(m.group(1), "1")), path)
        for method, operation in item.items():
            out.append((method.upper(), url, bool(operation.get("security"))))
    return out


async def test_every_http_operation_by_every_stranger(harness: Harness) -> None:
    world = await build_world(harness)
    document = (await harness.http.get("/openapi.json")).json()
    base = str(harness.http.base_url)
    credentials = {
        "no key": {},
        "wrong key": {"Authorization": "Bearer not-the-key"},
        "operator key without bearer": {"Authorization": harness.endpoints.operator_key},
        **{
            f"session key of {who}": {"Authorization": f"Bearer {user['session_key']}"}
            for who, user in {"victim": world.victim, "owner": world.owner}.items()
        },
    }
    partner = (await harness.http.post("/v1/partners")).json()
    credentials["partner key"] = {"Authorization": f"Bearer {partner['key']}"}
    before = await fingerprint(harness)
    cells, unexpected = 0, []
    ops = operations(document, world)
    async with httpx.AsyncClient(base_url=base) as anon:
        for method, url, guarded in ops:
            betslips = url.endswith("/v1/betslips")
            for who, headers in credentials.items():
                if betslips and who == "partner key":
                    continue  # the one call a partner key opens
                r = await anon.request(method, url, json=plausible_body(world), headers=headers)
                cells += 1
                assert r.status_code < 500, (who, method, url, r.text)
                # seed 002 refuses a betslip without a key with 403, the operator API 401
                if guarded and r.status_code != (403 if betslips else 401):
                    unexpected.append((who, method, url, r.status_code))
    assert unexpected == []
    assert await fingerprint(harness) == before
    for method, url, _ in ops:  # the operator gets past the guard on every one
        r = await harness.http.request(method, url, json=plausible_body(world))
        assert r.status_code not in (401, 403) and r.status_code < 500, (method, url, r.text)
    print(f"http matrix: {cells} cells over {len(ops)} operations, 0 unexpected")
