"""What a name a person chooses may be: one rule for user, source and game names.

A name is shown to other people and, for users, identifies an account, so it must be
visible, printable, of sane length, and two names that look alike must not both exist.
``display_name`` gives the form to store and show (NFKC, blanks collapsed) or refuses the
name; ``name_key`` gives the form two names are compared by for uniqueness (case, width
and accents folded away, so ``VİCTİM`` and ``victim`` collide).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from domain.errors import DomainError

MAX_NAME_LENGTH = 64

#: Unicode categories a name may not contain: controls, format characters (zero-width
#: joiners, bidi overrides), surrogates, private use, unassigned, line/paragraph breaks.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Letters and symbols that render as nothing (Hangul fillers, the blank Braille pattern,
#: Khmer inherent vowels): a name of only these looks empty.
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5")
#: Scripts that are written together in one name (Japanese mixes all three, Korean two).
_SCRIPT_FAMILIES = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "CJK": "CJK"}


def display_name(value: Any, parameter: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """The name as it is stored and shown, or INVALID_PARAMETER/MISSING_PARAMETER naming
    ``parameter``. Idempotent: a stored name passes unchanged."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DomainError("MISSING_PARAMETER", f"{parameter} is required.", parameter=parameter)
    if not isinstance(value, str):
        raise DomainError(
            "INVALID_PARAMETER", f"{parameter} must be a string.", parameter=parameter
        )
    name = unicodedata.normalize("NFKC", value).strip()
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in name):
        raise _invalid(parameter, "must not contain control or invisible format characters")
    name = " ".join(name.split())  # only spaces are left inside: runs become one
    if len(name) > max_length:
        raise _invalid(parameter, f"must be at most {max_length} characters")
    if not any(_is_visible(ch) for ch in name):
        raise _invalid(parameter, "must contain a visible character")
    if len(_scripts(name)) > 1:
        raise _invalid(parameter, "must not mix letters of different scripts")
    return name


def name_key(name: str) -> str:
    """The form names are compared by: NFKC, case folded, combining marks dropped."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", bare.casefold())


def _is_visible(ch: str) -> bool:
    category = unicodedata.category(ch)
    return not (category[0] in "CZ" or category in ("Mn", "Me") or ch in _BLANK_LOOKING)


def _scripts(name: str) -> set[str]:
    """The scripts of the name's letters (by the first word of their Unicode name)."""
    scripts = set()
    for ch in name:
        if unicodedata.category(ch) in ("Lu", "Ll", "Lt", "Lo"):  # not modifier letters
            script = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
            scripts.add(_SCRIPT_FAMILIES.get(script, script))
    return scripts


def _invalid(parameter: str, rule: str) -> DomainError:
    return DomainError("INVALID_PARAMETER", f"{parameter} {rule}.", parameter=parameter)
