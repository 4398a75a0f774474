"""The page in headless Chromium keeps a game through a dropped connection: it connects
again, rejoins with since_seq (decisions §9), applies what it missed and keeps what it
had; and it shows how many watch the game. Every wait is a condition on the page."""

from __future__ import annotations

from typing import Any

from tests.browser import chromium
from tests.conftest import Harness, setup_game
from tests.test_browser import log_in, page_url, wait_for


def drop_connections(harness: Harness, user_id: int) -> None:
    """Close the user's websocket connections from the server's side, as a server does
    to a client it must let go (the page is not told why)."""
    for client in list(harness.services.metrics._clients):
        if client.user_id == user_id:
            client.drop(1012, "dropped by the test")


async def test_the_page_resumes_after_its_connection_drops_and_shows_the_viewers(
    harness: Harness,
) -> None:
    admin = await harness.user(roles=["developer"])
    alice = await harness.user("alice", deposit="50")
    bob = await harness.user("bob", deposit="50")
    async with harness.connect(admin) as admin_ws, harness.connect(bob) as bob_ws:
        game_id = await setup_game(admin_ws)
        first = (
            await admin_ws.call(
                385, 350, game_id=game_id, action="goal", targets="Argentina,Brazil"
            )
        )["pool_id"]
        async with chromium() as browser:
            await browser.run(log_in(page_url(harness, game_id), "alice", "pw-alice"))
            await browser.run(wait_for(f".pool[data-pool-id='{first}'][data-state='open']"))
            await browser.run(wait_for("#viewers[data-viewers='2']"))  # the admin and alice
            await bob_ws.call(363, 333, game_id=game_id)
            await browser.run(wait_for("#viewers[data-viewers='3']"))  # bob's 470

            drop_connections(harness, alice["user_id"])
            await browser.run(wait_for("#status[data-state='offline']"))
            # while the page is away: a bet (360) and a new pool (352)
            await bob_ws.call(392, 356, pool_id=first, target="Brazil", amount="15")
            second = (
                await admin_ws.call(
                    385, 350, game_id=game_id, action="goal", targets="Argentina,Brazil"
                )
            )["pool_id"]

            await browser.run(wait_for("#status[data-state='online']"))
            await browser.run(wait_for("#game-view[data-resumed='true']"))
            await browser.run(wait_for(f".pool[data-pool-id='{first}'][data-total='15']"))
            await browser.run(wait_for(f".pool[data-pool-id='{second}'][data-state='open']"))
            await browser.run(wait_for("#viewers[data-viewers='3']"))

            def pools_shown(page: Any) -> int:
                return page.locator(".pool").count()

            assert await browser.run(pools_shown) == 2  # kept, and nothing shown twice
