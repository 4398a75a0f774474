"""The one exception type the domain raises for a request it refuses.

The transport layer turns it into a ``res 666`` reply, so it carries exactly what that
reply needs: a stable machine code, a human sentence, and optional extra fields.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request broke a business rule; nothing was changed.

    ``code`` is a stable UPPER_CASE error code (clients switch on it), ``text`` a human
    sentence (clients show it), ``extra`` any further fields for the error message, such as
    ``{"limit": "max_stake"}``.
    """

    def __init__(self, code: str, text: str, **extra: Any) -> None:
        super().__init__(text)
        self.code: str = code
        self.text: str = text
        self.extra: dict[str, Any] = dict(extra)

    def __str__(self) -> str:
        return f"{self.code}: {self.text}"

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.extra.items())
        return f"DomainError({self.code!r}, {self.text!r}{extra})"
