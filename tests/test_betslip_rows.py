"""A betslip's stored answer keeps the code that refused it, not an HTTP status; rows kept
before that (with their status) still replay byte for byte, with the same status."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from domain.betslip import SlipAnswer
from domain.codec import encode
from storage.betslips import stored_slip
from storage.database import Database
from transport.routes_betslips import answer_status

PLACED = encode({"status": "PLACED", "bets": []})
STAKE = encode({"status": "FAILURE", "errorCode": "INVALID_STAKE", "errorMessage": "too much"})
SESSION = encode({"status": "FAILURE", "errorCode": "INVALID_SESSION", "errorMessage": "no"})


def test_rows_kept_with_a_status_read_as_the_answer_they_were(tmp_path: Path) -> None:
    path = tmp_path / "tote.db"
    old = sqlite_utils.Database(path)
    columns = {"key": str, "fingerprint": str, "user_id": int, "status": int, "body": bytes}
    old["betslips"].create({**columns, "created_at": int}, pk="key")  # type: ignore[union-attr]
    kept = {"placed": (200, PLACED), "stake": (400, STAKE), "session": (401, SESSION)}
    for key, (status, body) in kept.items():
        old["betslips"].insert(  # type: ignore[union-attr]
            {"key": key, "fingerprint": "f", "user_id": 1, "status": status, "body": body}
        )
    old.close()

    database = Database(path)  # adds the column and fills it from the bodies
    refusals = []
    for key, (status, body) in kept.items():
        stored = stored_slip(database, key)
        assert stored is not None and stored.body == body
        assert answer_status(SlipAnswer(stored.refusal, stored.body)) == status
        refusals.append(stored.refusal)
    assert refusals == [None, "INVALID_STAKE", "INVALID_SESSION"]
