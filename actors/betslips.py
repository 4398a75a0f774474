"""The betslip desk (seed 002, decisions §6): a slip's bets over several pools and games,
placed all or none, and one final answer per idempotency key, for ever.

Not an actor: a coordinator that runs in the caller's task and keeps only the keys in
flight. It reserves the bets on each pool actor (each checks them as it checks any bet and
holds them), then has the wallet commit every stake, every bet row and the slip's answer
in one transaction of its own, guarded by checks that the pools are still open; then it
tells each pool what became of the slip. A pool settles only once it knows (it asks
storage itself when the desk is gone or too slow), and a settlement that a slip raced
reloads the pool first. See docs/architecture.md.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from actors import game as game_msgs
from actors import pool as pool_msgs
from actors import remote
from actors.betslip_protocol import Render, SlipPlaced, SlipRefused
from actors.registry import CheckSession
from actors.services import Services
from actors.wallet import PlaceSlip, Screen, StakeItem, Sync
from domain.betslip import (
    BetRefusal,
    Slip,
    SlipAnswer,
    SlipBet,
    Stage,
    fingerprint,
    read_bets,
    read_slip,
)
from domain.errors import FINAL, RETRYABLE, DomainError, ErrorCode, OutcomeUnknown
from domain.game import GameStatus
from storage import betslips as betslips_store

log = logging.getLogger(__name__)

#: The game status each stage of seed 002 means.
STAGE_STATUS = {Stage.IN_PLAY: GameStatus.IN_PROGRESS, Stage.PRE_PLAY: GameStatus.PRE_GAME}


class Refused(Exception):
    """The slip is refused for good: stored under its key and answered."""

    def __init__(self, error: DomainError, failed_bets: list[dict[str, Any]] | None = None):
        super().__init__(error.text)
        self.outcome = SlipRefused(error, failed_bets or [])


class BetslipDesk:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._running: set[str] = set()

    async def place(self, key: str, body: Any, render: Render, ip: str = "") -> SlipAnswer:
        """The slip's final answer (placed or refused), or a DomainError that is not
        final (the slip is certainly not placed: a retry with the key runs it again)."""
        if key in self._running:
            raise DomainError("REQUEST_IN_PROGRESS", "This X-Idempotency-Key is still running.")
        self._running.add(key)
        try:
            print_ = fingerprint(body)  # a body refused as unreadable has one too
            stored = await self._stored(key)
            if stored is not None:
                if stored[0] != print_:
                    raise DomainError(
                        "IDEMPOTENCY_KEY_REUSED", "This X-Idempotency-Key came with another body."
                    )
                return stored[1]
            try:
                return await self._place(key, print_, body, render, ip)
            except Refused as refused:
                return await self._keep(key, print_, render(refused.outcome))
        finally:
            self._running.discard(key)

    # -- the steps --------------------------------------------------------------------

    async def _place(self, key: str, print_: str, body: Any, render: Render, ip: str) -> SlipAnswer:
        """Read, check, reserve on every pool, commit through the wallet, and tell the
        pools what became of the slip (whatever happens in between)."""
        slip, bets, refusals = await self._read(body)
        refusals += await self._check_games(bets)
        until = trio.current_time() + self.services.settings.request_timeout
        attempt = _Attempt(key)
        try:
            by_pool = _by_pool(bets, {r.failed["betId"] for r in refusals})
            refusals += await self._reserve(key, slip, by_pool, until, attempt.reserved)
            if refusals:
                raise _refused(refusals)
            return await self._commit(attempt, print_, slip, bets, render, ip, until)
        finally:
            with trio.move_on_after(self.services.settings.request_timeout) as cleanup:
                cleanup.shield = True
                if attempt.placed is None:  # the caller left while the wallet had the slip
                    attempt.placed = await self._fate(key)
                await self._release(key, attempt.reserved, attempt.placed)

    async def _read(self, body: Any) -> tuple[Slip, list[SlipBet], list[BetRefusal]]:
        """The slip, its bets and the refusals of those unreadable; Refused when the slip
        itself is (a body that is no object, a bad user or session)."""
        try:
            if not isinstance(body, dict):
                raise DomainError("MISSING_PARAMETER", "The body must be a JSON object.")
            slip = read_slip(body)
            await self.services.ask_registry(CheckSession(slip.user_id, slip.session_token))
            bets, refusals = read_bets(slip)
        except DomainError as error:
            if error.code in RETRYABLE:
                raise
            raise Refused(error) from None
        return slip, bets, refusals

    async def _commit(
        self,
        attempt: _Attempt,
        print_: str,
        slip: Slip,
        bets: list[SlipBet],
        render: Render,
        ip: str,
        until: float,
    ) -> SlipAnswer:
        """Every stake, bet row and the answer in one transaction of the wallet's (after
        the operator's debit, in remote wallet mode)."""
        services = self.services
        answer, items, changes = self._commit_plan(
            attempt.key, print_, slip, bets, attempt.reserved, render
        )
        debit = None
        if services.operator:  # refused here, the operator is not asked to debit
            await _screen(services, items)
            debit = await self._debit(slip, bets, attempt.reserved, ip)
        attempt.placed = None
        try:
            debited = debit.changes if debit else ()
            await services.ask_wallet(PlaceSlip(slip.user_id, items, [*changes, *debited], until))
        except OutcomeUnknown:
            return await self._after_unknown(attempt, debit)
        except DomainError as error:
            attempt.placed = False
            if debit is not None:  # debited, not placed: the worker gives it back
                await remote.give_up(services, debit.key)
            if error.code in FINAL:
                raise Refused(_as_slip_refusal(error)) from None
            raise
        attempt.placed = True
        return answer

    async def _after_unknown(self, attempt: _Attempt, debit: remote.Debit | None) -> SlipAnswer:
        """The wallet's commit of unknown fate: the stored answer, or REQUEST_TIMED_OUT when
        the slip is certainly not placed (and what the operator took is given back)."""
        stored = await self._truth(attempt.key)
        attempt.placed = stored is not None
        if stored is None:
            if debit is not None:
                await remote.give_up(self.services, debit.key)
            raise DomainError(
                "REQUEST_TIMED_OUT", "The slip was not placed; send it again."
            ) from None
        return stored

    async def _debit(
        self,
        slip: Slip,
        bets: list[SlipBet],
        reserved: dict[str, pool_msgs.Reserved],
        ip: str,
    ) -> remote.Debit:
        """Remote wallet mode: the whole slip is one /bets call. A refusal is the slip's
        INSUFFICIENT_FUNDS with the operator's reason; no answer in time is a 503 (the
        slip is not placed, and money the operator took is given back)."""
        held = {
            index: (answer.pool_id, bet, item)
            for answer in reserved.values()
            for index, bet, item in answer.held
        }
        entries = []
        for slip_bet in bets:
            pool_id, bet, item = held[slip_bet.index]
            entries.append(
                {
                    "user_id": slip.user_id,
                    "pool_id": pool_id,
                    "bet_id": bet.id,
                    "currency": item.currency,
                    "amount": bet.amount,
                    "potential": slip_bet.potential_payout(),
                }
            )
        deadline = trio.current_time() + self.services.settings.request_timeout / 2
        debit = await remote.debit(self.services, entries, ip, deadline)
        if debit.answer is remote.Answer.REFUSED:
            raise Refused(DomainError("INSUFFICIENT_FUNDS", debit.reason))
        if debit.answer is remote.Answer.UNKNOWN:
            raise DomainError(
                "REQUEST_TIMED_OUT", "The operator's wallet did not answer; the slip is not placed."
            )
        return debit

    async def _check_games(self, bets: list[SlipBet]) -> list[BetRefusal]:
        """Each bet's game and pool exist, belong together, and its stage is the game's."""
        services = self.services
        statuses: dict[str, GameStatus | None] = {}
        refusals = []
        for bet in bets:
            game_id, pool_id = bet.details["eventId"], bet.details["marketId"]
            try:
                if await services.games.game_of_pool(pool_id) != game_id:
                    raise DomainError("NOT_FOUND", "marketId is not a pool of eventId.")
                if game_id not in statuses:
                    summary = await (await services.games.game(game_id)).ask(
                        game_msgs.Summary(), timeout=services.settings.request_timeout
                    )
                    statuses[game_id] = summary.status
            except DomainError as error:
                if error.code != "NOT_FOUND":
                    raise
                refusals.append(_bet_refusal(bet, f"{error.text} (betId {bet.bet_id!r})"))
                continue
            if statuses[game_id] is not STAGE_STATUS[bet.stage]:
                refusals.append(
                    _bet_refusal(
                        bet,
                        f"eventStage {bet.stage} does not match the game, which is "
                        f"{statuses[game_id]} (betId {bet.bet_id!r}).",
                    )
                )
        return refusals

    async def _reserve(
        self,
        key: str,
        slip: Slip,
        by_pool: dict[str, list[SlipBet]],
        until: float,
        reserved: dict[str, pool_msgs.Reserved],
    ) -> list[BetRefusal]:
        """Reserve on every pool at once; the refusals of the bets a pool would not take."""
        services = self.services
        bet_of = {bet.index: bet for bets in by_pool.values() for bet in bets}
        refusals: list[BetRefusal] = []

        async def reserve(pool_id: str, bets: list[SlipBet]) -> None:
            game_id, box = await services.games.pool(pool_id)
            stakes = [
                pool_msgs.SlipStake(
                    bet.index, bet.details["selectionId"], bet.stake, _columns(key, bet)
                )
                for bet in bets
            ]
            answer = await box.ask(
                pool_msgs.Reserve(
                    key, slip.user_id, game_id, bets[0].details["marketTypeId"], stakes, until
                ),
                timeout=services.settings.request_timeout,
            )
            reserved[pool_id] = answer
            for index, error in answer.refusals:
                refusals.append(_pool_refusal(bet_of[index], error))

        async with trio.open_nursery() as nursery:
            for pool_id, bets in by_pool.items():
                nursery.start_soon(reserve, pool_id, bets)
        return refusals

    def _commit_plan(
        self,
        key: str,
        print_: str,
        slip: Slip,
        bets: list[SlipBet],
        reserved: dict[str, pool_msgs.Reserved],
        render: Render,
    ) -> tuple[SlipAnswer, list[StakeItem], list[Any]]:
        """The answer, rendered now so that it commits with the bets, and what to commit."""
        held = {
            index: (answer.exponent, bet.amount, item)
            for answer in reserved.values()
            for index, bet, item in answer.held
        }
        now = self.services.clock.now_ms()
        answers = [bet.answer(held[bet.index][0], held[bet.index][1]) for bet in bets]
        answer = render(SlipPlaced(slip, answers, now))
        changes: list[Any] = [
            betslips_store.bet_ids_unused(
                slip.user_id,
                [bet.bet_id for bet in bets],
                "INVALID_BET_DETAILS",
                "A betId of this slip was already placed.",
            ),
            *(check for pool_id in reserved for check in pool_msgs.slip_checks(pool_id)),
            betslips_store.slip_answer(key, print_, slip.user_id, answer.refusal, answer.body, now),
        ]
        return answer, [held[bet.index][2] for bet in bets], changes

    async def _release(
        self, key: str, reserved: dict[str, pool_msgs.Reserved], placed: bool | None
    ) -> None:
        """Tell every pool that holds the slip what became of it (a pool that does not
        hear asks storage itself once the slip's time is up)."""
        services = self.services

        async def release(pool_id: str) -> None:
            try:
                _, box = await services.games.pool(pool_id)
                await box.ask(
                    pool_msgs.Release(key, placed), timeout=services.settings.request_timeout
                )
            except DomainError as error:
                log.warning("betslip %s: pool %s not told: %s", key, pool_id, error)

        async with trio.open_nursery() as nursery:
            for pool_id in reserved:
                nursery.start_soon(release, pool_id)

    # -- storage ----------------------------------------------------------------------

    async def _stored(self, key: str) -> tuple[str, SlipAnswer] | None:
        stored = await self.services.storage.read(lambda db: betslips_store.stored_slip(db, key))
        if stored is None:
            return None
        return stored.fingerprint, SlipAnswer(stored.refusal, stored.body)

    async def _truth(self, key: str) -> SlipAnswer | None:
        """After a commit of unknown fate: once the wallet has answered a later request,
        the slip is in storage or never will be."""
        await self.services.ask_wallet(Sync())
        stored = await self._stored(key)
        return None if stored is None else stored[1]

    async def _fate(self, key: str) -> bool | None:
        """Whether a slip whose commit nobody waited for was placed; None when that
        cannot be learned now (each pool is told so and asks storage itself; a pool that
        restarted since the reservation would not otherwise know the slip). Telling the
        pools "not placed" by default would make them forget placed bets."""
        try:
            return await self._truth(key) is not None
        except DomainError as error:
            log.warning("betslip %s: fate unknown for now: %s", key, error)
            return None

    async def _keep(self, key: str, print_: str, answer: SlipAnswer) -> SlipAnswer:
        """Store a refusal under its key, so the key is refused the same way for ever."""
        now = self.services.clock.now_ms()
        await self.services.storage.commit(
            [betslips_store.slip_answer(key, print_, None, answer.refusal, answer.body, now)]
        )
        return answer


@dataclass
class _Attempt:
    """One run of a slip: what each pool holds of it, and whether the wallet placed it
    (None while its commit may be under way or its fate is not known)."""

    key: str
    reserved: dict[str, pool_msgs.Reserved] = field(default_factory=dict)
    placed: bool | None = False


def _by_pool(bets: list[SlipBet], refused: set[str]) -> dict[str, list[SlipBet]]:
    """The bets not refused already, by the pool (``marketId``) that is to hold them."""
    by_pool: dict[str, list[SlipBet]] = defaultdict(list)
    for bet in bets:
        if bet.bet_id not in refused:
            by_pool[bet.details["marketId"]].append(bet)
    return by_pool


def _columns(key: str, bet: SlipBet) -> dict[str, Any]:
    """The slip's own columns of a bet row: the caller's id, price and labels."""
    return {
        "slip_key": key,
        "external_bet_id": bet.bet_id,
        "price": str(bet.price),
        "potential_payout": str(bet.potential_payout()),
        "labels": msgspec.json.encode(bet.details).decode(),
    }


def _bet_refusal(bet: SlipBet, text: str) -> BetRefusal:
    return BetRefusal("INVALID_BET_DETAILS", text, bet.failed())


def _pool_refusal(bet: SlipBet, error: DomainError) -> BetRefusal:
    """A pool's refusal of a bet in the seed's terms: a broken stake limit is
    INVALID_STAKE with the limit's value; anything else is the bet's details."""
    if error.code != "INVALID_STAKE":
        return _bet_refusal(bet, f"{error.text} (betId {bet.bet_id!r})")
    reason = {
        name: error.extra[field]
        for name, field in (("minStake", "min_stake"), ("maxStake", "max_stake"))
        if field in error.extra
    }
    return BetRefusal("INVALID_STAKE", f"{error.text} (betId {bet.bet_id!r})", bet.failed(reason))


def _as_slip_refusal(error: DomainError) -> DomainError:
    """Seed 002 has no code for a player's own limit: it is USER_BLOCKED with the
    reason LIMIT_REACHED (decisions §12)."""
    if error.code == ErrorCode.LIMIT_REACHED:
        return DomainError("USER_BLOCKED", error.text, reason="LIMIT_REACHED")
    return error


async def _screen(services: Services, items: list[StakeItem]) -> None:
    """Remote wallet mode: refuse (Refused) what the wallet would refuse before the
    operator takes the money for it."""
    for refusal in await services.ask_wallet(Screen(items)):
        if refusal is not None:
            raise Refused(_as_slip_refusal(refusal))


def _refused(refusals: list[BetRefusal]) -> Refused:
    """The slip's refusal: bet details come before stakes, as the seed orders them."""
    details = [r for r in refusals if r.code == "INVALID_BET_DETAILS"]
    chosen = details or refusals
    code = chosen[0].code
    text = "; ".join(r.text for r in chosen)
    return Refused(DomainError(code, text), [r.failed for r in chosen])
