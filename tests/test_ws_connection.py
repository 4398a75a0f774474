"""The websocket connection layer through a real client on loopback."""

from __future__ import annotations

import pytest
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.conftest import Harness


async def test_ping_and_request_id_echo(harness: Harness) -> None:
    user = await harness.user()
    async with harness.connect(user) as ws:
        reply = await ws.call(1)
        assert reply["res"] == 1
        assert isinstance(reply["response_header"]["t"], int)
        assert reply["response_header"]["request_id"].startswith("r")


async def test_wrong_digest_is_refused_before_upgrade(harness: Harness) -> None:
    user = await harness.user()
    url = harness.ws_url(user).replace("&h=", "&h=00")
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_url(url):
            pass
    assert caught.value.status_code == 401
