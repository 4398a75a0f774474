"""Every server setting by flag, environment variable and TOML file, from one source.

The fields of :class:`tote.server.ServerConfig` and :class:`actors.services.Settings` are
the settings: their names, types and defaults come from the dataclasses, and ``HELP``
below says what each one does. From that one list come the ``tote serve`` flags, the
``TOTE_...`` variables, the keys of the ``--config`` file and the table in
docs/operations.md. A new field needs one line in ``HELP``: ``tests/test_config.py``
fails on a field without help or of a kind this module cannot parse (it parses int,
float, bool, text, paths and tuples/lists/frozensets of text), so a new setting cannot go
undocumented.

Precedence: flag > environment > file > default.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.lotteries import check_public_url
from domain.origins import ANY_ORIGIN, normalized_origin
from kit.settings import Settings
from storage.dialect import checked_url
from tote.server import ServerConfig

ENV_PREFIX = "TOTE_"

#: What each setting does, by field name (ServerConfig first, then Settings).
HELP: dict[str, str] = {
    "data_dir": "directory of the SQLite database and the operator key",
    "database": "postgresql://USER:PASS@HOST:PORT/DB (or postgres://): keep every byte of "
    "state in that PostgreSQL database instead of SQLite in data_dir (which still holds "
    "the operator key); backed up with pg_dump, not tote backup",
    "redis": "redis://HOST:PORT/DB: run as a node of a cluster (docs/cluster.md), every "
    "node on the same PostgreSQL --database and Redis; refused without --database",
    "node_id": "this cluster node's name (letters, digits, . _ -; default: a random "
    "n-<hex8> per start)",
    "host": "address both servers listen on",
    "ws_port": "websocket port (0: any free port)",
    "http_port": "operator HTTP API port (0: any free port)",
    "operator_key": "operator API key (default: the one kept in <data_dir>/operator_key)",
    "synchronous": "fsync level: FULL survives a power cut, NORMAL only a crash of tote "
    "(on PostgreSQL: synchronous_commit on or off)",
    "log_level": "least severe log level written: DEBUG, INFO, WARNING or ERROR",
    "default_currency": "currency of balance operations that name none",
    "request_timeout": "seconds a request may wait for an actor before REQUEST_TIMED_OUT",
    "max_frame_bytes": "largest websocket message in bytes; a larger one closes with 1009",
    "outbox_bytes": "unsent bytes one connection may hold before it is closed (1008)",
    "max_connections_per_user": "websocket connections one user may have open at once",
    "rate_per_second": "websocket messages a connection may send per second (sustained)",
    "rate_burst": "websocket messages a connection may send in a burst",
    "game_admin_limit": "admins one game may have at once",
    "presence_limit": "subscribers of a game above which joins and leaves (470, 480) go to "
    "its admins only and everyone gets viewer counts (471)",
    "distribution_interval": "seconds between two odds broadcasts of a pool",
    "idle_seconds": "seconds a resolved pool or closed game stays in memory unused",
    "scrypt_n": "scrypt cost of new password hashes (a power of two)",
    "login_attempts_per_name": "POST /v1/login attempts per name per window",
    "login_attempts_per_address": "POST /v1/login attempts per client address per window",
    "login_window_seconds": "seconds of the login throttle window",
    "slow_commit_seconds": "a commit slower than this is logged as a warning",
    "fail_safe_delay_ms": "milliseconds after its closing an unresolved pool is voided, when "
    "op 385 sets no fail_safe_at (seed 003)",
    "max_pool_lifetime_ms": "milliseconds after its opening an unresolved pool with no closing "
    "time is voided, when op 385 sets no fail_safe_at",
    "public_url": "scheme and host the lotteries.io links start with (default: the request's)",
    "wallet_url": "remote wallet mode (seed 004): the operator's callback base URL "
    "(POST <url>/bets and <url>/winners); needs wallet_secret",
    "wallet_secret": "remote wallet mode: the secret that signs every callback (X-Tote-Signature)",
    "wallet_client": "the `client` field of every callback",
    "wallet_timeout": "seconds one callback may take, all of it (connect, send, the answer), "
    "before its outcome counts as unknown",
    "wallet_retry_seconds": "seconds before a failed callback's first retry (doubling to 5 "
    "minutes, with jitter)",
    "allowed_origins": "browser origins (scheme://host[:port]) whose pages may open a "
    "websocket besides the server's own; * allows any",
    "http_idle_seconds": "seconds an HTTP connection may sit idle between requests, or take "
    "to send a request's headers, before it is closed",
    "http_body_seconds": "seconds a request body may take to arrive (408 BODY_TOO_SLOW past it)",
    "http_send_seconds": "seconds a client may leave a response unread before its HTTP "
    "connection is closed",
    "http_connections_per_address": "HTTP connections one client address (IPv4 address, "
    "IPv6 /64; an IPv6 /48 holds 8 times as many) may hold open at once; the next gets 429 "
    "TOO_MANY_CONNECTIONS (behind a reverse proxy every client has the proxy's address: "
    "raise it)",
    "ws_connections_per_address": "websocket connections one client address (IPv4 address, "
    "IPv6 /64; an IPv6 /48 holds 8 times as many) may hold open at once, before or after "
    "the handshake; the next gets 429 TOO_MANY_CONNECTIONS before its handshake is read "
    "(behind a reverse proxy every client has the proxy's address: raise it)",
    "handshake_seconds": "seconds a websocket client may take to send its opening handshake",
    "lease_seconds": "cluster only: seconds the owner lease lasts unrenewed (renewed every "
    "quarter of it); the games of an owner that stops renewing are adopted by another node "
    "within about this long",
}

#: Where ``tote serve`` differs from the dataclass default (tests run on memory).
SERVE_DEFAULTS: dict[str, Any] = {"data_dir": Path("data")}

#: ServerConfig fields that are wiring, not settings.
NOT_SETTINGS = frozenset({"settings", "offload"})

SEQUENCES = (tuple, list, frozenset)
METAVARS: dict[type, str] = {
    int: "N",
    float: "NUMBER",
    bool: "true|false",
    str: "TEXT",
    Path: "DIR",
    **{kind: "A,B,..." for kind in SEQUENCES},
}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}

#: 1 GiB of memory per hash (128 * N * r, r = 8): past it one login could take the host.
MAX_SCRYPT_N = 2**20

#: Older flag names that still work.
ALIASES: dict[str, tuple[str, ...]] = {"default_currency": ("--currency",)}

CHOICES: dict[str, tuple[str, ...]] = {
    "synchronous": ("FULL", "NORMAL"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
}


class ConfigError(Exception):
    """A setting's value is wrong; the message names the setting and where it came from."""


@dataclass(frozen=True)
class Setting:
    """One setting: where it lives, its type and default, and how it is named outside."""

    name: str
    kind: type | None  # None: a type this module cannot parse (the test says which)
    default: Any
    help: str
    in_settings: bool  # a field of Settings (else of ServerConfig)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def kind_of(hint: Any) -> type | None:
    """The kind a setting is parsed as: int, float, bool, str, Path, or a sequence type
    (tuple, list, frozenset) of text; ``X | None`` is X. None: a kind not supported."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint in (int, float, bool, str, Path):
        return hint
    origin = typing.get_origin(hint)
    if origin in SEQUENCES and set(typing.get_args(hint)) <= {str, Ellipsis}:
        return origin
    return None


def _fields(cls: type, *, in_settings: bool) -> list[Setting]:
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        if f.name in NOT_SETTINGS:
            continue
        default = SERVE_DEFAULTS.get(f.name, f.default)
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        kind = kind_of(hints[f.name])
        found.append(Setting(f.name, kind, default, HELP.get(f.name, ""), in_settings))
    return found


#: Every field, supported or not (the test names those that are not).
ALL_SETTINGS: list[Setting] = _fields(ServerConfig, in_settings=False) + _fields(
    Settings, in_settings=True
)
SETTINGS = [s for s in ALL_SETTINGS if s.kind is not None]
BY_NAME = {s.name: s for s in SETTINGS}


# -- parsing one value ------------------------------------------------------------------


def parse_value(setting: Setting, value: Any) -> Any:
    """``value`` (text from a flag or the environment, or a TOML value) as the setting's
    kind, checked: numbers finite and positive (ports 0-65535), text non-empty and
    printable, names from their choices. Raises ValueError saying what is expected."""
    kind = setting.kind
    if isinstance(value, Path):  # `tote --data-dir DIR serve`: parsed by the client options
        value = str(value)
    if kind is bool:
        return _boolean(value)
    if isinstance(value, bool):
        raise ValueError("expected a number or text, not a boolean")
    if kind is int:
        return _checked_integer(setting.name, _integer(value))
    if kind is float:
        number = _number(value)
        if not (math.isfinite(number) and number > 0):
            raise ValueError("expected a positive number of seconds or a rate")
        return number
    if kind in SEQUENCES:
        return _sequence(setting.name, kind, value)
    return _text_value(setting, value)


def _sequence(name: str, kind: type, value: Any) -> Any:
    """A list setting from comma-separated text or a TOML array; origins normalized."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("expected a comma-separated list or an array of text")
    texts = [_text(name, item) for item in items if str(item).strip()]
    if name == "allowed_origins":
        texts = [_origin(text) for text in texts]
    return kind(texts)


def _text_value(setting: Setting, value: Any) -> Any:
    """A text or path setting; URLs and the database checked for what they must be."""
    text = _text(setting.name, value)
    if setting.name in ("public_url", "wallet_url"):
        return check_public_url(text)  # ValueError says what is expected
    if setting.name == "database":
        return checked_url(text)  # ValueError says what is expected
    if setting.name == "redis" and not re.fullmatch(r"(redis|rediss|unix)://\S+", text):
        raise ValueError("expected redis://HOST:PORT/DB (or rediss://, unix://)")
    if setting.name == "node_id" and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", text):
        raise ValueError("expected 1 to 64 letters, digits, '.', '_' or '-'")
    return Path(text) if setting.kind is Path else text


def _origin(text: str) -> str:
    if text == ANY_ORIGIN:
        return text
    origin = normalized_origin(text)
    if origin is None:
        raise ValueError("expected origins as scheme://host[:port], or *")
    return origin


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    text = value.strip()
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("expected non-empty printable text")
    if name in CHOICES:
        text = text.upper()
        if text not in CHOICES[name]:
            raise ValueError(f"expected one of {', '.join(CHOICES[name])}")
    if name == "default_currency":
        text = text.upper()
        if not re.fullmatch(r"[A-Z]{3}", text):
            raise ValueError("expected a 3-letter currency code")
    return text


def _checked_integer(name: str, number: int) -> int:
    low, high = (0, 65535) if name.endswith("_port") else (1, 2**62)
    if not low <= number <= high:
        raise ValueError(f"expected an integer from {low} to {high}")
    if name == "scrypt_n" and (number & (number - 1) or not 2 <= number <= MAX_SCRYPT_N):
        raise ValueError(f"expected a power of two from 2 to {MAX_SCRYPT_N}")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def _integer(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,19}\s*", value):
        return int(value)
    raise ValueError("expected an integer")


def _number(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,12}(\.[0-9]{1,9})?\s*", value):
        return float(value)
    raise ValueError("expected a number like 2 or 0.25")


# -- sources ----------------------------------------------------------------------------


def read_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML file: top-level keys named as the settings (snake_case)."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"the config file {path} is not TOML: {error}") from None
    unknown = sorted(set(data) - set(BY_NAME))
    if unknown:
        raise ConfigError(
            f"the config file {path} has unknown settings: {', '.join(unknown)} "
            "(see docs/operations.md)"
        )
    return data


def resolve(
    flags: Mapping[str, Any], environ: Mapping[str, str], file: Mapping[str, Any]
) -> dict[str, Any]:
    """Each setting given anywhere, parsed, by precedence flag > environment > file.
    Settings given nowhere are left out: their dataclass default applies."""
    chosen: dict[str, Any] = {}
    for setting in SETTINGS:
        for where, source, key in (
            (setting.flag, flags, setting.name),
            (setting.env, environ, setting.env),
            ("the config file", file, setting.name),
        ):
            if key in source:
                try:
                    chosen[setting.name] = parse_value(setting, source[key])
                except ValueError as error:
                    raise ConfigError(f"{setting.name} from {where}: {error}") from None
                break
    return chosen


def build_config(
    chosen: Mapping[str, Any], defaults: Mapping[str, Any] = SERVE_DEFAULTS
) -> ServerConfig:
    """The ServerConfig of a server command: the chosen settings over its ``defaults``
    (``tote serve``'s unless given: ``tote demo`` has its own)."""
    chosen = {**defaults, **chosen}
    server = {k: v for k, v in chosen.items() if not BY_NAME[k].in_settings}
    settings = {k: v for k, v in chosen.items() if BY_NAME[k].in_settings}
    if "redis" in server and "database" not in server:
        raise ConfigError(
            "redis: a cluster node keeps its state in PostgreSQL: give --database "
            "postgresql://... (TOTE_DATABASE) too"
        )
    if ("wallet_url" in settings) != ("wallet_secret" in settings):
        raise ConfigError("wallet_url and wallet_secret: remote wallet mode needs both")
    return ServerConfig(**server, settings=Settings(**settings))


def config_from(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] = SERVE_DEFAULTS,
) -> ServerConfig:
    """The ServerConfig from a server command's parsed flags, the environment and the
    ``--config`` file (``$TOTE_CONFIG`` when no flag), over the command's ``defaults``."""
    environ = os.environ if environ is None else environ
    # an empty variable (`TOTE_WS_PORT=` in a compose file) means unset, as in most tools
    environ = {key: value for key, value in environ.items() if value.strip()}
    flags = {s.name: getattr(args, s.name) for s in SETTINGS if hasattr(args, s.name)}
    path = getattr(args, "config", None) or environ.get(ENV_PREFIX + "CONFIG")
    file = read_file(Path(path)) if path else {}
    return build_config(resolve(flags, environ, file), defaults)


def add_flags(
    parser: argparse.ArgumentParser, shown_defaults: Mapping[str, str] | None = None
) -> None:
    """One flag per setting; unset flags stay absent so the environment and file count.
    ``shown_defaults``: the defaults the help shows where the command's differ from
    ``tote serve``'s."""
    shown = shown_defaults or {}
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"TOML file of settings (env {ENV_PREFIX}CONFIG); flags and env override it",
    )
    for setting in SETTINGS:
        parser.add_argument(
            setting.flag,
            *ALIASES.get(setting.name, ()),
            dest=setting.name,
            default=argparse.SUPPRESS,
            metavar="|".join(CHOICES.get(setting.name, ())) or METAVARS[setting.kind],
            help=f"{setting.help} (env {setting.env}, "
            f"default {shown.get(setting.name) or display_default(setting)})",
        )


def display_default(setting: Setting) -> str:
    if setting.default is None:
        return "none"
    if setting.kind in SEQUENCES:
        items = setting.default
        return ",".join(sorted(items) if isinstance(items, frozenset) else items) or "(empty)"
    if setting.kind is bool:
        return str(setting.default).lower()
    return str(setting.default)


# -- the table in docs/operations.md ------------------------------------------------------


def settings_table() -> str:
    lines = [
        "| setting (TOML key) | flag | environment | default | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| `{s.name}` | `{s.flag}` | `{s.env}` | `{display_default(s)}` | {s.help} |"
        for s in SETTINGS
    ]
    return "\n".join(lines)
