"""Remote wallet mode (seed 004): the operator keeps the money; tote debits through its
``/bets`` and pays through its ``/winners``, and never loses or creates a cent.

One job a module:

- ``client``: ``OperatorClient`` sends one signed call and says what the answer means.
- ``debits``: ``debit`` pays for a placement (intent, then /bets under one key);
  ``give_up`` hands an undecided debit to the worker.
- ``outbox``: the outbox's rows (``winners_call`` for a settlement) and its ``backlog``.
- ``worker``: ``CallbacksActor`` delivers the outbox until every call is decided.

What callers use is exported here.
"""

from actors.remote.client import MAX_ANSWER_BYTES, OperatorClient
from actors.remote.debits import Debit, debit, give_up
from actors.remote.outbox import backlog, winners_call
from actors.remote.worker import CallbacksActor
from domain.remote import Answer

__all__ = [
    "MAX_ANSWER_BYTES",
    "Answer",
    "CallbacksActor",
    "Debit",
    "OperatorClient",
    "backlog",
    "debit",
    "give_up",
    "winners_call",
]
