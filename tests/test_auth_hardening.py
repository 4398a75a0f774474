"""The registry and the login/user routes under hostile input (issue 6).

Malformed handshakes are a 401 and never crash the registry; a handshake's cost is
bounded by the sessions a user may hold; expired sessions and nonces are pruned; queued
handshakes share one commit; passwords carry their scrypt cost and logins are throttled;
names are normalised so that look-alikes collide; a lost commit answer leaves the
registry consistent with the database.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionRejected, open_websocket_url

from actors import registry as reg
from domain.codec import decode
from domain.errors import DomainError
from domain.names import MAX_NAME_LENGTH, display_name, name_key
from domain.throttle import AttemptWindow
from kit.runtime import Mailbox
from kit.settings import Settings
from storage.changes import Change
from tests.conftest import CHEAP_SCRYPT_N, ActorHarness, Harness

# -- helpers --------------------------------------------------------------------------


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = decode(r.content)
    assert body["status"] == "FAILURE" and body["errorCode"] == code, body
    return body


async def handshake_status(harness: Harness, query: str) -> int:
    """The HTTP status of a websocket handshake with this raw query (101 if accepted)."""
    url = f"ws://127.0.0.1:{harness.endpoints.ws_port}/?{query}"
    try:
        async with open_websocket_url(url):
            return 101
    except ConnectionRejected as rejected:
        return rejected.status_code


async def rows(services: Any, table: str) -> int:
    return await services.storage.read(lambda db: db.scalar(f"SELECT COUNT(*) FROM {table}"))


@pytest.fixture
async def anon(harness: Harness) -> Any:
    """A client with no operator key."""
    async with httpx.AsyncClient(base_url=str(harness.http.base_url)) as client:
        yield client


# -- finding 2: malformed handshakes are a 401, never a registry crash ------------------


def _malformed_queries(user_id: int, good_digest: str) -> list[str]:
    """Every handshake field broken in type, length and charset."""
    return [
        f"id={user_id}&n=n1&h=%C3%A9",  # non-ASCII digest (crashed compare_digest)
        f"id={user_id}&n=n1&h=%C3%A9{good_digest[2:]}",
        f"id={user_id}&n=n1&h={good_digest}00",  # too long
        f"id={user_id}&n=n1&h={good_digest[:-1]}",  # too short
        f"id={user_id}&n=n1&h={'g' * 64}",  # not hex
        f"id={user_id}&n=n1",  # no digest
        f"id={user_id}&n=%C3%A9&h={good_digest}",  # non-ASCII nonce
        f"id={user_id}&n=a%00b&h={good_digest}",  # control character
        f"id={user_id}&n={'x' * 129}&h={good_digest}",  # nonce too long
        f"id={user_id}&h={good_digest}",  # no nonce
        f"id=%C3%A9&n=n1&h={good_digest}",
        f"id={'9' * 5000}&n=n1&h={good_digest}",
        f"id=-1&n=n1&h={good_digest}",
        "id=&n=&h=",
        "",
    ]


async def test_malformed_handshakes_are_refused_without_crashing_the_registry(
    harness: Harness,
) -> None:
    user = await harness.user()
    digest = reg.handshake_digest(user["user_id"], "n1", user["session_key"])
    for _ in range(20):  # the reported attack: many clients in a row
        assert await handshake_status(harness, f"id={user['user_id']}&n=n1&h=%C3%A9") == 401
    for query in _malformed_queries(user["user_id"], digest):
        assert await handshake_status(harness, query) == 401, query
    assert harness.services.supervisor.restarts("registry") == 0
    # A digest in upper case is still the same hexdigest; the registry still answers.
    ok = f"id={user['user_id']}&n=n1&h={digest.upper()}"
    assert await handshake_status(harness, ok) == 101


class _SetClock:
    """A wall clock that shows whatever the test sets."""

    def __init__(self, now_ms: int = 1_000) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(),
    st.lists(st.integers(), max_size=2),
)


@given(user_id=_anything, nonce=_anything, digest=_anything)
def test_any_handshake_fields_are_refused_cleanly(user_id: Any, nonce: Any, digest: Any) -> None:
    actor = reg.RegistryActor(
        None,  # type: ignore[arg-type]  # judging a handshake needs no inbox or storage
        None,  # type: ignore[arg-type]
        _SetClock(),  # type: ignore[arg-type]
        {
            "users": {1: reg.User(1, "ann", [])},
            "sessions": {1: {"key": 10_000}},
            "nonces": {},
            "sources": {},
        },
    )
    with pytest.raises(DomainError) as refused:
        actor._check_handshake(reg.Authenticate(user_id, nonce, digest), {})
    assert refused.value.code == "AUTHENTICATION_FAILED"


# -- finding 12: bounded sessions, pruning, one commit for queued handshakes ------------


async def test_a_user_holds_at_most_the_newest_sessions(harness: Harness) -> None:
    user = await harness.user()  # holds one session already
    keys = [user["session_key"]]
    for _ in range(reg.MAX_SESSIONS_PER_USER + 2):
        r = await harness.http.post(f"/v1/users/{user['user_id']}/sessions")
        keys.append(r.json()["session_key"])
    retired, kept = keys[:3], keys[3:]
    for key in retired:
        url = harness.ws_url({"user_id": user["user_id"], "session_key": key})
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(url):
                pass
    for key in (kept[0], kept[-1]):
        async with harness.connect({"user_id": user["user_id"], "session_key": key}) as ws:
            assert (await ws.call(1))["res"] == 1
    assert await rows(harness.services, "sessions") == reg.MAX_SESSIONS_PER_USER


async def _handshake(services: Any, user_id: int, key: str, nonce: str) -> Any:
    digest = reg.handshake_digest(user_id, nonce, key)
    return await services.ask_registry(reg.Authenticate(user_id, nonce, digest))


async def test_expired_sessions_and_nonces_are_pruned_on_a_timer(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services = actors.services
    user_id = await actors.user("ann")
    key = (await services.ask_registry(reg.CreateSession(user_id))).session_key
    for nonce in ("a", "b", "c", "d", "e"):
        await _handshake(services, user_id, key, nonce)
    assert await rows(services, "sessions") + await rows(services, "nonces") == 6
    await trio.sleep(reg.SESSION_TTL_MS / 1000 + 2 * reg.PRUNE_INTERVAL_SECONDS)
    assert await rows(services, "sessions") + await rows(services, "nonces") == 0


async def test_a_prune_pass_deletes_a_bounded_batch(
    actors: ActorHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reg, "PRUNE_BATCH", 3)
    clock = _SetClock()
    inbox = Mailbox("test-registry")
    actor = await reg.RegistryActor.load(inbox, actors.services.storage, clock)  # type: ignore[arg-type]
    actors.nursery.start_soon(actor.run)
    user = await inbox.ask(reg.CreateUser("ann", "", []))
    key = (await inbox.ask(reg.CreateSession(user.id))).session_key
    for nonce in ("a", "b", "c", "d", "e"):
        digest = reg.handshake_digest(user.id, nonce, key)
        await inbox.ask(reg.Authenticate(user.id, nonce, digest))
    clock.now += reg.SESSION_TTL_MS
    remaining = []
    for _ in range(3):
        await actor._prune()
        remaining.append(
            await rows(actors.services, "sessions") + await rows(actors.services, "nonces")
        )
    assert remaining == [3, 0, 0]
    assert actor.sessions == {} and actor.nonces == {}
    inbox.close()


async def test_queued_handshakes_commit_their_nonces_together(
    actors: ActorHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = actors.services
    user_id = await actors.user("ann")
    key = (await services.ask_registry(reg.CreateSession(user_id))).session_key
    commits: list[Sequence[Change]] = []
    real_commit = services.storage.commit

    async def counting_commit(changes: Sequence[Change]) -> None:
        commits.append(changes)
        await real_commit(changes)

    monkeypatch.setattr(services.storage, "commit", counting_commit)
    results: list[str] = []

    async def connect(nonce: str) -> None:
        try:
            await _handshake(services, user_id, key, nonce)
            results.append("ok")
        except DomainError as error:
            results.append(error.code)

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(connect, f"n{i}")
        nursery.start_soon(connect, "n0")  # the same nonce twice in one batch
    assert sorted(results) == ["AUTHENTICATION_FAILED"] + ["ok"] * 20
    assert len(commits) == 1 and len(commits[0]) == 20
    assert await rows(services, "nonces") == 20


# -- finding 14: passwords carry their cost; logins are throttled -----------------------


async def test_stored_password_hashes_carry_their_parameters(
    harness: Harness, anon: httpx.AsyncClient
) -> None:
    r = await harness.http.post("/v1/users", json={"name": "ann", "password": "secret"})
    stored = await harness.services.storage.read(
        lambda db: db.scalar("SELECT password FROM users WHERE id = ?", [r.json()["user_id"]])
    )
    scheme, n, r_, p, salt, digest = stored.split("$")
    assert (scheme, int(n), int(r_), int(p)) == ("scrypt", CHEAP_SCRYPT_N, 8, 1)
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 64
    assert (await anon.post("/v1/login", json={"name": "ann", "password": "secret"})).is_success


def test_the_default_cost_is_todays_recommendation_and_runs() -> None:
    assert Settings().scrypt_n == reg.SCRYPT_N == 2**17
    stored = reg.hash_password("secret")  # needs maxmem above hashlib's 32 MiB default
    assert stored.startswith(f"scrypt${2**17}$8$1$")
    assert reg.verify_password("secret", stored)


def _legacy_hash(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


async def test_legacy_hashes_still_log_in(harness: Harness, anon: httpx.AsyncClient) -> None:
    await harness.services.ask_registry(reg.CreateUser("old", _legacy_hash("secret"), []))
    r = await anon.post("/v1/login", json={"name": "old", "password": "secret"})
    assert r.status_code == 200, r.text
    error_of(
        await anon.post("/v1/login", json={"name": "old", "password": "wrong"}),
        403,
        "AUTHENTICATION_FAILED",
    )


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "scrypt",
        "scrypt$zz$00",
        "bcrypt$1024$8$1$00$00",
        "scrypt$1000$8$1$00$00",  # n not a power of two
        f"scrypt${2**30}$8$1$00$00",  # would need 128 GiB
        "scrypt$1024$0$1$00$00",
        "scrypt$1024$8$x$00$00",
        "scrypt$1024$8$1$zz$00",
    ],
)
def test_a_damaged_hash_never_verifies(stored: str) -> None:
    assert reg.verify_password("secret", stored) is False


async def test_login_is_throttled_per_name(harness: Harness, anon: httpx.AsyncClient) -> None:
    limit = harness.services.settings.login_attempts_per_name
    await harness.http.post("/v1/users", json={"name": "ann", "password": "secret"})
    for _ in range(limit):
        wrong = {"name": "ann", "password": "wrong"}
        error_of(await anon.post("/v1/login", json=wrong), 403, "AUTHENTICATION_FAILED")
    # Even the right password waits now, under any spelling of the name.
    for name in ("ann", "ANN", "\uff21\uff4e\uff4e"):
        r = await anon.post("/v1/login", json={"name": name, "password": "secret"})
        body = error_of(r, 429, "RATE_LIMITED")
        assert 0 < int(r.headers["Retry-After"]) <= 60 and body["retry_after"] > 0
    # Another name from the same address is not held back by ann's count.
    await harness.http.post("/v1/users", json={"name": "bob", "password": "secret"})
    assert (await anon.post("/v1/login", json={"name": "bob", "password": "secret"})).is_success


async def test_login_is_throttled_per_address(harness: Harness, anon: httpx.AsyncClient) -> None:
    for i in range(harness.services.settings.login_attempts_per_address):
        r = await anon.post("/v1/login", json={"name": f"nobody-{i}", "password": "x"})
        error_of(r, 403, "AUTHENTICATION_FAILED")
    r = await anon.post("/v1/login", json={"name": "someone-else", "password": "x"})
    error_of(r, 429, "RATE_LIMITED")
    assert "Retry-After" in r.headers


def test_an_attempt_window_reopens_after_its_window() -> None:
    window = AttemptWindow(2, 60.0)
    assert window.attempt("ann", 0.0) is None
    assert window.attempt("ann", 10.0) is None
    assert window.attempt("ann", 20.0) == 40.0
    assert window.attempt("bob", 20.0) is None
    assert window.attempt("ann", 60.0) is None
    window.forget("ann")
    assert window.attempt("ann", 61.0) is None


@given(st.lists(st.tuples(st.text(max_size=3), st.floats(0, 1000)), max_size=200))
def test_an_attempt_window_stays_bounded(attempts: list[tuple[str, float]]) -> None:
    window = AttemptWindow(3, 60.0, max_keys=10)
    for key, now in attempts:
        window.attempt(key, now)
        assert len(window) <= 10


# -- finding 16: names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",  # zero-width space
        "\u200b\u200c\u200d\u2060",
        "\u3164",  # Hangul filler
        "\u2800\u2800",  # blank Braille
        "\u0301",  # a lone combining accent
        "a\u202eb",  # right-to-left override
        "a\x07b",
        "a\nb",
        "x" * (MAX_NAME_LENGTH + 1),
        "v\u0456ctim",  # Cyrillic i among Latin letters
        7,
        ["ann"],
    ],
)
async def test_names_without_a_visible_character_or_with_tricks_are_refused(
    harness: Harness, name: Any
) -> None:
    body = error_of(
        await harness.http.post("/v1/users", json={"name": name}), 400, "INVALID_PARAMETER"
    )
    assert body["parameter"] == "name"


@pytest.mark.parametrize("blank", ["", "   ", "\u3000", "\u00a0"])
async def test_blank_names_are_missing(harness: Harness, blank: str) -> None:
    body = error_of(
        await harness.http.post("/v1/users", json={"name": blank}), 400, "MISSING_PARAMETER"
    )
    assert body["parameter"] == "name"


async def test_look_alike_names_collide(harness: Harness) -> None:
    r = await harness.http.post("/v1/users", json={"name": "victim"})
    assert r.status_code == 201
    for look_alike in (
        "VİCTİM",
        "Victim",
        "\uff56\uff49\uff43\uff54\uff49\uff4d",
        "víctim",
        " victim ",
    ):
        r = await harness.http.post("/v1/users", json={"name": look_alike})
        assert error_of(r, 409, "CONFLICT")["parameter"] == "name", look_alike


async def test_names_are_stored_normalised(harness: Harness) -> None:
    r = await harness.http.post(
        "/v1/users", json={"name": "  \uff2a\uff4f\u00a0  \uff2d\uff41\uff52\uff43\uff48 "}
    )
    assert r.json()["name"] == "Jo March"


async def test_source_names_follow_the_same_rule(harness: Harness) -> None:
    developer = await harness.user(roles=["developer"])
    async with harness.connect(developer) as ws:
        refused = await ws.call(365, source_name="\u200b\u200b")
        assert refused["res"] == 666 and refused["error_code"] == "INVALID_PARAMETER"
        assert refused["parameter"] == "source_name"
        assert (await ws.call(365, 335, source_name="\uff23up"))["res"] == 335


@given(st.text(max_size=80))
def test_display_names_are_visible_bounded_and_stable(raw: str) -> None:
    try:
        name = display_name(raw, "name")
    except DomainError as error:
        assert error.code in ("MISSING_PARAMETER", "INVALID_PARAMETER")
        assert error.extra["parameter"] == "name"
        return
    assert 0 < len(name) <= MAX_NAME_LENGTH and name == name.strip()
    assert display_name(name, "name") == name
    assert name_key(name) == name_key(name_key(name))
