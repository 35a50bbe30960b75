"""Registry of case kinds (immersion session, saisine) for generic pages and checks.

The service lists cases, checks who may see them and shows their history without knowing
each process: every domain module registers a CaseKind here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from models.enums import CaseType


@dataclass(frozen=True)
class CaseSummary:
    case_type: CaseType
    case_id: int
    reference: str  # e.g. "Session « Immersions 2022-2 »", "Saisine 2022-05"
    status: str  # French label
    clsm_id: int
    opened_at: datetime
    flow_run_id: str | None = None
    version: int | None = None  # optimistic locking of coordinator edits, where the case has it


@dataclass(frozen=True)
class CaseKind:
    case_type: CaseType
    label: str  # French, e.g. "session d'immersion"
    summaries: Callable[[Session, int], list[CaseSummary]]
    """All cases of one CLSM."""
    summary: Callable[[Session, int], CaseSummary | None]
    """One case by id, or None."""


CASE_KINDS: dict[CaseType, CaseKind] = {}


def register_case_kind(kind: CaseKind) -> CaseKind:
    CASE_KINDS[kind.case_type] = kind
    return kind


def registered_kinds() -> dict[CaseType, CaseKind]:
    """Every case kind, whichever modules this process imported so far.

    Domain modules register themselves when imported; a process that imported only part
    of them (a flow run of `tick`, say) must still see them all.
    """
    import models.tables  # noqa: F401  (imports every domain module)

    return CASE_KINDS


def case_summary(session: Session, case_type: CaseType, case_id: int) -> CaseSummary | None:
    kind = registered_kinds().get(case_type)
    return kind.summary(session, case_id) if kind else None


def clsm_cases(session: Session, clsm_id: int) -> list[CaseSummary]:
    cases = [c for kind in registered_kinds().values() for c in kind.summaries(session, clsm_id)]
    return sorted(cases, key=lambda c: c.opened_at, reverse=True)
