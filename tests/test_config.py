"""Settings by flag, environment and TOML file, from one list: precedence, validation of
every setting of a kind, the generated table, and help on every flag."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tote import cli
from tote.config import (
    ALL_SETTINGS,
    HELP,
    SETTINGS,
    ConfigError,
    Setting,
    config_from,
    kind_of,
    parse_value,
)
from tote.docs import OPERATIONS, operations_tables, render
from tote.server import ServerConfig


def serve_args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["serve", *argv])


def test_every_setting_has_help_and_the_table_is_up_to_date() -> None:
    assert all(s.kind for s in ALL_SETTINGS), [s.name for s in ALL_SETTINGS if not s.kind]
    assert all(s.help for s in SETTINGS), [s.name for s in SETTINGS if not s.help]
    assert set(HELP) == {s.name for s in SETTINGS}, "HELP names a setting that is gone"
    text = OPERATIONS.read_text()
    assert render(text, operations_tables()) == text, "run `python -m tote.docs`"


def test_defaults_are_the_dataclass_defaults_except_the_data_dir() -> None:
    config = config_from(serve_args(), environ={})
    assert config.data_dir == Path("data")
    assert config.settings == ServerConfig().settings
    assert (config.ws_port, config.log_level) == (8765, "INFO")


def test_flag_over_environment_over_file_over_default(tmp_path: Path) -> None:
    file = tmp_path / "tote.toml"
    file.write_text('ws_port = 1001\nhttp_port = 2001\nhost = "0.0.0.0"\nrate_burst = 7\n')
    environ = {"TOTE_WS_PORT": "1002", "TOTE_HTTP_PORT": "2002", "TOTE_CONFIG": str(file)}
    config = config_from(serve_args("--ws-port", "1003"), environ=environ)
    assert config.ws_port == 1003  # flag
    assert config.http_port == 2002  # environment
    assert (config.host, config.settings.rate_burst) == ("0.0.0.0", 7)  # file
    assert config.settings.request_timeout == 10.0  # default
    # --config wins over TOTE_CONFIG
    other = tmp_path / "other.toml"
    other.write_text("rate_burst = 9\n")
    config = config_from(serve_args("--config", str(other)), environ=environ)
    assert config.settings.rate_burst == 9


def test_an_empty_variable_is_unset() -> None:
    config = config_from(serve_args(), environ={"TOTE_WS_PORT": "", "TOTE_HOST": "  "})
    assert (config.ws_port, config.host) == (8765, "127.0.0.1")


def test_values_are_parsed_to_their_type() -> None:
    config = config_from(
        serve_args("--synchronous", "normal", "--currency", "usd", "--data-dir", "/tmp/x"),
        environ={"TOTE_REQUEST_TIMEOUT": "2.5", "TOTE_LOG_LEVEL": "debug"},
    )
    assert (config.synchronous, config.settings.default_currency) == ("NORMAL", "USD")
    assert config.data_dir == Path("/tmp/x") and config.log_level == "DEBUG"
    assert config.settings.request_timeout == 2.5


BAD = {
    int: ["", "x", "-1", "1.5", "1e3", "99999999999999999999", True, 2.0],
    float: ["", "x", "0", "-1", "nan", "inf", "1e3", True, 0, -0.5],
    str: ["", "  ", "a\nb", 5, True],
    tuple: ["a\nb", 5, True, "ftp://x", "https://x/path"],
}


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_refuses_every_bad_value_of_its_kind(setting) -> None:  # type: ignore[no-untyped-def]
    for value in BAD.get(setting.kind, BAD[str]):
        with pytest.raises(ValueError):
            parse_value(setting, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ws_port", "65536"),
        ("rate_burst", "0"),
        ("scrypt_n", "1000"),
        ("scrypt_n", "1"),
        ("scrypt_n", str(2**21)),
        ("synchronous", "OFF"),
        ("log_level", "LOUD"),
        ("default_currency", "EURO"),
    ],
)
def test_range_and_choice_checks(name: str, value: str) -> None:
    setting = next(s for s in SETTINGS if s.name == name)
    with pytest.raises(ValueError):
        parse_value(setting, value)


def test_kinds_a_new_setting_may_have() -> None:
    assert kind_of(int | None) is int and kind_of(Path | None) is Path
    assert kind_of(tuple[str, ...]) is tuple and kind_of(frozenset[str]) is frozenset
    assert kind_of(dict[str, int]) is None and kind_of(tuple[int, ...]) is None
    flag = Setting("strict", bool, False, "a flag", in_settings=True)
    assert [parse_value(flag, v) for v in ("true", " No ", "1", "off", True)] == [
        True,
        False,
        True,
        False,
        True,
    ]
    for bad in ("maybe", "", 1, None):
        with pytest.raises(ValueError):
            parse_value(flag, bad)
    origins = Setting("origins", tuple, (), "a list", in_settings=True)
    assert parse_value(origins, "http://a, http://b,") == ("http://a", "http://b")
    assert parse_value(origins, ["http://a"]) == ("http://a",)
    for bad in ("a,\x01", [1], 5, ["a", "b\x00c"]):
        with pytest.raises(ValueError):
            parse_value(origins, bad)


def test_a_bad_setting_names_itself_and_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ws_port from TOTE_WS_PORT"):
        config_from(serve_args(), environ={"TOTE_WS_PORT": "http"})
    with pytest.raises(ConfigError, match="rate_burst from --rate-burst"):
        config_from(serve_args("--rate-burst", "-3"), environ={})
    file = tmp_path / "tote.toml"
    file.write_text("ws_prot = 1\n")
    with pytest.raises(ConfigError, match="unknown settings: ws_prot"):
        config_from(serve_args("--config", str(file)), environ={})
    file.write_text("ws_port = [")
    with pytest.raises(ConfigError, match="not TOML"):
        config_from(serve_args("--config", str(file)), environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        config_from(serve_args("--config", str(tmp_path / "none.toml")), environ={})


def test_tote_serve_exits_2_on_a_bad_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOTE_IDLE_SECONDS", "soon")
    assert cli.main(["serve"]) == cli.EXIT_USAGE
    assert "idle_seconds from TOTE_IDLE_SECONDS" in capsys.readouterr().err


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_help_on_every_command_says_what_each_flag_does() -> None:
    for parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{parser.prog}: {action.dest} has no help"
