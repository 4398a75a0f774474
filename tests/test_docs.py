"""The docs list what the code does: every op, every response and error code."""

from __future__ import annotations

import re
from pathlib import Path

from domain.errors import ERROR_CODES
from tote.docs import PROTOCOL, render

ROOT = Path(__file__).parent.parent


def test_the_generated_tables_are_up_to_date() -> None:
    text = PROTOCOL.read_text()
    assert render(text) == text, "run `python -m tote.docs`"


def test_every_error_code_raised_is_in_the_table() -> None:
    raised = set()
    for folder in ("actors", "domain", "transport", "storage", "tote"):
        for path in (ROOT / folder).glob("*.py"):
            raised |= set(re.findall(r'DomainError\(\s*"([A-Z_]+)"', path.read_text()))
    assert raised <= set(ERROR_CODES), raised - set(ERROR_CODES)
