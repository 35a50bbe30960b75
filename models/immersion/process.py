"""The immersion process as the catalogue sees it: its case kind, partner steps, mails and
statuses (plain values, built from the step modules)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlmodel import Session, select

from models.core.audit import Actor
from models.core.enums import Status
from models.core.kinds import CaseKind, CaseSummary, StepKind
from models.core.links import StepLink
from models.core.mails import MailContext
from models.immersion import (
    agreements,
    call,
    changes,
    common,
    evaluations,
    meetings,
    placements,
    selection,
)
from models.immersion.common import get_session
from models.immersion.progress import sync_partners
from models.immersion.states import (
    STATUS_LABELS,
    AgreementStatus,
    ApplicationStatus,
    PlacementStatus,
    SessionStatus,
    wait_label,
)
from models.immersion.tables import CASE, ImmersionSession


def _then_sync_partners(kind: StepKind) -> StepKind:
    """The step, followed by the partners' reconciliation: an accepted place gets its host,
    a confirmed host its agreement, at once (the flow's next pass would do it too)."""
    record = kind.record

    def recorded(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
        confirmation = record(session, link, answer, actor)
        sync_partners(session=session, row=get_session(session, link.case_id), actor=actor)
        return confirmation

    return replace(kind, record=recorded)


def _summary(row: ImmersionSession) -> CaseSummary:
    assert row.id is not None
    return CaseSummary(
        case_type=CASE,
        case_id=row.id,
        reference=row.reference,
        status=STATUS_LABELS[row.status],
        clsm_id=row.clsm_id,
        opened_at=row.created_at,
        flow_run_id=row.flow_run_id,
        version=row.version,
    )


def _summaries(session: Session, clsm_id: int) -> list[CaseSummary]:
    return [
        _summary(r)
        for r in session.exec(select(ImmersionSession).where(ImmersionSession.clsm_id == clsm_id))
    ]


def _one(session: Session, case_id: int) -> CaseSummary | None:
    row = session.get(ImmersionSession, case_id)
    return _summary(row) if row else None


CASE_KIND = CaseKind(CASE, "session d'immersion", _summaries, _one, wait_label)
CASE_KINDS: tuple[CaseKind, ...] = (CASE_KIND,)
STEP_KINDS: tuple[StepKind, ...] = (
    call.APPLY,
    changes.CHANGE,
    _then_sync_partners(selection.OFFER),
    _then_sync_partners(placements.HOST),
    agreements.SIGN,
    evaluations.GRID,
    evaluations.HOST_EVALUATION,
)
MAILS: tuple[type[MailContext], ...] = (
    common.AlertMail,
    *call.MAILS,
    *selection.MAILS,
    *placements.MAILS,
    *agreements.MAILS,
    *meetings.MAILS,
    *evaluations.MAILS,
    *changes.MAILS,
)
STATUSES: tuple[type[Status], ...] = (
    SessionStatus,
    ApplicationStatus,
    PlacementStatus,
    AgreementStatus,
)
