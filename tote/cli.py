"""The ``tote`` command: ``tote serve`` runs the server; the other commands provision a
running server through its operator HTTP API (decisions §5).

The client commands use only ``urllib.request``: a shell command may block, and the
stdlib keeps the operator's toolbox free of extra dependencies. Answers are printed as
JSON with their exact decimal text; errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
import trio

from domain.codec import decode, encode
from storage.backup import BackupError, backup
from storage.dialect import Engine, engine_of
from tote import logs
from tote.config import ConfigError, add_flags, config_from
from tote.demo import add_demo_command
from tote.server import (
    EXIT_USAGE,
    ServerConfig,
    StartError,
    operator_key_for,
    raise_open_file_limit,
    reporting_start_errors,
    serve_until_signalled,
)

DEFAULT_URL = "http://127.0.0.1:8766"
DEFAULT_DATA_DIR = Path("data")
CLIENT_TIMEOUT = 30.0

#: Exit statuses: the answer was an error (or the audit found problems), or the server
#: could not be asked at all (no key, not reachable).
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2


#: What ``tote backup`` says of a PostgreSQL database (its own tools copy it consistently).
PG_DUMP = "PostgreSQL is backed up with pg_dump"


class CliError(Exception):
    """Could not talk to the server; the message says why."""


# -- the server -----------------------------------------------------------------------


def _currency(text: str) -> str:
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise argparse.ArgumentTypeError(f"{text!r} is not a 3-letter currency code")
    return code


def _run_serve(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except ConfigError as error:
        print(f"tote: {error}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(config.log_level)

    def start() -> None:
        _show_operator_key(config)
        raise_open_file_limit()
        trio.run(serve_until_signalled, config)

    return reporting_start_errors("tote", start)


def _show_operator_key(config: ServerConfig) -> None:
    """Settle the operator key before anything can fail, so that a new key is shown even
    when this first start then fails (it is shown once: it is a secret)."""
    given = config.operator_key or os.environ.get("TOTE_OPERATOR_KEY")
    where = f"kept in {config.data_dir}/operator_key"
    try:
        key, is_new = operator_key_for(config)
    except OSError as error:
        raise StartError(f"cannot read or create the operator key {where}: {error}") from None
    config.operator_key = key
    if is_new:
        print(f"operator key (new, {where}): {key}", flush=True)
    elif not given:
        print(f"operator key: {where}", flush=True)


# -- the HTTP client ------------------------------------------------------------------


def operator_key(args: argparse.Namespace) -> str:
    """--operator-key, else $TOTE_OPERATOR_KEY, else the key the server keeps in its
    data directory (the same order the server uses to pick it)."""
    key = args.operator_key or os.environ.get("TOTE_OPERATOR_KEY")
    if key:
        return key
    path = (args.data_dir or DEFAULT_DATA_DIR) / "operator_key"
    try:
        return path.read_text().strip()
    except OSError as error:
        raise CliError(
            f"no operator key: pass --operator-key, set TOTE_OPERATOR_KEY, "
            f"or point --data-dir at the server's data ({error})"
        ) from None


def call(
    args: argparse.Namespace, method: str, path: str, body: Any = None, *, auth: bool = True
) -> tuple[int, bytes]:
    """One HTTP call; returns (status, body) for any HTTP answer, raises CliError when
    there is no answer."""
    url = (args.url or os.environ.get("TOTE_URL") or DEFAULT_URL).rstrip("/") + path
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = encode(body)
        headers["Content-Type"] = "application/json"
    if auth:
        headers["Authorization"] = f"Bearer {operator_key(args)}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=CLIENT_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()
    except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
        raise CliError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None


def _pretty(data: bytes) -> str:
    """Indented JSON with the number text untouched (no float round trip)."""
    try:
        return msgspec.json.format(data, indent=2).decode()
    except msgspec.DecodeError:
        return data.decode(errors="replace")


def _report(status: int, data: bytes) -> int:
    if status >= 400:
        print(_pretty(data), file=sys.stderr)
        return EXIT_REFUSED
    print(_pretty(data))
    return 0


# -- the client commands: each returns (method, path, body, auth) ---------------------

Call = tuple[str, str, Any, bool]


def _user_create(a: argparse.Namespace) -> Call:
    body: dict[str, Any] = {"name": a.name, "roles": a.role or []}
    if a.password is not None:
        body["password"] = a.password
    return "POST", "/v1/users", body, True


def _money(kind: str) -> Callable[[argparse.Namespace], Call]:
    def build(a: argparse.Namespace) -> Call:
        # The amount goes as a string: the server parses its exact decimal text.
        return (
            "POST",
            f"/v1/users/{a.user_id}/{kind}",
            {
                "currency": a.currency,
                "amount": a.amount,
                "reference": a.reference or str(uuid.uuid4()),
            },
            True,
        )

    return build


def _page(a: argparse.Namespace) -> str:
    return urlencode({"limit": a.limit, "offset": a.offset})


def _limits(a: argparse.Namespace) -> Call:
    """GET the limits, or PUT the periods named with --deposit/--loss ("none" removes)."""
    path = f"/v1/users/{a.user_id}/limits"
    if not a.deposit and not a.loss:
        return "GET", f"{path}?{urlencode({'currency': a.currency})}", None, True
    body: dict[str, Any] = {"currency": a.currency}
    for kind, settings in (("deposit", a.deposit), ("loss", a.loss)):
        if settings:
            body[kind] = {
                period: None if amount.lower() == "none" else amount for period, amount in settings
            }
    return "PUT", path, body, True


def _period_amount(text: str) -> tuple[str, str]:
    """``day=50`` (or ``week=none``) from the command line."""
    period, sep, amount = text.partition("=")
    if not sep or not period or not amount:
        raise argparse.ArgumentTypeError(f"expected PERIOD=AMOUNT like day=50, not {text!r}")
    return period.strip(), amount.strip()


COMMANDS: dict[str, Callable[[argparse.Namespace], Call]] = {
    "user create": _user_create,
    "session create": lambda a: ("POST", f"/v1/users/{a.user_id}/sessions", None, True),
    "login": lambda a: ("POST", "/v1/login", {"name": a.name, "password": a.password}, False),
    "deposit": _money("deposits"),
    "withdraw": _money("withdrawals"),
    "balances": lambda a: ("GET", f"/v1/users/{a.user_id}/balances", None, True),
    "block": lambda a: ("POST", f"/v1/users/{a.user_id}/block", None, True),
    "unblock": lambda a: ("POST", f"/v1/users/{a.user_id}/unblock", None, True),
    "source-admin add": lambda a: (
        "POST",
        f"/v1/sources/{a.source_id}/admins",
        {"user_id": a.user_id},
        True,
    ),
    "audit": lambda a: ("GET", "/v1/audit", None, True),
    "cooldown": lambda a: ("POST", f"/v1/users/{a.user_id}/cooldown", {"until": a.until}, True),
    "limits": _limits,
    "exclude": lambda a: ("POST", f"/v1/users/{a.user_id}/exclusion", {"until": a.until}, True),
    "partner create": lambda a: ("POST", "/v1/partners", None, True),
    "partner revoke": lambda a: (
        "DELETE",
        f"/v1/partners/{quote(a.partner_id, safe='')}",
        None,
        True,
    ),
    "sources": lambda a: ("GET", f"/v1/sources?{_page(a)}", None, True),
    "games": lambda a: ("GET", f"/v1/games?{_page(a)}", None, True),
    "pools": lambda a: (
        "GET",
        f"/v1/games/{quote(a.game_id, safe='')}/pools?{_page(a)}",
        None,
        True,
    ),
}


def _run_client(args: argparse.Namespace) -> int:
    method, path, body, auth = COMMANDS[args.action](args)
    try:
        status, data = call(args, method, path, body, auth=auth)
    except CliError as error:
        print(f"tote: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    code = _report(status, data)
    if code == 0 and args.action == "audit" and not decode(data).get("ok"):
        return EXIT_REFUSED
    return code


def _run_backup(args: argparse.Namespace) -> int:
    """Exit 0 with the copy's report, 1 when it could not be made or fails its checks,
    2 (a setting error) for a PostgreSQL database, which pg_dump backs up."""
    if args.database and engine_of(args.database) is Engine.POSTGRESQL:
        print(f"tote: {PG_DUMP}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = backup(args.data_dir / "tote.db", args.path)
    except BackupError as error:
        print(f"tote: {error}", file=sys.stderr)
        return EXIT_REFUSED
    summary = {
        "path": str(report.path),
        "bytes": report.bytes,
        "integrity": report.integrity,
        "ledger_lines": report.ledger_lines,
        "problems": report.problems,
        "ok": report.ok,
    }
    print(encode(summary).decode(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else EXIT_REFUSED


# -- argument parsing -----------------------------------------------------------------


def _client_options() -> argparse.ArgumentParser:
    """--url, --operator-key and --data-dir, accepted before or after the command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"server HTTP address (env TOTE_URL, default {DEFAULT_URL})",
    )
    common.add_argument(
        "--operator-key",
        default=argparse.SUPPRESS,
        help="operator key (env TOTE_OPERATOR_KEY, else <data-dir>/operator_key)",
    )
    common.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="where to find operator_key (default ./data)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``tote`` parser: ``serve``, the client commands (each also takes the common
    options), ``backup``, ``demo`` and ``bench`` (listed for --help only)."""
    common = _client_options()
    parser = argparse.ArgumentParser(
        prog="tote", parents=[common], description="Run or provision a tote server."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_account_commands(sub, common)
    _add_wallet_commands(sub, common)
    _add_source_admin_commands(sub, common)
    _add_player_limit_commands(sub, common)
    _add_partner_commands(sub, common)
    _add_listing_commands(sub, common)
    _add_backup(sub)
    add_demo_command(sub)
    _add_bench(sub)
    return parser


def _client(
    parent: Any, common: argparse.ArgumentParser, name: str, text: str, action: str | None = None
) -> argparse.ArgumentParser:
    """A client command ``name`` under ``parent``; ``action`` (default ``name``) is what
    ``_run_client`` dispatches on."""
    p: argparse.ArgumentParser = parent.add_parser(
        name, help=text, description=text, parents=[common]
    )
    p.set_defaults(action=action or name)
    return p


def _user_id(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("user_id", type=int, help="the user's id (tote user create prints it)")
    return p


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the server",
        description="Run the server. Every setting is a flag, a TOTE_ environment variable "
        "or a key of the --config TOML file; a flag wins over the environment, which wins "
        "over the file (docs/operations.md).",
    )
    add_flags(serve)


def _add_account_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``user create``, ``session create`` and ``login``."""
    user = sub.add_parser("user", help="users").add_subparsers(dest="sub", required=True)
    p = _client(user, common, "create", "create a user", "user create")
    p.add_argument("name", help="display name, unique regardless of case")
    p.add_argument("--password", help="password for POST /v1/login (default: none, no login)")
    p.add_argument(
        "--role",
        action="append",
        choices=["developer", "house", "player"],
        help="a role to grant; repeat for several",
    )
    session = sub.add_parser("session", help="sessions").add_subparsers(dest="sub", required=True)
    _user_id(_client(session, common, "create", "mint a session key", "session create"))
    p = _client(sub, common, "login", "log in as a player (no operator key)")
    p.add_argument("name", help="the user's name")
    p.add_argument("password", help="the user's password")


def _add_wallet_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``deposit``, ``withdraw``, ``balances``, ``block`` and ``unblock``."""
    for name, text in (("deposit", "credit a wallet"), ("withdraw", "debit a wallet")):
        p = _user_id(_client(sub, common, name, text))
        p.add_argument("currency", type=_currency, help="3-letter currency code, like EUR")
        p.add_argument("amount", help="exact decimal text, like 10.50")
        p.add_argument("--reference", help="idempotency key (default: a new uuid4)")
    for name, text in (
        ("balances", "show balances"),
        ("block", "block a user"),
        ("unblock", "unblock a user"),
    ):
        _user_id(_client(sub, common, name, text))


def _add_source_admin_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``source-admin add`` and ``audit``."""
    admins = sub.add_parser("source-admin", help="game source admins").add_subparsers(
        dest="sub", required=True
    )
    p = _client(admins, common, "add", "add a game source admin", "source-admin add")
    p.add_argument("source_id", help="the source's id (tote sources lists them)")
    _user_id(p)
    _client(sub, common, "audit", "check the ledger; exit 1 when it has problems")


def _add_player_limit_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``cooldown``, ``limits`` and ``exclude``: a player's protections."""
    p = _user_id(
        _client(sub, common, "cooldown", "no bets from a user until a time (a past time lifts it)")
    )
    p.add_argument("until", type=int, help="epoch milliseconds (or seconds)")
    text = "show a player's deposit and loss limits, or set them"
    p = _user_id(_client(sub, common, "limits", text))
    p.add_argument("--currency", default="EUR", help="the limits' currency (default EUR)")
    for kind in ("deposit", "loss"):
        p.add_argument(
            f"--{kind}",
            action="append",
            type=_period_amount,
            metavar="PERIOD=AMOUNT",
            help=f"set a {kind} limit per day, week or month (AMOUNT none removes it; "
            "a higher limit or a removal waits 24 hours)",
        )
    text = "exclude a player from bets and deposits (at least a day, never shortened)"
    p = _user_id(_client(sub, common, "exclude", text))
    p.add_argument("until", type=int, help="epoch milliseconds (or seconds)")


def _add_partner_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    partner = sub.add_parser("partner", help="partner keys for POST /v1/betslips")
    partners = partner.add_subparsers(dest="sub", required=True)
    _client(partners, common, "create", "mint a partner key (shown once)", "partner create")
    p = _client(partners, common, "revoke", "revoke a partner key", "partner revoke")
    p.add_argument("partner_id", help="the id `tote partner create` printed")


def _add_listing_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``sources``, ``games`` and ``pools``, each paged by --limit and --offset."""
    for name, text in (
        ("sources", "list game sources with their admins"),
        ("games", "list games with their status and pools by status"),
        ("pools", "list a game's pools with their bets and stakes"),
    ):
        p = _client(sub, common, name, text)
        if name == "pools":
            p.add_argument("game_id", help="the game's id (tote games lists them)")
        p.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
        p.add_argument("--offset", type=int, default=0, help="skip this many first")


def _add_backup(sub: Any) -> None:
    p = sub.add_parser(
        "backup",
        help="copy the database of a running server, consistently",
        description="Copy <data-dir>/tote.db to PATH with SQLite's backup API (safe while "
        "the server runs), then check the copy's integrity and ledger.",
    )
    p.add_argument("path", type=Path, help="where to write the copy (must not exist)")
    p.add_argument(
        "--database",
        default=os.environ.get("TOTE_DATABASE") or None,
        metavar="URL",
        help=f"the server's database URL, when not SQLite (env TOTE_DATABASE): {PG_DUMP}",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TOTE_DATA_DIR", DEFAULT_DATA_DIR)),
        help="the server's data directory (env TOTE_DATA_DIR, default ./data)",
    )


def _add_bench(sub: Any) -> None:
    # `tote bench ...` goes to the benchmark's own parser (main); listed here for --help.
    bench = sub.add_parser(
        "bench",
        help="measure tote against a bare websocket echo server (tote bench --help)",
        add_help=False,
    )
    bench.set_defaults(run=lambda _: _bench([]))


def _bench(argv: list[str]) -> int:
    """``tote bench``: the benchmark parses its own options (imported only when run);
    ``--cluster`` is ``tote.bench_cluster``'s, which starts from ``tote.bench``."""
    from tote.bench_cluster import main as bench

    return bench(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["bench"]:  # `tote bench --help`: the benchmark parses its own options
        return _bench(arguments[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "run", None) is not None:
        return args.run(args)
    if args.command == "serve":
        return _run_serve(args)
    if args.command == "backup":
        return _run_backup(args)
    for name in ("url", "operator_key", "data_dir"):
        setattr(args, name, getattr(args, name, None))
    return _run_client(args)


if __name__ == "__main__":
    sys.exit(main())
