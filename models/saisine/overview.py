"""The coordinator's page of a saisine in the service: its description, the consultations
and their answers, the orientation, the meetings, the decision and its actions, and what is
awaited from whom. Pages only (it holds the description): never a mail, never Prefect."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session

from models.core.people import Contact, Organisation
from models.core.settings import get_settings
from models.core.waits import Wait
from models.saisine.common import (
    actions_of,
    consultations,
    decision_of,
    meeting_members,
    meetings_of,
    org_label,
    orientations,
)
from models.saisine.level1 import description
from models.saisine.states import (
    ACTION_LABELS,
    CONSULTATION_LABELS,
    MEETING_LABELS,
    STATUS_LABELS,
    ActionStatus,
    ConsultationStatus,
    SaisineStatus,
    wait_label,
)
from models.saisine.tables import MeetingMember, Saisine

FINAL = (SaisineStatus.CLOSED, SaisineStatus.URGENT_CLOSED)


@dataclass(frozen=True)
class ConsultationRow:
    round: int
    structure: str
    contact: str
    status: str
    asked_at: datetime
    deadline: datetime
    answered_at: datetime | None
    knows_situation: str  # "oui", "non" or "—"
    proposal: str


@dataclass(frozen=True)
class MeetingRow:
    starts_at: datetime
    host: str
    status: str
    members: list[str]
    cancel_reason: str


@dataclass(frozen=True)
class ActionRow:
    text: str
    owner: str
    due_on: date
    status: str
    closing_note: str


@dataclass(frozen=True)
class Awaited:
    what: str
    who: str
    due: datetime | None = None


@dataclass
class SaisineOverview:
    saisine_id: int
    reference: str
    status: str
    closed: bool
    received_at: datetime
    channel: str
    referrer: str
    referrer_contact: str
    urgent: bool
    described: bool
    description: list[tuple[str, str]]
    consultations: list[ConsultationRow] = field(default_factory=list)
    orientations: list[tuple[int, str, datetime]] = field(default_factory=list)
    meetings: list[MeetingRow] = field(default_factory=list)
    decision: str = ""
    actions: list[ActionRow] = field(default_factory=list)
    awaited: list[Awaited] = field(default_factory=list)
    close_reason: str = ""
    closed_at: datetime | None = None


def _name(session: Session, contact_id: int) -> str:
    person = session.get(Contact, contact_id)
    return person.name if person else "?"


def _member(session: Session, member: MeetingMember) -> str:
    invited = " (invité)" if member.invited else ""
    came = {None: "", True: " : présent", False: " : absent"}[member.attending]
    return f"{org_label(session, member.organisation_id)}{invited}{came}"


def _awaited(session: Session, saisine: Saisine, waits: list[Wait]) -> list[Awaited]:
    """Who must act now: the partners still silent, the action owners, the run's waits."""
    awaited = [
        Awaited(
            what=f"réponse à la consultation (tour {c.round})",
            who=f"{_name(session, c.contact_id)} ({org_label(session, c.organisation_id)})",
            due=c.deadline,
        )
        for c in consultations(session, saisine, saisine.round)
        if c.status is ConsultationStatus.ASKED
    ]
    awaited += [
        Awaited(
            what=f"action « {a.text} »",
            who=_name(session, a.owner_contact_id),
            due=datetime.combine(a.due_on, datetime.min.time(), get_settings().tz),
        )
        for a in actions_of(session, saisine)
        if a.status is ActionStatus.OPEN
    ]
    awaited += [
        Awaited(what=wait_label(w.step) or w.step, who=w.waiting_on or "la coordination")
        for w in waits
    ]
    return awaited


def saisine_overview(session: Session, saisine: Saisine, waits: list[Wait]) -> SaisineOverview:
    """Everything the coordinator's page shows (`waits`: the case's open waits)."""
    assert saisine.id is not None
    referrer = session.get(Organisation, saisine.referrer_organisation_id)
    closed = saisine.status in FINAL
    decision = decision_of(session, saisine)
    return SaisineOverview(
        saisine_id=saisine.id,
        reference=saisine.reference,
        status=STATUS_LABELS[saisine.status],
        closed=closed,
        received_at=saisine.received_at,
        channel=saisine.channel,
        referrer=referrer.label if referrer else "?",
        referrer_contact=_name(session, saisine.referrer_contact_id),
        urgent=saisine.urgent,
        described=saisine.status is not SaisineStatus.RECEIVED,
        description=description(saisine) if saisine.status is not SaisineStatus.RECEIVED else [],
        consultations=[
            ConsultationRow(
                round=c.round,
                structure=org_label(session, c.organisation_id),
                contact=_name(session, c.contact_id),
                status=CONSULTATION_LABELS[c.status],
                asked_at=c.asked_at,
                deadline=c.deadline,
                answered_at=c.answered_at,
                knows_situation="—"
                if c.knows_situation is None
                else ("oui" if c.knows_situation else "non"),
                proposal=c.proposal or "",
            )
            for c in consultations(session, saisine)
        ],
        orientations=[(o.round, o.text, o.decided_at) for o in orientations(session, saisine)],
        meetings=[
            MeetingRow(
                starts_at=m.starts_at,
                host=org_label(session, m.host_organisation_id),
                status=MEETING_LABELS[m.status],
                members=[_member(session, member) for member in meeting_members(session, m)],
                cancel_reason=m.cancel_reason,
            )
            for m in meetings_of(session, saisine)
        ],
        decision=decision.text if decision else "",
        actions=[
            ActionRow(
                text=a.text,
                owner=_name(session, a.owner_contact_id),
                due_on=a.due_on,
                status=ACTION_LABELS[a.status],
                closing_note=a.closing_note,
            )
            for a in actions_of(session, saisine)
        ],
        awaited=[] if closed else _awaited(session, saisine, waits),
        close_reason=saisine.close_reason,
        closed_at=saisine.closed_at,
    )
