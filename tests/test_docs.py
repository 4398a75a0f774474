"""The docs list what the code does: every op, every response and error code."""

from __future__ import annotations

import re
from pathlib import Path

from domain.errors import ERROR_CODES
from transport.ops import OPS, RESPONSES

PROTOCOL = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
SOURCES = [p for d in ("actors", "domain", "transport", "storage")
           for p in (Path(__file__).parent.parent / d).glob("*.py")]


def test_every_op_is_documented() -> None:
    for spec in OPS.values():
        assert f"| {spec.code} | `{spec.name}` |" in PROTOCOL, spec.name


def test_every_response_code_is_documented() -> None:
    for name, code in RESPONSES.items():
        assert f"| {code} | `{name}` |" in PROTOCOL, name


def test_every_error_code_raised_is_in_the_table_and_the_docs() -> None:
    raised = set()
    for path in SOURCES:
        raised |= set(re.findall(r'DomainError\(\s*"([A-Z_]+)"', path.read_text()))
    assert raised <= set(ERROR_CODES), raised - set(ERROR_CODES)
    for code in ERROR_CODES:
        assert f"| `{code}` |" in PROTOCOL, code
