"""The outbox's rows (table ``remote_calls``): a new call, a settled pool's /winners, a
refund of a debit that placed nothing, and the backlog the status page reads. The debits
write intents here, the settlement its /winners, and the worker delivers them.
"""

from __future__ import annotations

from domain.remote import CallKind, CallState
from storage import remote_calls as calls_store
from storage.changes import Insert
from storage.database import Database
from storage.remote_calls import Backlog, RemoteCall


def winners_call(pool_id: str, now: int) -> Insert:
    """The outbox row of a settled pool's /winners, committed with the settlement."""
    return new_call(f"winners:{pool_id}", CallKind.WINNERS, CallState.QUEUED, now, pool_id=pool_id)


def new_call(
    key: str,
    kind: CallKind,
    state: CallState,
    now: int,
    *,
    user_id: int | None = None,
    pool_id: str | None = None,
    payload: str = "",
) -> Insert:
    """A new outbox row, due now, not tried yet."""
    return Insert(
        "remote_calls",
        {
            "key": key,
            "kind": kind,
            "state": state,
            "user_id": user_id,
            "pool_id": pool_id,
            "payload": payload,
            "created_at": now,
            "attempts": 0,
            "next_at": now,
            "last_error": "",
        },
    )


def refund_call(row: RemoteCall, now: int) -> Insert:
    """The refund of a debit that placed nothing: the debited bets, credited back."""
    return new_call(
        f"refund:{row.key}",
        CallKind.REFUND,
        CallState.QUEUED,
        now,
        user_id=row.user_id,
        payload=row.payload,
    )


def backlog(db: Database) -> Backlog:
    """Read from storage, not asked of the worker: a pass stuck on a hanging operator
    must not hold up the audit."""
    pending = (CallState.UNKNOWN.value, CallState.QUEUED.value, CallState.PLACING.value)
    return calls_store.backlog(db, pending)
