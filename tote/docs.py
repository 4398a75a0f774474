"""Regenerate the tables of docs/protocol.md from the code: ``python -m tote.docs``.

The op-code table, the response codes and the error codes each live once in the code;
the docs show them between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers.
"""

from __future__ import annotations

import re
from pathlib import Path

from domain.errors import ERROR_CODES
from transport.ops import RESPONSES
from transport.optable import markdown_table

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def tables() -> dict[str, str]:
    responses = ["| res | name |", "| --- | --- |"] + [
        f"| {code} | `{name}` |" for name, code in sorted(RESPONSES.items(), key=lambda x: x[1])
    ]
    errors = ["| error_code | meaning |", "| --- | --- |"] + [
        f"| `{code}` | {meaning} |" for code, meaning in ERROR_CODES.items()
    ]
    return {"ops": markdown_table(), "responses": "\n".join(responses), "errors": "\n".join(errors)}


def render(text: str) -> str:
    for name, table in tables().items():
        text = re.sub(
            rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)",
            lambda m, t=table: m.group(1) + t + m.group(2),
            text,
            flags=re.S,
        )
    return text


def main() -> None:
    PROTOCOL.write_text(render(PROTOCOL.read_text()))


if __name__ == "__main__":
    main()
