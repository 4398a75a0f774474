"""The messages only a cluster sends: what an edge asks of the owner's directory and
betslip desk, which are not actors and so have no protocol of their own (docs/cluster.md,
"Requests to the owner")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.directory import SourceClosure
from domain.betslip import SlipAnswer
from kit.runtime import Ask


@dataclass(frozen=True, slots=True)
class CloseSourceFor(Ask[SourceClosure]):
    """The directory's ``close_source`` (op 366), run by the owner's directory."""

    user_id: int
    source_id: str


@dataclass(frozen=True, slots=True)
class PlaceSlip(Ask[SlipAnswer]):
    """A whole betslip (``POST /v1/betslips``): the owner's desk places it and renders its
    answer with the transport's presenter, as on a single node."""

    key: str
    body: Any
    ip: str = ""
