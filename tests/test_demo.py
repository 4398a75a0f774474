"""``tote demo``: the simulated match runs for a bounded number of rounds against a real
server, every bot a websocket client; each round waits on replies, never on the clock."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest
import trio

from actors.registry import FindUser
from tests.conftest import Harness
from tote import demo
from tote.cli import build_parser, main
from tote.server import EXIT_CANNOT_START, EXIT_USAGE, Endpoints, ServerConfig


async def play(harness: Harness, rounds: int, seed: int) -> demo.MatchReport:
    """A demo match of ``rounds`` rounds with no pause between them."""
    return await demo.run_match(
        harness.services,
        harness.endpoints.ws_port,
        steps=rounds,
        pace=trio.lowlevel.checkpoint,
        rng=random.Random(seed),
    )


async def test_demo_match_bets_fires_events_and_reopens_pools(harness: Harness) -> None:
    rounds = 3 * demo.EVENT_EVERY
    report = await play(harness, rounds, seed=7)
    assert report.steps == rounds
    assert report.events == 3
    # one pool per action at the start, and one anew after each event
    assert report.pools_opened == len(demo.ACTIONS) + 3
    assert report.bets + report.refusals == rounds * len(demo.BOT_NAMES)
    assert report.bets > 0
    async with harness.connect(await harness.user()) as watcher:
        listing = await watcher.call(387, 3535, game_id=report.game_id)
    assert len(listing["pools_list"]) == len(demo.ACTIONS)  # resolved ones left the list
    # the books balance: the harness audits the ledger when the test ends


async def test_demo_twice_on_the_same_data_reuses_users_and_source(harness: Harness) -> None:
    """A second demo on kept data finds its users, pays no second seed deposit and
    starts a new game on the same source."""
    first = await play(harness, 1, seed=1)
    second = await play(harness, 1, seed=2)
    assert first.game_id != second.game_id
    guest = await harness.services.ask_registry(FindUser("demo-guest"))
    balances = (await harness.http.get(f"/v1/users/{guest.id}/balances")).json()
    assert balances["EUR"]["current"] == 100  # seeded once
    admin = await harness.services.ask_registry(FindUser(demo.ADMIN))
    async with harness.connect({"user_id": admin.id, **await session(harness, admin.id)}) as ws:
        sources = (await ws.call(611, 621))["sources"]
    assert [source["name"] for source in sources] == [demo.SOURCE_NAME]


async def session(harness: Harness, user_id: int) -> dict[str, str]:
    response = await harness.http.post(f"/v1/users/{user_id}/sessions")
    return {"session_key": response.json()["session_key"]}


async def test_demo_reopens_a_pool_someone_else_resolved(harness: Harness) -> None:
    """A person in the admin view resolves the demo's goal pool after the first round: a
    bot finds it closed and the match opens a new one."""
    admin_id = (await demo.provision_humans(harness.services))[demo.ADMIN]
    person = {"user_id": admin_id, **await session(harness, admin_id)}
    first_round = True
    started, finished = trio.Event(), trio.Event()

    async def pace() -> None:
        nonlocal first_round
        if first_round:
            first_round = False
            await started.wait()  # ``report`` is assigned
            async with harness.connect(person) as ws:
                await ws.call(
                    395, 366, game_id=report.game_id, action_id="goal", target_id="lions:9"
                )

    async def play(task_status: trio.TaskStatus[demo.MatchReport]) -> None:
        await demo.run_match(
            harness.services,
            harness.endpoints.ws_port,
            steps=demo.EVENT_EVERY - 1,  # no event of the demo's own
            pace=pace,
            rng=random.Random(3),
            task_status=task_status,
        )
        finished.set()

    report = await harness.nursery.start(play)
    started.set()
    await finished.wait()
    assert report.events == 0 and report.refusals > 0
    assert report.pools_opened == len(demo.ACTIONS) + 1
    async with harness.connect(person) as ws:
        listing = await ws.call(387, 3535, game_id=report.game_id)
    assert sorted(pool["action_id"] for pool in listing["pools_list"].values()) == [
        "corner",
        "goal",
    ]


async def test_demo_bots_that_lost_everything_are_paid_in_again(harness: Harness) -> None:
    await play(harness, 1, seed=4)
    bots = [
        await harness.services.ask_registry(FindUser(f"demo-bot-{name}")) for name in demo.BOT_NAMES
    ]
    for bot in bots:  # as if each had lost it all
        available = (await harness.http.get(f"/v1/users/{bot.id}/balances")).json()["EUR"][
            "available"
        ]
        withdrawn = await harness.http.post(
            f"/v1/users/{bot.id}/withdrawals",
            json={"amount": str(available), "reference": f"all-{bot.id}"},
        )
        assert withdrawn.status_code == 201, withdrawn.text
    report = await play(harness, 1, seed=5)
    assert (report.bets, report.refusals) == (0, len(bots))
    for bot in bots:
        balance = (await harness.http.get(f"/v1/users/{bot.id}/balances")).json()["EUR"]
        assert balance["available"] == int(demo.BOT_DEPOSIT)


def test_demo_command_and_where_to_look() -> None:
    args = build_parser().parse_args(["demo", "--ws-port", "0", "--steps", "5"])
    assert args.run is demo.run_demo and args.steps == 5 and "data_dir" not in args
    config = ServerConfig(host="127.0.0.1")
    text = demo.where_to_look(config, Endpoints(1, 2, "key", services=None), "g")  # type: ignore[arg-type]
    assert "http://127.0.0.1:2/#game=g" in text
    for name, password in demo.human_logins().items():
        assert f"{name} / {password}" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--step-seconds", "-1"],
        ["--step-seconds", "nan"],
        ["--step-seconds", "inf"],
        ["--step-seconds", "x"],
        ["--steps", "0"],
        ["--steps", "-3"],
        ["--steps", "٣"],
        ["--steps", "1.5"],
    ],
)
def test_demo_arguments_are_checked_before_anything_starts(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["demo", *argv])
    assert exited.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--allowed-origins", "null"], {}, "--allowed-origins"),
        (["--allowed-origin", "example.com"], {}, "--allowed-origins"),
        (["--ws-port", "x"], {}, "--ws-port"),
        ([], {"TOTE_WS_PORT": "-1"}, "TOTE_WS_PORT"),
        ([], {"TOTE_HTTP_PORT": "65536"}, "TOTE_HTTP_PORT"),
        ([], {"TOTE_WALLET_URL": "http://127.0.0.1:9", "TOTE_WALLET_SECRET": "s"}, "wallet_url"),
    ],
)
def test_demo_settings_are_checked_before_anything_starts(
    argv: list[str],
    environ: dict[str, str],
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wrong setting, from a flag or the environment, stops the demo with the usage
    status and one line naming where it came from, as for ``tote serve``."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["demo", *argv]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith("tote demo: ") and named in error


def test_demo_takes_every_setting_as_tote_serve_does(tmp_path: Path) -> None:
    """Flags win over TOTE_... variables, which win over the --config file, which wins
    over the demo's defaults (a temporary data directory, NORMAL fsync, WARNING logs)."""
    file = tmp_path / "tote.toml"
    file.write_text('host = "127.0.0.2"\nrate_burst = 7\nsynchronous = "FULL"\n')
    environ = {"TOTE_WS_PORT": "9101", "TOTE_HTTP_PORT": "9102", "TOTE_RATE_BURST": "8"}
    args = build_parser().parse_args(["demo", "--config", str(file), "--http-port", "9103"])
    config = demo.demo_config(args, tmp_path / "temporary", environ)
    assert (config.host, config.ws_port, config.http_port) == ("127.0.0.2", 9101, 9103)
    assert config.settings.rate_burst == 8 and config.synchronous == "FULL"
    defaults = demo.demo_config(build_parser().parse_args(["demo"]), tmp_path, {})
    assert (defaults.data_dir, defaults.synchronous, defaults.log_level) == (
        tmp_path,
        "NORMAL",
        "WARNING",
    )
    assert (defaults.ws_port, defaults.http_port) == (8765, 8766)


@pytest.mark.parametrize("taken", ["TOTE_WS_PORT", "TOTE_HTTP_PORT"])
async def test_make_demo_listens_where_the_environment_says(
    taken: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make demo`` runs ``tote demo`` with no flags: the ports come from TOTE_WS_PORT
    and TOTE_HTTP_PORT. A port taken on purpose proves the server tried that one."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setenv("TOTE_WS_PORT", "0")
        monkeypatch.setenv("TOTE_HTTP_PORT", "0")
        monkeypatch.setenv(taken, str(port))
        status = await trio.to_thread.run_sync(main, ["demo"])
    assert status == EXIT_CANNOT_START
    error = capfd.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("tote demo: cannot listen") and f":{port}:" in error


async def test_demo_on_a_taken_port_says_so_in_one_line(capfd: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = await trio.to_thread.run_sync(
            main, ["demo", "--ws-port", str(port), "--http-port", "0"]
        )
    assert status == EXIT_CANNOT_START
    error = capfd.readouterr().err.strip()
    assert error.startswith("tote demo: cannot listen for the websocket") and "\n" not in error
