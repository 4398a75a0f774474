"""Structured logs: one ``key=value`` line per record, so that grep and log shippers can
pick fields (``event=refused error_code=RATE_LIMITED``) without parsing prose.

Code logs an event name as the message and its fields as ``extra``::

    log.info("connection_opened", extra={"user_id": 7})

which is written as ``ts=2026-11-22T12:00:00.123Z level=info logger=transport.websocket
event=connection_opened user_id=7``. A value with blanks, quotes or ``=`` is quoted.
"""

from __future__ import annotations

import logging
import re
import time

#: Attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
_BARE = re.compile(r"[^\s\"=\\]+")


def _value(value: object) -> str:
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class KeyValueFormatter(logging.Formatter):
    """``ts=… level=… logger=… event=…`` then the record's extra fields, one line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"event={_value(record.getMessage())}",
        ]
        parts += [
            f"{key}={_value(value)}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        ]
        if record.exc_info:
            parts.append(f"error={_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup(level: str) -> None:
    """Log to stderr at ``level`` and above, one key=value line per record."""
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
