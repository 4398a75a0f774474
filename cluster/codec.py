"""The bytes of what crosses nodes: the messages the transports send to the registry, the
wallet, a game, a pool, the directory and the betslip desk, their replies, and the
errors (docs/cluster.md, "Requests to the owner").

msgpack (msgspec) over a tagged tree, so that the exact Python value comes back, whatever
the field's declared type says (many fields are ``Any``, a few are unions of dataclasses,
which msgspec cannot decode by type): every dataclass is ``{"$t": name, "f": fields}``
and is looked up by name in ``TYPES``, built explicitly below (a type not listed is
refused when encoded, never guessed when decoded); a ``Decimal`` (or a ``Fraction``) is
an ext (its exact text), so ``Decimal("5")`` stays a Decimal, never the int 5 (and a
``msgspec.Raw``, JSON a reply holds already encoded, an ext of its bytes); enums,
tuples, sets and dicts carry their own tag, so ``CreateGame.fields`` with a key ``"$t"``
is still a dict. A ``DomainError`` is ``{"$x": {code, message, details, unknown}}`` and
comes back as itself (``OutcomeUnknown`` when ``unknown``).
"""

from __future__ import annotations

import dataclasses
import enum
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec

from actors import game, registry, wallet
from actors import pool as pool_msgs
from actors.directory import CreateGame, SourceClosure
from actors.hub import Broadcast, Joined
from cluster import messages
from domain import betslip, limits, rules
from domain import game as game_domain
from domain import pool as pool_domain
from domain.errors import DomainError, ErrorCode, OutcomeUnknown
from domain.roles import Role

_DECIMAL = 1  # the msgpack ext code of a Decimal: its exact text, ASCII
_FRACTION = 2  # and of a Fraction: "numerator/denominator"
_RAW = 3  # and of a msgspec.Raw (JSON a reply carries pre-encoded): its bytes

#: Messages that never cross nodes, and why: the test of the codec fails on any message of
#: a protocol module that is neither registered nor listed here.
NOT_FORWARDED: dict[type, str] = {
    game.Join: "holds the subscriber's address and greet: an edge sends JoinFrom (fanout)",
    game.Leave: "holds the subscriber's address: an edge sends LeaveFrom (fanout)",
    game.ReserveSeqs: "the hub's, on the owner only",
    pool_msgs.Info: "the directory's and a game's, on the owner only",
    pool_msgs.Announcement: "the directory's, on the owner only",
    pool_msgs.ResolveByEvent: "a game's, on the owner only",
    pool_msgs.HaltForEvent: "a game's, on the owner only",
    pool_msgs.CloseForGame: "a game's, on the owner only",
    pool_msgs.Reserve: "the betslip desk's: the whole slip is forwarded instead",
    pool_msgs.Release: "the betslip desk's: the whole slip is forwarded instead",
    pool_msgs.Debited: "a pool's to itself (holds its requests)",
    registry.AddGame: "the directory's, on the owner only",
    registry.CheckSourceAdmin: "the directory's and a game's, on the owner only",
    registry.CloseSource: "the directory's: close_source is forwarded whole",
    registry.GamesOf: "the directory's: an edge reads storage",
    wallet.Stakes: "a pool's, on the owner only (holds storage changes)",
    wallet.Hold: "a pool's, on the owner only (holds storage changes)",
    wallet.Unhold: "a pool's, on the owner only (holds storage changes)",
    wallet.Screen: "a pool's, on the owner only",
    wallet.PlaceSlip: "the betslip desk's: the whole slip is forwarded instead",
    wallet.Settle: "a pool's, on the owner only (holds storage changes)",
    wallet.Sync: "the betslip desk's and a pool's, on the owner only",
}

#: Replies that never cross: the owner answers with something else.
REPLIES_NOT_FORWARDED: dict[type, str] = {
    pool_msgs.BetHeld: "holds the decision to wait for: the owner waits and replies with it",
}

#: Every type that crosses, messages first (with the replies their ``Ask`` names), then
#: what replies hold. Listed by hand: adding a message to a protocol means choosing here.
_CROSSING: tuple[type, ...] = (
    # the registry
    registry.CreateUser,
    registry.GetUser,
    registry.CheckSession,
    registry.FindUser,
    registry.CreateSession,
    registry.Authenticate,
    registry.OpenSource,
    registry.SourcesOf,
    registry.AddSourceAdmin,
    registry.User,
    registry.Session,
    registry.SourceView,
    # the wallet
    wallet.Deposit,
    wallet.Withdraw,
    wallet.GetBalances,
    wallet.SetBlocked,
    wallet.SetCooldown,
    wallet.GetLimits,
    wallet.SetLimits,
    wallet.Exclude,
    wallet.MoneyMoved,
    wallet.Balance,
    wallet.LimitsView,
    wallet.Excluded,
    limits.PlayerLimits,
    limits.Limit,
    limits.Kind,
    limits.Period,
    # a game
    game.OpenGame,
    game.UpdateDetails,
    game.BecomeAdmin,
    game.IsAdmin,
    game.Details,
    game.Summary,
    game.Close,
    game.CreatePool,
    game.RegisterEvent,
    game.BlockAction,
    game.ForPool,
    game.JoinFrom,
    game.LeaveFrom,
    game.PoolCreated,
    game.GameAcknowledged,
    game.AdminGrant,
    game.GameClosure,
    game.EventRecorded,
    game.EventRegistered,
    game.ActionBlocked,
    game.ActionAllowed,
    game.DetailsChanged,
    game.GameClosed,
    game.PlayerJoined,
    game.PlayerLeft,
    game.ViewersCounted,
    game_domain.GameOpened,
    game_domain.GameDetails,
    game_domain.GameSummary,
    game_domain.GameStatus,
    game_domain.Game,
    rules.PoolRules,
    Joined,
    Broadcast,
    # a pool
    pool_msgs.PlaceBet,
    pool_msgs.GetDistribution,
    pool_msgs.Describe,
    pool_msgs.Block,
    pool_msgs.Allow,
    pool_msgs.ResolveByHand,
    pool_msgs.Void,
    pool_msgs.BetPlaced,
    pool_msgs.PoolDistribution,
    pool_msgs.PoolDescription,
    pool_msgs.PoolClosure,
    pool_msgs.PoolOpened,
    pool_msgs.BetsDistributed,
    pool_msgs.PoolResolved,
    pool_msgs.PoolExpired,
    pool_msgs.PoolBlocked,
    pool_msgs.PoolAllowed,
    pool_domain.PoolType,
    pool_domain.PoolStatus,
    # the directory and the betslip desk
    CreateGame,
    SourceClosure,
    messages.CloseSourceFor,
    messages.PlaceSlip,
    betslip.SlipAnswer,
    # what fields hold
    ErrorCode,
    Role,
)


def _name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


TYPES: dict[str, type] = {_name(kind): kind for kind in _CROSSING}
_NAMES: dict[type, str] = {kind: name for name, kind in TYPES.items()}


class NotForwardable(TypeError):
    """A value of a type that does not cross nodes (not in ``TYPES``)."""


def _tree(value: Any) -> Any:
    """``value`` as builtins msgpack carries, tagged where the type would be lost."""
    if isinstance(value, enum.Enum):  # first: a StrEnum is a str, an IntEnum an int
        return {"$e": _type_name(type(value)), "v": value.value}
    if value is None or isinstance(value, (bool, int, float, bytes, str)):
        return value
    if isinstance(value, Decimal):
        return msgspec.msgpack.Ext(_DECIMAL, str(value).encode())
    if isinstance(value, Fraction):
        return msgspec.msgpack.Ext(_FRACTION, f"{value.numerator}/{value.denominator}".encode())
    if isinstance(value, msgspec.Raw):
        return msgspec.msgpack.Ext(_RAW, bytes(value))
    return _container(value)


def _container(value: Any) -> Any:
    if isinstance(value, list):
        return [_tree(item) for item in value]
    if isinstance(value, tuple):
        return {"$tu": [_tree(item) for item in value]}
    if isinstance(value, (set, frozenset)):
        return {"$s": [_tree(item) for item in value], "frozen": isinstance(value, frozenset)}
    if isinstance(value, dict):
        return {"$d": [[_tree(k), _tree(v)] for k, v in value.items()]}
    if isinstance(value, DomainError):
        return {"$x": error_fields(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _tree(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$t": _type_name(type(value)), "f": fields}
    raise NotForwardable(f"{type(value).__qualname__} does not cross nodes")


def _type_name(kind: type) -> str:
    name = _NAMES.get(kind)
    if name is None:
        raise NotForwardable(f"{_name(kind)} is not a type that crosses nodes")
    return name


def error_fields(error: DomainError) -> dict[str, Any]:
    """A DomainError as ``{code, message, details, unknown}`` (details: its extra fields)."""
    return {
        "code": str(error.code),
        "message": error.text,
        "details": _tree(error.extra),
        "unknown": isinstance(error, OutcomeUnknown),
    }


def _value(tree: Any) -> Any:
    """The Python value of a tree ``_tree`` made."""
    if isinstance(tree, list):
        return [_value(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    if "$t" in tree:
        return _build(TYPES[tree["$t"]], tree["f"])
    if "$d" in tree:
        return {_value(k): _value(v) for k, v in tree["$d"]}
    if "$tu" in tree:
        return tuple(_value(item) for item in tree["$tu"])
    if "$e" in tree:
        return TYPES[tree["$e"]](tree["v"])
    if "$s" in tree:
        items = (_value(item) for item in tree["$s"])
        return frozenset(items) if tree["frozen"] else set(items)
    if "$x" in tree:
        return error_of(tree["$x"])
    raise ValueError(f"not a tagged value: {sorted(tree)}")


def _build(kind: type, fields: dict[str, Any]) -> Any:
    """A dataclass from its fields, without running its constructor's defaults twice."""
    given = {f.name: f for f in dataclasses.fields(kind)}
    made = kind(**{n: _value(v) for n, v in fields.items() if given[n].init})
    for name, raw in fields.items():
        if not given[name].init:
            object.__setattr__(made, name, _value(raw))
    return made


def error_of(fields: dict[str, Any]) -> DomainError:
    """A DomainError from ``{code, message, details, unknown}``: ``OutcomeUnknown`` when
    the outcome is unknown, so the caller's kit treats it as it would a local one."""
    kind = OutcomeUnknown if fields["unknown"] else DomainError
    code = fields["code"]
    known = code in ErrorCode.__members__.values()
    return kind(ErrorCode(code) if known else code, fields["message"], **_value(fields["details"]))


def _ext_value(code: int, data: memoryview) -> Any:
    if code == _DECIMAL:
        return Decimal(bytes(data).decode())
    if code == _FRACTION:
        return Fraction(bytes(data).decode())
    if code == _RAW:
        return msgspec.Raw(bytes(data))
    raise ValueError(f"unknown msgpack ext {code}")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ext_hook=_ext_value)


def encode(value: Any) -> bytes:
    """``value`` (a registered message or reply, a DomainError, builtins) as bytes.

    Raises NotForwardable for a value of a type that does not cross nodes."""
    return _encoder.encode(_tree(value))


def decode(data: bytes) -> Any:
    """The value ``encode`` made ``data`` of (a DomainError comes back as a value, not
    raised). Raises msgspec.DecodeError, KeyError or ValueError on bytes it did not make."""
    return _value(_decoder.decode(data))
