"""The betslip desk's protocol (``actors.betslips.BetslipDesk``, behind
``actors.services.SlipDesk``): a slip's outcome as the desk hands it to the transport's
presenter (``Render``), which turns it into the ``SlipAnswer`` kept and replayed byte for
byte. Declared apart from the desk so ``actors.services`` can type the interface without
importing the actors the desk talks to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.betslip import Slip, SlipAnswer
from domain.errors import DomainError


@dataclass(frozen=True, slots=True)
class SlipPlaced:
    slip: Slip
    bets: list[dict[str, Any]]  # each as answered: as sent, with exact numbers
    at: int


@dataclass(frozen=True, slots=True)
class SlipRefused:
    error: DomainError
    failed_bets: list[dict[str, Any]]


#: The transport's presenter: an outcome as the answer kept and replayed byte for byte.
Render = Callable[[SlipPlaced | SlipRefused], SlipAnswer]
