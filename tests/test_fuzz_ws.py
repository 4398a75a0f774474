"""Bad input, generated: a player with no money and no roles sends any op with any
fields. Every message gets exactly one direct answer, the connection stays open, and
nothing durable changes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.codec import decode, encode
from tests.conftest import Harness, running_harness, setup_game
from transport.ops import OPS

FIELDS = [
    "game_id",
    "pool_id",
    "source_id",
    "target",
    "target_id",
    "action",
    "action_id",
    "amount",
    "targets",
    "actions",
    "pool_type",
    "currency",
    "happened_at",
    "block_at",
    "allow_at",
    "finish_at",
    "game_name",
    "source_name",
    "description",
    "takeout",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "None",
            "True",
            "1",
            "-1",
            "0.001",
            "1e9",
            "brazil",
            "none",
            "argentina:1",
            "goal",
            "EUR",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
MESSAGES = st.fixed_dictionaries(
    {"op": st.sampled_from(sorted(OPS)), "aim": st.booleans()},
    optional={name: VALUES for name in FIELDS},
)
TABLES = [
    "users",
    "sessions",
    "sources",
    "games",
    "pools",
    "bets",
    "events",
    "transactions",
    "ledger",
    "balances",
    "idempotency",
    "pending_resolutions",
]


async def counts(harness: Harness) -> dict[str, int]:
    return await harness.services.storage.read(
        lambda db: {t: db.scalar(f'SELECT COUNT(*) FROM "{t}"') for t in TABLES}
    )


async def scenario(messages: list[dict[str, Any]]) -> None:
    async with running_harness() as harness:
        admin = await harness.user(roles=["developer"])
        async with harness.connect(admin) as aws:
            game_id = await setup_game(aws)
            pool_id = (
                await aws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
            )["pool_id"]
        player = await harness.user()
        before = await counts(harness)
        async with harness.connect(player) as ws:
            for n, message in enumerate(messages):
                if message.pop("aim"):  # point at things that exist: the checks go deeper
                    message.update(
                        {
                            k: v
                            for k, v in (("game_id", game_id), ("pool_id", pool_id))
                            if k in message
                        }
                    )
                await ws.send_raw(encode({"header": {"request_id": n}, **message}))
                while True:  # broadcasts may come first; the direct answer must come
                    reply = decode(await ws.ws.get_message())
                    if reply["response_header"].get("request_id") == n:
                        break
                if reply["res"] == 666:
                    assert reply["error_code"] and reply["text"], reply
                    assert reply["op"] == message["op"]
            assert (await ws.call(1))["res"] == 1
        assert await counts(harness) == before


@settings(max_examples=40, deadline=None)
@given(messages=st.lists(MESSAGES, min_size=1, max_size=6))
def test_any_message_from_a_player_gets_one_answer_and_changes_nothing(
    messages: list[dict[str, Any]],
) -> None:
    trio.run(scenario, messages)


# -- a game admin, on the ops that take request fields ---------------------------------

ADMIN_OPS = [370, 3701, 373, 385, 392, 395, 396, 397, 398, 399]
ADMIN_FIELDS = [
    *FIELDS,
    "open_at",
    "close_at",
    "live_start_at",
    "live_finish_at",
    "stop_accepting_bets_at",
    "min_stake",
    "max_stake",
    "recreate_on_end",
    "hashtag",
    "type",
]
#: What each field class is hardest on: huge and tiny exponents, Unicode digits, long
#: digit strings, non-numbers spelled as numbers, and plausible good values.
HOSTILE = st.one_of(
    st.sampled_from(
        [
            Decimal("1E+400"),
            Decimal("1E+400000"),
            Decimal("1E-999999"),
            Decimal("1E+30"),
            "1E+999999",
            "1e400",
            "NaN",
            "Infinity",
            "²",
            "٣٣٣",
            "9" * 5000,
            "ZZZ",
            "jpy",
            "0.05",
            "1/20",
            "10",
            "argentina,brazil",
            "brazil:7",
            2,
            4,
            -1,
            2**63,
            1_900_000_000,
            4_102_444_800_000,
        ]
    ),
    st.decimals(allow_nan=False, allow_infinity=False),
)
ADMIN_MESSAGES = st.fixed_dictionaries(
    {"op": st.sampled_from(ADMIN_OPS), "aim": st.booleans()},
    optional={name: VALUES | HOSTILE for name in ADMIN_FIELDS},
)


async def admin_scenario(messages: list[dict[str, Any]]) -> None:
    async with running_harness() as harness:
        admin = await harness.user(roles=["developer"], deposit="1000")
        async with harness.connect(admin) as ws:
            game_id = await setup_game(ws)
            pool_id = (
                await ws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
            )["pool_id"]
            source_id = (await ws.call(372, 342, game_id=game_id))["source_id"]
            aimed = {"game_id": game_id, "pool_id": pool_id, "source_id": source_id}
            for n, message in enumerate(messages):
                if message.pop("aim"):
                    message.update({k: v for k, v in aimed.items() if k in message})
                await ws.send_raw(encode({"header": {"request_id": n}, **message}))
                while True:
                    reply = decode(await ws.ws.get_message())
                    if reply["response_header"].get("request_id") == n:
                        break
                if reply["res"] == 666:
                    assert reply["error_code"] not in ("INTERNAL_ERROR", "ACTOR_RESTARTED"), reply
                    assert reply["text"] and reply["op"] == message["op"], reply
            assert (await ws.call(372, 342, game_id=game_id))["res"] == 342  # the game lives
            assert (await ws.call(393, 360, pool_id=pool_id))["res"] == 360  # so does the pool


@settings(max_examples=30, deadline=None)
@given(messages=st.lists(ADMIN_MESSAGES, min_size=1, max_size=6))
def test_any_field_from_a_game_admin_gets_a_clean_answer(messages: list[dict[str, Any]]) -> None:
    trio.run(admin_scenario, messages)
