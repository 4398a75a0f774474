"""Regenerate the tables of docs/protocol.md and docs/operations.md from the code:
``python -m tote.docs``.

The op-code table, the response codes and the error codes each live once in the code;
the docs show them between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers.
"""

from __future__ import annotations

import re
from pathlib import Path

from domain.errors import ERROR_CODES
from tote.config import settings_table
from transport.ops import OPS, RESPONSES
from transport.optable import markdown_table

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
OPERATIONS = PROTOCOL.with_name("operations.md")


def tables() -> dict[str, str]:
    responses = ["| res | name |", "| --- | --- |"] + [
        f"| {code} | `{name}` |" for name, code in sorted(RESPONSES.items(), key=lambda x: x[1])
    ]
    errors = ["| error_code | meaning |", "| --- | --- |"] + [
        f"| `{code}` | {meaning} |" for code, meaning in ERROR_CODES.items()
    ]
    return {
        "ops": markdown_table(OPS),
        "responses": "\n".join(responses),
        "errors": "\n".join(errors),
    }


def operations_tables() -> dict[str, str]:
    return {"settings": settings_table()}


def render(text: str, generated: dict[str, str] | None = None) -> str:
    """``text`` with every marked table replaced (the protocol's unless ``generated``)."""
    for name, table in (tables() if generated is None else generated).items():
        text = re.sub(
            rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)",
            lambda m, t=table: m.group(1) + t + m.group(2),
            text,
            flags=re.S,
        )
    return text


def main() -> None:
    PROTOCOL.write_text(render(PROTOCOL.read_text()))
    OPERATIONS.write_text(render(OPERATIONS.read_text(), operations_tables()))


if __name__ == "__main__":
    main()
