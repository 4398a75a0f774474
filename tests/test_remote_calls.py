"""Remote wallet mode against an operator that answers slowly, hugely, or at all: every
operator call has one total deadline and reads a bounded answer, and no /winners holds up
another's. And what tote sends: the bettor's address, money in the currency's decimals,
a betslip bet's own betId. Each ends with the money check and the audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import trio

from actors import remote
from domain.money import decimal_text
from domain.remote import number_id
from tests.fake_operator import HUGE_BYTES, Mode
from tests.test_betslip_crash import slip_bet
from tests.test_remote_wallet import Shop, bet, post_slip, shop

#: Guards for waits that end by themselves unless the fix is missing (then they hang).
GUARD = 60


async def second_pool(s: Shop) -> str:
    created = await s.admin.call(
        385, 350, game_id=s.game_id, pool_type="1", action="goal", targets="argentina,brazil"
    )
    return created["pool_id"]


async def bet_in(s: Shop, name: str, pool_id: str, target: str, amount: str) -> dict:
    async with s.h.connect(s.players[name]) as ws:
        return await ws.call(392, 356, pool_id=pool_id, target=target, amount=amount)


async def bet_uids(s: Shop, pool_id: str) -> set[int]:
    rows = await s.h.services.storage.read(
        lambda db: db.rows("SELECT id FROM bets WHERE pool_id = ?", (pool_id,))
    )
    return {number_id(row["id"]) for row in rows}


async def pending(s: Shop) -> int:
    return (await s.h.http.get("/v1/audit")).json()["callbacks"]["pending"]


async def until_outbox_empty(s: Shop) -> None:
    """The worker records an answer (a commit) just after it ends; nothing outside tote
    can wait on that commit, so look again until it is there (the guard bounds it)."""
    with trio.fail_after(GUARD):
        while await pending(s):  # noqa: ASYNC110 (no event to wait on, see above)
            await trio.sleep(0.02)


# -- 5: one slow answer holds up nothing else, and ends at the deadline -------------------


async def test_a_trickling_winners_holds_up_no_other_pools_payout() -> None:
    # the deadline is far: only the release ends the slow answer
    async with shop(wallet_timeout=GUARD * 2) as s:
        slow, fast = s.pool_id, await second_pool(s)
        assert (await bet_in(s, "alice", slow, "brazil", "10"))["res"] == 356
        assert (await bet_in(s, "bob", fast, "brazil", "5"))["res"] == 356
        s.operator.modes["/winners"].append(Mode.TRICKLE)
        await s.admin.call(396, 362, pool_id=slow, target="brazil")
        with trio.fail_after(GUARD):
            await s.operator.wait_until(lambda: s.operator.trickling == 1)
        await s.admin.call(396, 362, pool_id=fast, target="brazil")
        fast_bets = await bet_uids(s, fast)
        with trio.fail_after(GUARD):
            await s.operator.wait_until(lambda: all(s.operator.credited[u] for u in fast_bets))
        assert s.operator.trickling == 1  # the slow one is still being answered
        assert await pending(s) == 1
        s.operator.release.set()
        await s.settled_once()
        await until_outbox_empty(s)
        await s.check_money()


async def test_a_winners_answer_that_never_ends_is_cut_at_the_deadline_and_settled() -> None:
    # each byte comes well within a read timeout; only a deadline on the whole call ends it
    async with shop(wallet_timeout=1.0) as s:
        assert (await bet(s, "alice", "brazil", "10"))["res"] == 356
        s.operator.modes["/winners"].append(Mode.TRICKLE)
        await s.admin.call(396, 362, pool_id=s.pool_id, target="brazil")
        with trio.fail_after(GUARD):
            await s.operator.wait_until(lambda: s.operator.cut[Mode.TRICKLE] == 1)
        # its status was a 200: the operator applied it, so it is settled, not resent
        await s.settled_once()
        await until_outbox_empty(s)
        assert s.operator.calls["/winners"] == 1
        await s.check_money()


# -- 6: an answer is read to a bound, the rest dropped ----------------------------------


async def test_a_huge_bets_answer_is_cut_at_the_bound() -> None:
    async with shop() as s:
        s.operator.modes["/bets"].append(Mode.HUGE)
        assert (await bet(s, "alice", "brazil", "10"))["res"] == 356  # its status said 200
        with trio.fail_after(GUARD):
            await s.operator.wait_until(lambda: s.operator.cut[Mode.HUGE] == 1)
        # what left the operator before tote closed: its bound, and the sockets' buffers
        assert s.operator.huge_sent < 32 * 2**20 < HUGE_BYTES
        assert sorted(s.operator.debited.values()) == [1]
        await s.check_money()


class Endless(httpx.AsyncByteStream):
    """A body that never ends, counting the bytes the reader took."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = self.first
        while True:
            self.taken += len(chunk)
            yield chunk
            chunk = b" " * 4096


async def operator_answering(status: int, body: Endless) -> tuple[remote.Answer, str]:
    """One /bets call of an OperatorClient whose operator answers ``status`` and ``body``."""

    class Settings:
        wallet_url, wallet_secret, wallet_timeout = "http://operator.test", "s", 5.0

    class Services:
        settings, clock = Settings, type("Clock", (), {"now_ms": staticmethod(lambda: 0)})

    client = remote.OperatorClient(Services)  # type: ignore[arg-type]
    client.http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(status, stream=body))
    )
    try:
        return await client.post("/bets", {"bets": []}, "key")
    finally:
        await client.aclose()


async def test_the_bytes_read_of_an_answer_stop_at_the_bound() -> None:
    body = Endless(b'{"ok": true}')
    assert (await operator_answering(200, body))[0] is remote.Answer.DONE
    assert remote.MAX_ANSWER_BYTES < body.taken <= remote.MAX_ANSWER_BYTES + 4096
    refusal = Endless(b'{"error": "Not enough money"}')
    answer, reason = await operator_answering(402, refusal)
    # still the operator's refusal; its text, cut short, is not shown
    assert (answer, reason) == (remote.Answer.REFUSED, "The operator refused the bet.")
    assert refusal.taken <= remote.MAX_ANSWER_BYTES + 4096


# -- 8 and 9: what the operator is sent -------------------------------------------------


async def test_the_operator_gets_the_bettors_ip_money_in_decimals_and_bet_ids() -> None:
    async with shop() as s:
        assert (await bet(s, "alice", "brazil", "3"))["res"] == 356
        slip = slip_bet(s.game_id, s.pool_id, "argentina", "1.5")
        assert (await post_slip(s.h.http, s.players["bob"], [slip])).status_code == 200
        by_ws, by_slip = (call["bets"][0] for call in s.operator.received["/bets"])
        assert by_ws["user"]["ip"] == by_slip["user"]["ip"] == "127.0.0.1"
        assert (by_ws["bet"]["amount"], by_ws["pool"]["overdraw"]) == ("3.00", "")
        assert by_slip["bet"]["amount"] == "1.50"
        assert by_slip["pool"]["overdraw"] == decimal_text(Decimal("1.5") * Decimal("1.9"), 2)
        assert by_slip["pool"]["overdraw"] == "2.85"

        await s.admin.call(396, 362, pool_id=s.pool_id, target="brazil")
        await s.settled_once()
        [winners] = s.operator.received["/winners"]
        [pool] = winners["pools"]
        assert (pool["pool"]["overdraw"], pool["pool"]["cost"]) == ("4.50", "4.50")
        won, lost = (entry["bet"] for entry in pool["bets"])
        assert (won["amount"], won["payout"], won["result"]) == ("3.00", "4.50", "won")
        assert (lost["amount"], lost["payout"], lost["result"]) == ("1.50", "0.00", "lost")
        assert "betId" not in won["extra"]
        assert lost["extra"]["betId"] == slip["betId"]
        await s.check_money()
