"""The browser client in headless Chromium against a real server on port 0: log in, bet,
watch the odds move as others bet, see the pool resolve; and a screenshot of a demo match.

Every wait is a condition on the page (Playwright waits for a selector) or a reply over
the websocket, never a sleep.
"""

from __future__ import annotations

import random
import re
from typing import Any

import trio

from tests.browser import SCREENSHOT_DIR, Browser, chromium
from tests.conftest import Harness, WsClient, setup_game
from tote import demo

#: The multiplication sign the page writes before a dividend.
TIMES = "\u00d7"


def page_url(h: Harness, game_id: str) -> str:
    return f"http://127.0.0.1:{h.endpoints.http_port}/#game={game_id}"


def log_in(url: str, name: str, password: str) -> Any:
    """A step for the browser's thread: open the page and log in with the form."""

    def step(page: Any) -> None:
        page.goto(url)
        page.wait_for_selector("body[data-ready='true']")
        page.fill("#login-name", name)
        page.fill("#login-password", password)
        page.click("#login-button")
        page.wait_for_selector("#status[data-state='online']")

    return step


def wait_for(selector: str) -> Any:
    return lambda page: page.wait_for_selector(selector, state="attached")


def text_of(selector: str) -> Any:
    return lambda page: page.text_content(selector)


def bet_on(pool: str, target: str, amount: str) -> Any:
    """A step: bet with the pool's form."""

    def step(page: Any) -> None:
        page.select_option(f"{pool} .bet-target", target)
        page.fill(f"{pool} .bet-amount", amount)
        page.click(f"{pool} .bet-button")

    return step


async def argentina_brazil(admin_ws: WsClient) -> tuple[str, str]:
    """(game id, pool id): a game and a pool on its next goal, Argentina or Brazil."""
    game_id = await setup_game(admin_ws)
    created = await admin_ws.call(
        385, 350, game_id=game_id, action="goal", targets="Argentina,Brazil"
    )
    return game_id, created["pool_id"]


async def test_browser_logs_in_bets_sees_odds_move_and_pool_resolve(harness: Harness) -> None:
    admin = await harness.user(roles=["developer"])
    await harness.user("alice", deposit="50")
    bob = await harness.user("bob", deposit="50")
    async with harness.connect(admin) as admin_ws, harness.connect(bob) as bob_ws:
        game_id, pool_id = await argentina_brazil(admin_ws)
        pool = f".pool[data-pool-id='{pool_id}']"
        async with chromium() as browser:
            await browser.run(log_in(page_url(harness, game_id), "alice", "pw-alice"))
            await browser.run(wait_for(f"{pool}[data-state='open']"))

            await browser.run(bet_on(pool, "argentina", "5"))
            await browser.run(wait_for(f"{pool}[data-total='5'] .my-bets li"))
            await browser.run(wait_for("#balance[data-available='45']"))
            odds_alone = await browser.run(text_of(f"{pool} [data-target='brazil'] .target-odds"))

            await bob_ws.call(392, 356, pool_id=pool_id, target="Brazil", amount="15")
            await browser.run(wait_for(f"{pool}[data-total='20']"))
            await browser.run(wait_for(f"{pool} [data-target='brazil'][data-amount='15']"))
            odds_after = await browser.run(text_of(f"{pool} [data-target='brazil'] .target-odds"))
            assert odds_after != odds_alone  # the bar and the odds moved with bob's bet
            await check_labels_before_resolution(browser, pool)

            await admin_ws.call(
                395, 366, game_id=game_id, action_id="goal", target_id="argentina:1"
            )
            await browser.run(wait_for(f"{pool}[data-state='resolved']"))
            await browser.run(wait_for(f"{pool} [data-target='argentina'][data-winner='true']"))
            result = await browser.run(text_of(f"{pool} .pool-result"))
            assert "Argentina won" in result and "you won 20.00 EUR" in result
            await browser.run(wait_for("#balance[data-available='65']"))
            await check_dividend_paid(browser, pool)


async def check_labels_before_resolution(browser: Browser, pool: str) -> None:
    """The game's status in words, and each target's figure labelled as what one more
    unit on it would return: with 5 on Argentina and 15 on Brazil, (20 + 1) / (5 + 1)."""
    status = await browser.run(text_of("#game-status"))
    assert status == "In play, betting open"
    argentina = await browser.run(text_of(f"{pool} [data-target='argentina'] .target-odds"))
    assert argentina == f"pays {TIMES}3.50"
    title = await browser.run(
        lambda page: page.get_attribute(f"{pool} [data-target='argentina'] .target-odds", "title")
    )
    assert (
        title
        == "1.00 EUR more on Argentina would return 3.50 EUR if it wins (it moves as others bet)"
    )
    legend = await browser.run(text_of(f"{pool} .pool-legend"))
    assert legend.startswith(f"pays {TIMES}: what 1.00 EUR more on a target returns if it wins")


async def check_dividend_paid(browser: Browser, pool: str) -> None:
    """Once resolved, the winner shows the dividend the 362 paid (20 paid for 5 staked:
    4.00 a unit), not the one-more-unit figure it showed before (3.50); the loser says
    lost."""
    await browser.run(wait_for(f"{pool}[data-dividend='4.00']"))
    winner = await browser.run(text_of(f"{pool} [data-target='argentina'] .target-odds"))
    assert winner == f"paid {TIMES}4.00"
    assert await browser.run(text_of(f"{pool} [data-target='brazil'] .target-odds")) == "lost"
    legend = await browser.run(text_of(f"{pool} .pool-legend"))
    assert legend == f"paid {TIMES}4.00: what each 1.00 EUR staked on Argentina returned"


async def test_screenshot_of_a_demo_match(harness: Harness) -> None:
    """The page as a guest sees a demo match: bots bet, an event resolves a pool and the
    admin bot opens it anew; saved to build/demo-match.png."""
    services = harness.services
    await demo.provision_humans(services)
    watching = trio.Event()
    finished = trio.Event()
    first_round = True

    async def pace() -> None:
        nonlocal first_round
        if first_round:  # the first round has bets; then wait for the page to watch
            first_round = False
            await watching.wait()
        await trio.lowlevel.checkpoint()

    async def run_match(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await demo.run_match(
            services,
            harness.endpoints.ws_port,
            steps=2 * demo.EVENT_EVERY,
            pace=pace,
            rng=random.Random(12),
            task_status=task_status,
        )
        finished.set()

    report = await harness.nursery.start(run_match)
    guest, password = "demo-guest", demo.human_logins()["demo-guest"]
    async with chromium() as browser:
        await browser.run(log_in(page_url(harness, report.game_id), guest, password))
        await browser.run(wait_for(".pool[data-state='open']"))

        def bet_on_the_first_open_pool(page: Any) -> None:
            pool = page.locator(".pool[data-state='open']").first
            pool.locator(".bet-amount").fill("5")
            pool.locator(".bet-button").click()
            pool.locator(".my-bets li").wait_for()

        await browser.run(bet_on_the_first_open_pool)
        watching.set()
        await finished.wait()
        assert report.events == 2 and report.bets > 0  # the report the match filled in
        await browser.run(wait_for(".pool[data-state='resolved'] [data-winner='true']"))
        await browser.run(wait_for("#events li"))
        async with harness.connect(await harness.user()) as watcher:
            listing = await watcher.call(387, 3535, game_id=report.game_id)
        for pool_id, pool in listing["pools_list"].items():
            total = sum(target["amount_total"] for target in pool["distributions"].values())
            assert total == int(total)  # the bots stake whole units
            # the bars end where the server's books are, once the last 360 has arrived
            await browser.run(
                wait_for(f".pool[data-pool-id='{pool_id}'][data-total='{int(total)}']")
            )
        await check_demo_labels(browser)
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / "demo-match.png"
        await browser.run(lambda page: page.screenshot(path=str(path), full_page=True))
        assert path.stat().st_size > 0


async def check_demo_labels(browser: Browser) -> None:
    """Open pools label their figures as what one more unit would return; a resolved
    pool's winner shows the dividend it was paid, its other targets that they lost."""

    def labels(page: Any) -> dict[str, list[str]]:
        return {
            kind: page.locator(f".pool[data-state='{kind}'] .target-odds").all_text_contents()
            for kind in ("open", "resolved")
        }

    shown = await browser.run(labels)
    assert shown["open"] and all(re.fullmatch(rf"pays {TIMES}\d+\.\d\d", t) for t in shown["open"])
    dividend = await browser.run(
        lambda page: page.get_attribute(".pool[data-dividend]", "data-dividend")
    )
    assert f"paid {TIMES}{dividend}" in shown["resolved"] and "lost" in shown["resolved"]
    status = await browser.run(text_of("#game-status"))
    assert status == "In play, betting open"


async def test_admin_view_opens_a_pool_and_registers_an_event(harness: Harness) -> None:
    """A source admin sees the admin view; its forms open a pool on the teams and
    register an event that resolves it."""
    admin = await harness.user("boss", roles=["developer"])
    async with harness.connect(admin) as admin_ws:
        game_id = await setup_game(admin_ws)
    async with chromium() as browser:
        await browser.run(log_in(page_url(harness, game_id), "boss", "pw-boss"))
        await browser.run(wait_for("#admin-view:not([hidden])"))

        def open_pool(page: Any) -> None:
            page.select_option("#pool-action", "goal")
            page.select_option("#pool-level", "1")
            page.click("#open-pool-button")
            page.wait_for_selector(".pool[data-state='open'] [data-target='argentina']")

        await browser.run(open_pool)

        def register_event(page: Any) -> None:
            page.select_option("#event-action", "goal")
            page.select_option("#event-target", "brazil:7")
            page.click("#event-button")

        await browser.run(register_event)
        # nobody had bet: the pool resolves with every (no) stake returned
        await browser.run(wait_for(".pool[data-state='resolved']"))
        assert "void" in await browser.run(text_of(".pool .pool-result"))
        assert await browser.run(text_of(".pool .target-odds")) == "refunded"
        assert "Goal: brazil:7" in await browser.run(text_of("#events li"))
        games = await browser.run(text_of("#my-games"))
        assert "Argentina - Brazil (example.com, In play, betting open)" in games


async def test_the_page_shows_a_pools_rules_and_its_carried_in_pot(harness: Harness) -> None:
    """A pool with a minimum dividend, a guarantee, a carry-over and a bet delay: the page
    shows each, and the pool recreated after nobody won shows the pot carried in; saved to
    build/pool-rules.png."""
    admin = await harness.user(roles=["developer", "house"])
    await harness.user("alice", deposit="50")
    bob = await harness.user("bob", deposit="50")
    rules = {"min_dividend": "1.10", "guarantee": "500", "bet_delay_ms": "1000"}
    async with harness.connect(admin) as admin_ws, harness.connect(bob) as bob_ws:
        game_id = await setup_game(admin_ws)
        first = await admin_ws.call(
            385,
            350,
            game_id=game_id,
            action="goal",
            targets="Argentina,Brazil",
            recreate_on_end="true",
            carry_over="true",
            **rules,
        )
        placed = await bob_ws.call(392, 356, pool_id=first["pool_id"], target="brazil", amount="10")
        assert placed["res"] == 356  # after its second of delay
        async with chromium() as browser:
            await browser.run(log_in(page_url(harness, game_id), "alice", "pw-alice"))
            pool = f".pool[data-pool-id='{first['pool_id']}']"
            await browser.run(wait_for(f"{pool} .rule-bet-delay"))
            assert await browser.run(text_of(f"{pool} .rule-bet-delay")) == (
                "your bet is placed in 1 s"
            )
            assert "1.1" in await browser.run(text_of(f"{pool} .rule-min-dividend"))
            assert "500.00 EUR" in await browser.run(text_of(f"{pool} .rule-guarantee"))
            # nobody backed argentina: the 10.00 moves to the recreated pool
            await admin_ws.call(
                395, 366, game_id=game_id, action_id="goal", target_id="argentina:1"
            )
            await browser.run(wait_for(".pool .rule-carried-in"))
            assert await browser.run(text_of(".pool .rule-carried-in")) == "carried in 10.00 EUR"
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            path = SCREENSHOT_DIR / "pool-rules.png"
            await browser.run(lambda page: page.screenshot(path=str(path), full_page=True))
            assert path.stat().st_size > 0
    assert await harness.audit() == []


async def test_the_page_shows_the_players_limits_and_what_is_left(harness: Harness) -> None:
    """Alice has a loss limit of 20 a day and a deposit limit of 100 a week; she bets 5 on
    the page and sees 15.00 left of the loss limit (saved to build/limits.png)."""
    admin = await harness.user(roles=["developer"])
    alice = await harness.user("alice", deposit="50")
    r = await harness.http.put(
        f"/v1/users/{alice['user_id']}/limits",
        json={"loss": {"day": "20"}, "deposit": {"week": "100"}},
    )
    assert r.status_code == 200
    async with harness.connect(admin) as admin_ws:
        game_id, pool_id = await argentina_brazil(admin_ws)
        pool = f".pool[data-pool-id='{pool_id}']"
        async with chromium() as browser:
            await browser.run(log_in(page_url(harness, game_id), "alice", "pw-alice"))
            await browser.run(wait_for(f"{pool}[data-state='open']"))
            shown = await browser.run(text_of("#limits"))
            assert "loss 20.00 EUR a day: 20.00 EUR left" in shown
            assert "deposit 100.00 EUR a week: 50.00 EUR left" in shown

            await browser.run(bet_on(pool, "argentina", "5"))
            await browser.run(wait_for("#balance[data-available='45']"))
            await browser.run(wait_for('#limits[data-left*=\'"day":"15.0"\']'))
            shown = await browser.run(text_of("#limits"))
            assert "loss 20.00 EUR a day: 15.00 EUR left" in shown
            path = SCREENSHOT_DIR / "limits.png"
            await browser.run(lambda page: page.screenshot(path=str(path), full_page=True))


async def test_the_page_without_a_game_lists_the_games_and_a_click_opens_one(
    harness: Harness,
) -> None:
    """Opened with no game id, the page lists every source's games (op 3801) newest
    first with their status in words, the closed one left out; a click opens a game and
    shows its pools, and "All games" brings the list back. Saved to build/game-list.png."""
    admin = await harness.user(roles=["developer"])
    await harness.user("alice", deposit="50")
    async with harness.connect(admin) as admin_ws:
        game_id = await setup_game(admin_ws)
        source_id = (await admin_ws.call(611, 621))["sources"][0]["id"]
        pool_id = (
            await admin_ws.call(
                385, 350, game_id=game_id, action="goal", targets="Argentina,Brazil"
            )
        )["pool_id"]
        closed = await admin_ws.call(370, 340, source_id=source_id, game_name="Old - Gone")
        await admin_ws.call(375, 341, game_id=closed["game_id"])
        upcoming = await admin_ws.call(3701, 3401, source_id=source_id, game_name="Chile - Peru")
    listed = f"#game-list .listed-game[data-game-id='{game_id}']"
    async with chromium() as browser:
        url = f"http://127.0.0.1:{harness.endpoints.http_port}/"
        await browser.run(log_in(url, "alice", "pw-alice"))
        await browser.run(wait_for(f"{listed} .listed-game-status"))
        rows = await browser.run(lambda page: page.locator("#games .listed-game").all_inner_texts())
        assert [re.sub(r"\s+", " ", row).strip() for row in rows] == [
            "Chile - Peru Not started, betting not open yet example.com",
            "Argentina - Brazil In play, betting open example.com",
        ]
        first = await browser.run(
            lambda page: page.get_attribute("#games .listed-game", "data-game-id")
        )
        assert first == upcoming["game_id"]
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / "game-list.png"
        await browser.run(lambda page: page.screenshot(path=str(path), full_page=True))
        assert path.stat().st_size > 0

        await browser.run(lambda page: page.click(f"{listed} .listed-game-name"))
        await browser.run(wait_for(f".pool[data-pool-id='{pool_id}'][data-state='open']"))
        await browser.run(lambda page: page.wait_for_selector("#game-list", state="hidden"))
        assert await browser.run(lambda page: page.url) == f"{url}#game={game_id}"
        assert await browser.run(text_of("#game-name")) == "Argentina - Brazil"

        await browser.run(lambda page: page.click("#all-games"))
        await browser.run(lambda page: page.wait_for_selector(listed, state="visible"))
        await browser.run(lambda page: page.wait_for_selector("#game-view", state="hidden"))


async def test_the_game_list_pages_on_with_more_games(harness: Harness) -> None:
    """21 games: the list shows the page's 20 newest and "More games", which adds the
    oldest and goes once there is no more."""
    admin = await harness.user(roles=["developer"])
    await harness.user("alice")
    async with harness.connect(admin) as admin_ws:
        source_id = (await admin_ws.call(365, 335, source_name="example.com"))["source_id"]
        made = [
            (await admin_ws.call(3701, 3401, source_id=source_id, game_name=f"Game {i}"))["game_id"]
            for i in range(21)
        ]
    async with chromium() as browser:
        url = f"http://127.0.0.1:{harness.endpoints.http_port}/"
        await browser.run(log_in(url, "alice", "pw-alice"))
        await browser.run(wait_for(f".listed-game[data-game-id='{made[1]}']"))
        assert await browser.run(lambda page: page.locator(".listed-game").count()) == 20
        await browser.run(lambda page: page.click("#more-games"))
        await browser.run(wait_for(f".listed-game[data-game-id='{made[0]}']"))
        await browser.run(lambda page: page.wait_for_selector("#more-games", state="hidden"))
        shown = await browser.run(
            lambda page: page.eval_on_selector_all(
                ".listed-game", "items => items.map((item) => item.dataset.gameId)"
            )
        )
        assert shown == made[::-1]
