"""Immersion sessions ("stages croisés"): tables, data functions, partner steps, report.

One session is one case (case_type SESSION, case_id = session id) and one flow run of the
`immersion-session` deployment. The functions here are the steps: each reads the state,
changes what is still to change, audits it and queues its mails in the caller's
transaction, and does nothing the second time (replays are safe). The decisions themselves
are the pure rules of `models.immersion.rules`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel
from pydantic import Field as FormField
from sqlalchemy import JSON, Column, UniqueConstraint, update
from sqlmodel import Field, Session, SQLModel, col, select

from models.core import clock
from models.core.audit import Actor, record_event
from models.core.base import UTCDateTime
from models.core.calendar import add_business_days, at_local
from models.core.enums import CaseType
from models.core.errors import DomainError, NotFound, StaleUpdate
from models.core.kinds import CaseKind, CaseScope, CaseSummary, StepKind, StepPage
from models.core.links import StepLink, issue_link
from models.core.outbox import CalendarMethod, CalendarPart, OutboxMessage, Recipient, enqueue
from models.core.people import Clsm, Contact, MailAddress, Organisation
from models.core.reminders import plan_reminders, stop_case_reminders, stop_reminders
from models.core.settings import get_settings
from models.core.status import change_status
from models.core.waits import Wait, WaitStatus, wake_case
from models.immersion.rules import (
    ApplicationFacts,
    Assignment,
    Candidate,
    Outcome,
    Participant,
    PlacementFacts,
    ReportFigures,
    SelectionDecision,
    assign_placements,
    check_days,
    reminder_day,
    replacement,
    report_figures,
)
from models.immersion.states import (
    STATUS_LABELS,
    AgreementStatus,
    ApplicationStatus,
    PlacementStatus,
    SessionStatus,
)

CASE = CaseType.SESSION
_T = TypeVar("_T", bound=SQLModel)


# -- tables -----------------------------------------------------------------------------
class ImmersionSessionBase(SQLModel):
    title: str = Field(max_length=200)
    capacity: int = 16
    max_per_structure: int | None = None
    call_opens_on: date
    call_closes_at: datetime = Field(sa_type=UTCDateTime)
    preparation_at: datetime = Field(sa_type=UTCDateTime)
    preparation_end: datetime = Field(sa_type=UTCDateTime)
    preparation_place: str = Field(default="", max_length=300)
    facilitator_name: str = Field(default="", max_length=200)
    facilitator_email: str = Field(default="", max_length=254)
    window_start: date
    window_end: date
    min_days: int = 1
    max_days: int = 5
    restitution_at: datetime = Field(sa_type=UTCDateTime)
    restitution_end: datetime = Field(sa_type=UTCDateTime)
    restitution_place: str = Field(default="", max_length=300)
    withdrawal_cutoff: datetime = Field(sa_type=UTCDateTime)
    offer_days: int = 3


class ImmersionSession(ImmersionSessionBase, table=True):
    __tablename__ = "immersion_session"

    id: int | None = Field(default=None, primary_key=True)
    clsm_id: int = Field(foreign_key="clsm.id", index=True)
    status: SessionStatus = SessionStatus.DRAFT
    version: int = 1
    flow_run_id: str | None = Field(default=None, max_length=36, unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    places: int = 0  # places given at selection (the kept ones)
    empty_places: int = 0  # freed places nobody took (after the cut-off, list exhausted)
    preparation_sequence: int = 0
    restitution_sequence: int = 0
    cancel_reason: str = Field(default="", max_length=500)

    entity_name: ClassVar[str] = "session"

    def audit_case(self) -> tuple[CaseType, int]:
        assert self.id is not None
        return CASE, self.id

    @property
    def reference(self) -> str:
        return f"Session « {self.title} »"


class ImmersionSessionCreate(ImmersionSessionBase):
    clsm_slug: str
    structures: list[str] = []
    host_capacity: int = 2


class InvitedStructure(SQLModel, table=True):
    __tablename__ = "immersion_invited"
    __table_args__ = (UniqueConstraint("session_id", "organisation_id", name="uq_invited"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id")
    host_capacity: int = 2
    declared_capacity: int | None = None


class Application(SQLModel, table=True):
    __tablename__ = "immersion_application"
    __table_args__ = (UniqueConstraint("session_id", "number", name="uq_application_number"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    number: int
    contact_id: int = Field(foreign_key="contact.id")
    organisation_id: int = Field(foreign_key="organisation.id")
    function: str = Field(default="", max_length=200)
    manager_contact_id: int = Field(foreign_key="contact.id")
    motivation: str = Field(default="", max_length=4000)
    wishes: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    availability: str = Field(default="", max_length=1000)
    status: ApplicationStatus = ApplicationStatus.SUBMITTED
    decision_rule: str = Field(default="", max_length=80)
    decision_reason: str = Field(default="", max_length=300)
    waitlist_rank: int | None = None
    ever_selected: bool = False
    promoted: bool = False
    offer_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawal_reason: str = Field(default="", max_length=300)
    submitted_at: datetime = Field(sa_type=UTCDateTime)

    entity_name: ClassVar[str] = "candidature"

    def audit_case(self) -> tuple[CaseType, int]:
        return CASE, self.session_id


class Placement(SQLModel, table=True):
    __tablename__ = "immersion_placement"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    application_id: int = Field(foreign_key="immersion_application.id", index=True)
    host_organisation_id: int = Field(foreign_key="organisation.id")
    host_contact_id: int = Field(foreign_key="contact.id")
    tutor_contact_id: int | None = Field(default=None, foreign_key="contact.id")
    wish_rank: int | None = None
    reason: str = Field(default="", max_length=200)
    pair_application_id: int | None = None
    days: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    may_observe: str = Field(default="", max_length=2000)
    may_not_observe: str = Field(default="", max_length=2000)
    status: PlacementStatus = PlacementStatus.PROPOSED
    calendar_sequence: int = 0

    entity_name: ClassVar[str] = "stage"

    def audit_case(self) -> tuple[CaseType, int]:
        return CASE, self.session_id

    @property
    def day_list(self) -> list[date]:
        return [date.fromisoformat(d) for d in self.days]


class Agreement(SQLModel, table=True):
    __tablename__ = "immersion_agreement"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    placement_id: int = Field(foreign_key="immersion_placement.id", unique=True)
    status: AgreementStatus = AgreementStatus.PENDING
    participant_signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    manager_signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    tutor_signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)

    entity_name: ClassVar[str] = "convention"

    def audit_case(self) -> tuple[CaseType, int]:
        return CASE, self.session_id


class Attendance(SQLModel, table=True):
    __tablename__ = "immersion_attendance"
    __table_args__ = (
        UniqueConstraint("session_id", "meeting", "application_id", name="uq_attendance"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    meeting: str = Field(max_length=20)  # "preparation" | "restitution"
    application_id: int = Field(foreign_key="immersion_application.id")
    present: bool


class ObservationGrid(SQLModel, table=True):
    __tablename__ = "immersion_observation_grid"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    placement_id: int = Field(foreign_key="immersion_placement.id", unique=True)
    missions: str = Field(default="", max_length=4000)
    practices: str = Field(default="", max_length=4000)
    limits: str = Field(default="", max_length=4000)
    submitted_at: datetime = Field(sa_type=UTCDateTime)


class Evaluation(SQLModel, table=True):
    __tablename__ = "immersion_evaluation"
    __table_args__ = (UniqueConstraint("placement_id", "author", name="uq_evaluation"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    placement_id: int = Field(foreign_key="immersion_placement.id")
    author: str = Field(max_length=20)  # "participant" | "host"
    rating: int
    useful: str = Field(default="", max_length=4000)
    improve: str = Field(default="", max_length=4000)
    submitted_at: datetime = Field(sa_type=UTCDateTime)


class SessionReport(SQLModel, table=True):
    __tablename__ = "immersion_report"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", unique=True)
    figures: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)


ACTIVE_PLACEMENT = (PlacementStatus.PROPOSED, PlacementStatus.CONFIRMED, PlacementStatus.SIGNED)


# -- reading ----------------------------------------------------------------------------
def get_session(session: Session, session_id: int) -> ImmersionSession:
    row = session.get(ImmersionSession, session_id)
    if row is None:
        raise NotFound(f"session n°{session_id} introuvable")
    return row


def session_by_run(session: Session, flow_run_id: str) -> ImmersionSession | None:
    return session.exec(
        select(ImmersionSession).where(ImmersionSession.flow_run_id == flow_run_id)
    ).first()


def applications(
    session: Session, session_id: int, *statuses: ApplicationStatus
) -> list[Application]:
    query = select(Application).where(Application.session_id == session_id)
    if statuses:
        query = query.where(col(Application.status).in_(statuses))
    return list(session.exec(query.order_by(col(Application.number))))


def placements(session: Session, session_id: int, *statuses: PlacementStatus) -> list[Placement]:
    query = select(Placement).where(Placement.session_id == session_id)
    if statuses:
        query = query.where(col(Placement.status).in_(statuses))
    return list(session.exec(query.order_by(col(Placement.id))))


def placement_of(session: Session, application_id: int) -> Placement | None:
    return session.exec(
        select(Placement).where(
            Placement.application_id == application_id,
            col(Placement.status).in_(ACTIVE_PLACEMENT),
        )
    ).first()


def agreement_of(session: Session, placement_id: int) -> Agreement | None:
    return session.exec(select(Agreement).where(Agreement.placement_id == placement_id)).first()


def invited(session: Session, session_id: int) -> list[InvitedStructure]:
    return list(
        session.exec(
            select(InvitedStructure)
            .where(InvitedStructure.session_id == session_id)
            .order_by(col(InvitedStructure.id))
        )
    )


def _contact(session: Session, contact_id: int | None) -> Contact:
    row = session.get(Contact, contact_id) if contact_id is not None else None
    if row is None:
        raise NotFound(f"contact n°{contact_id} introuvable")
    return row


def _org(session: Session, organisation_id: int) -> Organisation:
    row = session.get(Organisation, organisation_id)
    if row is None:
        raise NotFound(f"structure n°{organisation_id} introuvable")
    return row


def _org_contact(session: Session, organisation_id: int) -> Contact | None:
    """The structure's referent: its first contact on file."""
    return session.exec(
        select(Contact).where(Contact.organisation_id == organisation_id).order_by(col(Contact.id))
    ).first()


def find_organisation(session: Session, clsm_id: int, name: str) -> Organisation | None:
    """A structure of the CLSM by name or short name (case-insensitive)."""
    wanted = name.strip().casefold()
    for org in session.exec(select(Organisation).where(Organisation.clsm_id == clsm_id)):
        if wanted in (org.name.casefold(), org.short_name.casefold()):
            return org
    return None


def ensure_contact(
    session: Session, *, organisation_id: int, name: str, email: str, function: str = ""
) -> Contact:
    """The contact with this e-mail in this structure, created if missing."""
    row = session.exec(
        select(Contact).where(
            Contact.organisation_id == organisation_id,
            col(Contact.email) == email.strip().lower(),
        )
    ).first()
    if row is None:
        row = Contact(
            organisation_id=organisation_id,
            name=name.strip(),
            email=email.strip().lower(),
            function=function.strip(),
        )
        session.add(row)
        session.flush()
    return row


def _local(moment: datetime) -> datetime:
    return moment.astimezone(get_settings().tz)


def _when(moment: datetime) -> str:
    return f"{_local(moment):%d/%m/%Y à %H:%M}"


def _days_label(days: Sequence[date]) -> str:
    return ", ".join(f"{d:%d/%m/%Y}" for d in days)


def _bump(session: Session, row: ImmersionSession) -> None:
    """Optimistic locking: raise StaleUpdate if the session changed since it was read."""
    result = session.execute(
        update(ImmersionSession)
        .where(col(ImmersionSession.id) == row.id, col(ImmersionSession.version) == row.version)
        .values(version=row.version + 1)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise StaleUpdate(row.reference)
    row.version += 1


def _event(
    session: Session, row_id: int, action: str, actor: Actor, payload: dict[str, Any]
) -> None:
    record_event(
        session=session, case_type=CASE, case_id=row_id, action=action, actor=actor, payload=payload
    )


# -- mails ------------------------------------------------------------------------------
def scope(row: ImmersionSession) -> CaseScope:
    """What this session's mails and reminders are filed under."""
    assert row.id is not None
    return CaseScope(CASE, row.id, row.clsm_id, row.reference)


def _mail(
    session: Session,
    row: ImmersionSession,
    *,
    to: Contact | Recipient,
    template: str,
    dedup_key: str,
    context: dict[str, Any] | None = None,
    calendar: CalendarPart | None = None,
) -> OutboxMessage:
    assert row.id is not None
    recipient = (
        Recipient(email=to.email, name=to.name, contact_id=to.id) if isinstance(to, Contact) else to
    )
    return enqueue(
        session=session,
        scope=scope(row),
        to=recipient,
        template=template,
        context={
            "session_title": row.title,
            "recipient_name": recipient.name,
            **(context or {}),
        },
        dedup_key=dedup_key,
        calendar=calendar,
    )


def _sent(session: Session, row_id: int, dedup_key: str) -> bool:
    return (
        session.exec(
            select(OutboxMessage.id).where(
                OutboxMessage.case_type == CASE.value,
                OutboxMessage.case_id == row_id,
                OutboxMessage.dedup_key == dedup_key,
            )
        ).first()
        is not None
    )


def _link(
    session: Session,
    row: ImmersionSession,
    contact: Contact,
    step: str,
    subject_id: int | None,
    *,
    multi_use: bool = False,
    until: datetime | None = None,
) -> StepLink:
    assert row.id is not None and contact.id is not None
    valid_for = (until - clock.now(session)) if until else None
    return issue_link(
        session=session,
        contact_id=contact.id,
        case_type=CASE,
        case_id=row.id,
        step=step,
        subject_id=subject_id,
        multi_use=multi_use,
        valid_for=valid_for,
    )


def _awaited_link(
    session: Session,
    row: ImmersionSession,
    contact: Contact,
    step: str,
    subject_id: int | None,
    *,
    deadline: datetime,
    step_label: str,
) -> StepLink:
    """A link whose answer is awaited: reminded before `deadline`, escalated after it
    (`models.core.reminders`, sent by tick; the plan stops once the link is used)."""
    link = _link(session, row, contact, step, subject_id)
    plan_reminders(
        session=session,
        scope=scope(row),
        link=link,
        deadline=deadline,
        template_context={"case_label": row.reference, "step_label": step_label},
    )
    return link


def host_deadline(row: ImmersionSession) -> datetime:
    """Hosts confirm five business days before the preparation day (18:00)."""
    day = add_business_days(_local(row.preparation_at).date(), -5)
    return at_local(day, 18, get_settings().tz)


def signature_deadline(row: ImmersionSession) -> datetime:
    """Agreements are signed two business days before the preparation day (18:00)."""
    day = add_business_days(_local(row.preparation_at).date(), -2)
    return at_local(day, 18, get_settings().tz)


def _stop_reminders_of(session: Session, row_id: int, step: str, subject_id: int | None) -> None:
    for link in session.exec(
        select(StepLink).where(
            StepLink.case_type == CASE.value,
            StepLink.case_id == row_id,
            StepLink.step == step,
            StepLink.subject_id == subject_id,
        )
    ):
        stop_reminders(session, link.id or 0, "annulé")


def coordinator(session: Session, row: ImmersionSession) -> Recipient:
    clsm = session.get(Clsm, row.clsm_id)
    assert clsm is not None
    return Recipient(email=clsm.coordinator_email, name=clsm.coordinator_name or "Coordination")


def _meeting(row: ImmersionSession, which: Literal["preparation", "restitution"]) -> CalendarPart:
    if which == "preparation":
        return CalendarPart(
            uid=f"clsm-session-{row.id}-preparation@clsm",
            sequence=row.preparation_sequence,
            method=CalendarMethod.REQUEST,
            summary=f"Journée de préparation — {row.title}",
            start=row.preparation_at.isoformat(),
            end=row.preparation_end.isoformat(),
            location=row.preparation_place,
            description=(
                "Journée de préparation des immersions : représentations des structures, "
                "grille d'observation et évaluation de fin de stage."
            ),
        )
    return CalendarPart(
        uid=f"clsm-session-{row.id}-restitution@clsm",
        sequence=row.restitution_sequence,
        method=CalendarMethod.REQUEST,
        summary=f"Restitution — {row.title}",
        start=row.restitution_at.isoformat(),
        end=row.restitution_end.isoformat(),
        location=row.restitution_place,
        description="Retour d'expériences avec l'ensemble des binômes de la session.",
    )


def _immersion_part(row: ImmersionSession, placement: Placement, host: str) -> CalendarPart:
    days = placement.day_list
    tz = get_settings().tz
    return CalendarPart(
        uid=f"clsm-session-{row.id}-placement-{placement.id}@clsm",
        sequence=placement.calendar_sequence,
        method=CalendarMethod.REQUEST,
        summary=f"Immersion — {host}",
        start=at_local(min(days), 9, tz).isoformat(),
        end=at_local(max(days), 17, tz).isoformat(),
        location=host,
        description=f"Jours d'immersion : {_days_label(days)}",
    )


# -- launch and call for candidates ------------------------------------------------------
def create_session(
    *, session: Session, data: ImmersionSessionCreate, flow_run_id: str, actor: Actor
) -> ImmersionSession:
    """The session of this flow run, created on its first execution (idempotent)."""
    existing = session_by_run(session, flow_run_id)
    if existing is not None:
        return existing
    clsm = session.exec(select(Clsm).where(Clsm.slug == data.clsm_slug)).first()
    if clsm is None or clsm.id is None:
        raise NotFound(f"CLSM « {data.clsm_slug} » introuvable")
    orgs: list[Organisation] = []
    unknown: list[str] = []
    for name in data.structures:
        org = find_organisation(session, clsm.id, name)
        if org is None:
            unknown.append(name)
        elif org not in orgs:
            orgs.append(org)
    if unknown:
        raise DomainError(f"structures inconnues dans ce CLSM : {', '.join(unknown)}")
    if len(orgs) < 2:
        raise DomainError("invitez au moins deux structures (les stages sont croisés)")
    errors = _launch_errors(data)
    if errors:
        raise DomainError("paramètres de la session refusés : " + " ; ".join(errors))
    fields = data.model_dump(exclude={"clsm_slug", "structures", "host_capacity"})
    row = ImmersionSession(
        **fields, clsm_id=clsm.id, flow_run_id=flow_run_id, created_at=clock.now(session)
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    for org in orgs:
        assert org.id is not None
        session.add(
            InvitedStructure(
                session_id=row.id, organisation_id=org.id, host_capacity=data.host_capacity
            )
        )
    session.flush()
    _event(
        session,
        row.id,
        "session.created",
        actor,
        {
            "title": row.title,
            "capacity": row.capacity,
            "max_per_structure": row.max_per_structure,
            "structures": [o.label for o in orgs],
            "flow_run_id": flow_run_id,
        },
    )
    return row


def _launch_errors(data: ImmersionSessionBase) -> list[str]:
    errors: list[str] = []
    if data.capacity < 1:
        errors.append("la capacité doit être d'au moins 1")
    if not 1 <= data.min_days <= data.max_days <= 5:
        errors.append("la durée doit aller de 1 à 5 jours (minimum ≤ maximum)")
    if data.window_end < data.window_start:
        errors.append("la période d'immersion finit avant de commencer")
    if data.preparation_end <= data.preparation_at:
        errors.append("la journée de préparation finit avant de commencer")
    if data.restitution_end <= data.restitution_at:
        errors.append("la restitution finit avant de commencer")
    if data.call_closes_at >= data.preparation_at:
        errors.append("l'appel à candidatures doit se clore avant la journée de préparation")
    return errors


def attach_run(*, session: Session, row: ImmersionSession, flow_run_id: str, actor: Actor) -> None:
    """A session prepared beforehand (demo, import) is carried on by this flow run."""
    if row.flow_run_id == flow_run_id:
        return
    assert row.id is not None
    previous = row.flow_run_id
    row.flow_run_id = flow_run_id
    session.add(row)
    _bump(session, row)
    _event(
        session,
        row.id,
        "session.run-attached",
        actor,
        {"flow_run_id": flow_run_id, "previous": previous},
    )


def open_call(*, session: Session, row: ImmersionSession, actor: Actor) -> int:
    """Mail the call for candidates (a multi-use link) to every invited structure's contacts."""
    assert row.id is not None
    sent = 0
    for inv in invited(session, row.id):
        for contact in session.exec(
            select(Contact).where(Contact.organisation_id == inv.organisation_id)
        ):
            key = f"call-{contact.id}"
            if _sent(session, row.id, key):
                continue
            link = _link(
                session, row, contact, STEP_APPLY, inv.id, multi_use=True, until=row.call_closes_at
            )
            _mail(
                session,
                row,
                to=contact,
                template="immersion_call",
                dedup_key=key,
                context={
                    "link_id": link.id,
                    "closes_at": _when(row.call_closes_at),
                    "capacity": row.capacity,
                    "window": f"du {row.window_start:%d/%m/%Y} au {row.window_end:%d/%m/%Y}",
                    "days": f"{row.min_days} à {row.max_days} jours",
                    "preparation": f"{_when(row.preparation_at)}, {row.preparation_place}",
                    "restitution": f"{_when(row.restitution_at)}, {row.restitution_place}",
                },
            )
            sent += 1
    if row.status is SessionStatus.DRAFT:
        change_status(
            session=session,
            entity=row,
            to=SessionStatus.CALL_OPEN,
            actor=actor,
            details={"invitations": sent},
        )
        _bump(session, row)
    return sent


def close_call_now(*, session: Session, row: ImmersionSession, actor: Actor) -> None:
    """The coordinator closes the call before its date (the flow then moves to selection)."""
    assert row.id is not None
    now = clock.now(session)
    if row.status is not SessionStatus.CALL_OPEN or row.call_closes_at <= now:
        return
    previous = row.call_closes_at
    row.call_closes_at = now
    session.add(row)
    _bump(session, row)
    _event(session, row.id, "call.closed-early", actor, {"planned": previous.isoformat()})


def call_reminder_at(row: ImmersionSession) -> datetime:
    """Two business days before the call closes, at 9:00."""
    tz = get_settings().tz
    return at_local(reminder_day(_local(row.call_closes_at).date()), 9, tz)


def remind_call(*, session: Session, row: ImmersionSession) -> int:
    """Remind the invited contacts that the call closes soon (once)."""
    assert row.id is not None
    count = 0
    for link in session.exec(
        select(StepLink).where(
            StepLink.case_type == CASE.value,
            StepLink.case_id == row.id,
            StepLink.step == STEP_APPLY,
        )
    ):
        contact = _contact(session, link.contact_id)
        key = f"call-reminder-{contact.id}"
        if not _sent(session, row.id, key):
            _mail(
                session,
                row,
                to=contact,
                template="immersion_call_reminder",
                dedup_key=key,
                context={"link_id": link.id, "closes_at": _when(row.call_closes_at)},
            )
            count += 1
    return count


# -- applications -----------------------------------------------------------------------
class ApplicationForm(BaseModel):
    """Formulaire de candidature."""

    name: str = FormField(title="Prénom et nom", min_length=2, max_length=200)
    email: MailAddress = FormField(title="Adresse électronique")
    function: str = FormField(title="Fonction", min_length=2, max_length=200)
    manager_name: str = FormField(title="Nom de votre responsable hiérarchique", max_length=200)
    manager_email: MailAddress = FormField(title="Adresse électronique de votre responsable")
    motivation: str = FormField(
        title="Motivation", description="Ce que vous attendez de l'immersion", max_length=4000
    )
    wishes: list[str] = FormField(
        title="Structures d'accueil souhaitées",
        description="Une par ligne, la préférée en premier (nom ou sigle)",
        min_length=1,
        max_length=5,
    )
    availability: str = FormField(
        default="", title="Disponibilités", description="Jours ou périodes", max_length=1000
    )


class ApplicationChangeForm(BaseModel):
    """Modifier ou retirer sa candidature."""

    action: Literal["modifier", "retirer"] = FormField(default="modifier", title="Je souhaite")
    motivation: str = FormField(default="", title="Motivation", max_length=4000)
    wishes: list[str] = FormField(
        default_factory=list,
        title="Structures d'accueil souhaitées",
        description="Une par ligne, la préférée en premier",
        max_length=5,
    )
    availability: str = FormField(default="", title="Disponibilités", max_length=1000)
    reason: str = FormField(default="", title="Motif du retrait (facultatif)", max_length=300)


def _wish_ids(
    session: Session, row: ImmersionSession, names: Sequence[str], home: int
) -> list[int]:
    assert row.id is not None
    allowed = {inv.organisation_id for inv in invited(session, row.id)}
    ids: list[int] = []
    for name in names:
        org = find_organisation(session, row.clsm_id, name)
        if org is None or org.id not in allowed:
            raise DomainError(f"« {name} » ne fait pas partie des structures de la session")
        if org.id == home:
            raise DomainError(
                f"« {name} » est votre propre structure : choisissez une autre structure"
            )
        if org.id not in ids:
            ids.append(org.id)
    return ids


def submit_application(
    *,
    session: Session,
    row: ImmersionSession,
    organisation_id: int,
    form: ApplicationForm,
    actor: Actor,
) -> Application:
    """Record an application, number it, mail the applicant a personal link."""
    assert row.id is not None
    if row.status is not SessionStatus.CALL_OPEN or clock.now(session) >= row.call_closes_at:
        raise DomainError("l'appel à candidatures est clos")
    wishes = _wish_ids(session, row, form.wishes, organisation_id)
    applicant = ensure_contact(
        session,
        organisation_id=organisation_id,
        name=form.name,
        email=str(form.email),
        function=form.function,
    )
    if any(a.contact_id == applicant.id for a in applications(session, row.id)):
        raise DomainError(
            "vous avez déjà candidaté : utilisez le lien personnel reçu pour modifier"
        )
    manager = ensure_contact(
        session,
        organisation_id=organisation_id,
        name=form.manager_name,
        email=str(form.manager_email),
        function="Responsable hiérarchique",
    )
    last = session.exec(
        select(Application.number)
        .where(Application.session_id == row.id)
        .order_by(col(Application.number).desc())
    ).first()
    assert applicant.id is not None and manager.id is not None
    application = Application(
        session_id=row.id,
        number=(last or 0) + 1,
        contact_id=applicant.id,
        organisation_id=organisation_id,
        function=form.function,
        manager_contact_id=manager.id,
        motivation=form.motivation,
        wishes=wishes,
        availability=form.availability,
        submitted_at=clock.now(session),
    )
    session.add(application)
    session.flush()
    assert application.id is not None
    _event(
        session,
        row.id,
        "application.submitted",
        actor,
        {
            "application_id": application.id,
            "number": application.number,
            "organisation_id": organisation_id,
            "wishes": wishes,
        },
    )
    link = _link(
        session,
        row,
        applicant,
        STEP_CHANGE,
        application.id,
        multi_use=True,
        until=row.withdrawal_cutoff,
    )
    _mail(
        session,
        row,
        to=applicant,
        template="immersion_application_received",
        dedup_key=f"application-{application.id}-received",
        context={
            "link_id": link.id,
            "number": application.number,
            "wishes": [_org(session, w).label for w in wishes],
            "closes_at": _when(row.call_closes_at),
        },
    )
    return application


def change_application(
    *,
    session: Session,
    application: Application,
    form: ApplicationChangeForm,
    actor: Actor,
) -> str:
    row = get_session(session, application.session_id)
    if form.action == "retirer":
        withdraw_application(
            session=session, application=application, actor=actor, reason=form.reason or "retrait"
        )
        return "Votre retrait est enregistré. Merci de nous avoir prévenus."
    if application.status is not ApplicationStatus.SUBMITTED or (
        clock.now(session) >= row.call_closes_at
    ):
        raise DomainError("la candidature ne peut plus être modifiée après la clôture de l'appel")
    changes: dict[str, Any] = {}
    if form.wishes:
        application.wishes = _wish_ids(session, row, form.wishes, application.organisation_id)
        changes["wishes"] = application.wishes
    if form.motivation:
        application.motivation = form.motivation
        changes["motivation"] = True
    if form.availability:
        application.availability = form.availability
        changes["availability"] = True
    if not changes:
        return "Aucune modification indiquée."
    session.add(application)
    assert row.id is not None
    _event(
        session,
        row.id,
        "application.changed",
        actor,
        {"application_id": application.id, **changes},
    )
    return "Votre candidature est modifiée."


def withdraw_application(
    *, session: Session, application: Application, actor: Actor, reason: str
) -> None:
    """Withdraw (participant by link or coordinator); cancels placement and agreement."""
    if application.status is ApplicationStatus.WITHDRAWN:
        return
    if application.status is ApplicationStatus.COMPLETED:
        raise DomainError("l'immersion a déjà eu lieu : le retrait n'est plus possible")
    row = get_session(session, application.session_id)
    if row.status in (SessionStatus.IMMERSION, SessionStatus.EVALUATION) and (
        application.status is ApplicationStatus.SELECTED
    ):
        placement = placement_of(session, application.id or 0)
        if (
            placement
            and placement.days
            and min(placement.day_list) <= _local(clock.now(session)).date()
        ):
            raise DomainError("l'immersion a commencé : le retrait n'est plus possible")
    application.withdrawal_reason = reason[:300]
    change_status(
        session=session,
        entity=application,
        to=ApplicationStatus.WITHDRAWN,
        actor=actor,
        reason=reason,
        details={"number": application.number},
    )
    applicant = _contact(session, application.contact_id)
    invited_to_preparation = _sent(
        session, row.id or 0, f"preparation-{applicant.id}-{row.preparation_sequence}"
    )
    _mail(
        session,
        row,
        to=applicant,
        template="immersion_withdrawal",
        dedup_key=f"application-{application.id}-withdrawn",
        context={"number": application.number},
        # the preparation day leaves the agenda of whoever was invited to it
        calendar=_cancelled(_meeting(row, "preparation")) if invited_to_preparation else None,
    )
    placement = placement_of(session, application.id or 0)
    manage_vacancies(session=session, row=row, actor=actor)
    if placement is not None:
        cancel_placement(
            session=session,
            row=row,
            placement=placement,
            actor=actor,
            reason="retrait du participant",
        )


def cancel_placement(
    *, session: Session, row: ImmersionSession, placement: Placement, actor: Actor, reason: str
) -> None:
    agreement = agreement_of(session, placement.id or 0)
    _stop_reminders_of(session, row.id or 0, STEP_HOST, placement.id)
    if agreement is not None:
        _stop_reminders_of(session, row.id or 0, STEP_SIGN, agreement.id)
    if agreement is not None and agreement.status is not AgreementStatus.CANCELLED:
        change_status(
            session=session,
            entity=agreement,
            to=AgreementStatus.CANCELLED,
            actor=actor,
            reason=reason,
        )
    change_status(
        session=session, entity=placement, to=PlacementStatus.CANCELLED, actor=actor, reason=reason
    )
    host = _contact(session, placement.tutor_contact_id or placement.host_contact_id)
    host_label = _org(session, placement.host_organisation_id).label
    calendar = None
    if placement.days:
        calendar = _cancelled(_immersion_part(row, placement, host_label))
    application = session.get(Application, placement.application_id)
    assert application is not None
    participant = _contact(session, application.contact_id)
    _mail(
        session,
        row,
        to=host,
        template="immersion_placement_cancelled",
        dedup_key=f"placement-{placement.id}-cancelled",
        context={"participant": participant.name, "reason": reason},
        calendar=calendar,
    )
    if calendar is not None and _sent(
        session, row.id or 0, f"placement-{placement.id}-days-participant"
    ):
        # the participant was invited to the days too: they leave their agenda as well
        _mail(
            session,
            row,
            to=participant,
            template="immersion_days_cancelled",
            dedup_key=f"placement-{placement.id}-days-cancelled",
            context={"host": host_label, "days": _days_label(placement.day_list)},
            calendar=calendar,
        )


def _cancelled(part: CalendarPart) -> CalendarPart:
    return CalendarPart(
        **{**part.as_dict(), "method": CalendarMethod.CANCEL, "sequence": part.sequence}
    )


# -- selection --------------------------------------------------------------------------
def selection_proposal(session: Session, row: ImmersionSession) -> list[SelectionDecision]:
    from models.immersion.rules import propose_selection

    assert row.id is not None
    candidates = [
        Candidate(a.id or 0, a.number, a.organisation_id)
        for a in applications(session, row.id, ApplicationStatus.SUBMITTED)
    ]
    return propose_selection(
        candidates, capacity=row.capacity, max_per_structure=row.max_per_structure
    )


def selection_table(
    session: Session, decisions: Sequence[SelectionDecision]
) -> list[dict[str, Any]]:
    """Rows of the selection table (artifact, coordinator form)."""
    rows = []
    for d in decisions:
        application = session.get(Application, d.application_id)
        assert application is not None
        rows.append(
            {
                "n°": d.number,
                "candidat·e": _contact(session, application.contact_id).name,
                "structure": _org(session, application.organisation_id).label,
                "décision": {
                    Outcome.SELECTED: "retenu",
                    Outcome.WAITLISTED: f"liste d'attente ({d.waitlist_rank})",
                    Outcome.NOT_SELECTED: "non retenu",
                }[d.outcome],
                "règle": d.rule.value,
                "motif": d.reason,
            }
        )
    return rows


def record_selection(
    *,
    session: Session,
    row: ImmersionSession,
    decisions: Sequence[SelectionDecision],
    actor: Actor,
) -> None:
    """Apply the approved decisions, mail every applicant, move on to placements."""
    assert row.id is not None
    if row.status is not SessionStatus.SELECTION:
        return
    for d in decisions:
        application = session.get(Application, d.application_id)
        assert application is not None
        if application.status is not ApplicationStatus.SUBMITTED:
            continue  # withdrawn meanwhile
        to = {
            Outcome.SELECTED: ApplicationStatus.SELECTED,
            Outcome.WAITLISTED: ApplicationStatus.WAITLISTED,
            Outcome.NOT_SELECTED: ApplicationStatus.NOT_SELECTED,
        }[d.outcome]
        application.decision_rule = d.rule.value
        application.decision_reason = d.reason
        application.waitlist_rank = d.waitlist_rank
        application.ever_selected = to is ApplicationStatus.SELECTED
        change_status(
            session=session,
            entity=application,
            to=to,
            actor=actor,
            reason=d.reason,
            details={"number": d.number, "rule": d.rule.value},
        )
        template = {
            ApplicationStatus.SELECTED: "immersion_selected",
            ApplicationStatus.WAITLISTED: "immersion_waitlisted",
            ApplicationStatus.NOT_SELECTED: "immersion_not_selected",
        }[to]
        _mail(
            session,
            row,
            to=_contact(session, application.contact_id),
            template=template,
            dedup_key=f"application-{application.id}-decision",
            context={
                "number": application.number,
                "reason": d.reason,
                "rank": d.waitlist_rank or 0,
                "preparation": f"{_when(row.preparation_at)}, {row.preparation_place}",
                "cutoff": _when(row.withdrawal_cutoff),
            },
        )
    row.places = sum(1 for d in decisions if d.outcome is Outcome.SELECTED)
    session.add(row)
    change_status(
        session=session,
        entity=row,
        to=SessionStatus.PLACEMENT,
        actor=actor,
        details={"places": row.places},
    )
    _bump(session, row)


def start_selection(*, session: Session, row: ImmersionSession, actor: Actor) -> None:
    if row.status is SessionStatus.CALL_OPEN:
        change_status(session=session, entity=row, to=SessionStatus.SELECTION, actor=actor)
        _bump(session, row)


# -- withdrawals and the waiting list ---------------------------------------------------
def manage_vacancies(*, session: Session, row: ImmersionSession, actor: Actor) -> datetime | None:
    """Expire late offers, offer freed places; the earliest open offer deadline, if any."""
    assert row.id is not None
    if row.status not in (
        SessionStatus.PLACEMENT,
        SessionStatus.AGREEMENTS,
        SessionStatus.PREPARATION,
    ):
        return None
    now = clock.now(session)
    for offered in applications(session, row.id, ApplicationStatus.OFFERED):
        if offered.offer_deadline is not None and offered.offer_deadline <= now:
            change_status(
                session=session,
                entity=offered,
                to=ApplicationStatus.NOT_SELECTED,
                actor=actor,
                reason="pas de réponse à la proposition dans le délai",
                details={"number": offered.number},
            )
    while True:
        taken = len(
            applications(
                session,
                row.id,
                ApplicationStatus.SELECTED,
                ApplicationStatus.OFFERED,
                ApplicationStatus.COMPLETED,
            )
        )
        if taken + row.empty_places >= row.places:
            break
        waiting = sorted(
            applications(session, row.id, ApplicationStatus.WAITLISTED),
            key=lambda a: (a.waitlist_rank or 10**6, a.number),
        )
        choice = replacement(
            now=now,
            cutoff=row.withdrawal_cutoff,
            waitlist=[a.id or 0 for a in waiting],
            offer_days=row.offer_days,
        )
        if choice.application_id is None:
            row.empty_places += 1
            session.add(row)
            _event(session, row.id, "place.left-empty", actor, {"reason": choice.reason})
            continue
        application = next(a for a in waiting if a.id == choice.application_id)
        application.offer_deadline = choice.offer_deadline
        change_status(
            session=session,
            entity=application,
            to=ApplicationStatus.OFFERED,
            actor=actor,
            reason=choice.reason,
            details={"number": application.number},
        )
        assert choice.offer_deadline is not None
        contact = _contact(session, application.contact_id)
        link = _link(session, row, contact, STEP_OFFER, application.id, until=choice.offer_deadline)
        _mail(
            session,
            row,
            to=contact,
            template="immersion_offer",
            dedup_key=f"application-{application.id}-offer",
            context={
                "link_id": link.id,
                "number": application.number,
                "deadline": _when(choice.offer_deadline),
                "preparation": f"{_when(row.preparation_at)}, {row.preparation_place}",
            },
        )
    deadlines = [
        a.offer_deadline
        for a in applications(session, row.id, ApplicationStatus.OFFERED)
        if a.offer_deadline is not None
    ]
    return min(deadlines) if deadlines else None


class OfferForm(BaseModel):
    """Réponse à une proposition de place."""

    answer: Literal["j'accepte la place", "je décline"] = FormField(
        default="j'accepte la place", title="Votre réponse"
    )


def answer_offer(*, session: Session, application: Application, accept: bool, actor: Actor) -> str:
    if application.status is not ApplicationStatus.OFFERED:
        raise DomainError("cette proposition n'est plus ouverte")
    row = get_session(session, application.session_id)
    if accept:
        application.promoted = True
        application.ever_selected = True
        change_status(
            session=session,
            entity=application,
            to=ApplicationStatus.SELECTED,
            actor=actor,
            reason="place acceptée (liste d'attente)",
            details={"number": application.number},
        )
        ensure_placements(session=session, row=row, actor=actor)
        ensure_invitations(session=session, row=row)
        return "Merci : votre place est confirmée. Vous recevrez la suite par courriel."
    change_status(
        session=session,
        entity=application,
        to=ApplicationStatus.NOT_SELECTED,
        actor=actor,
        reason="place déclinée",
        details={"number": application.number},
    )
    manage_vacancies(session=session, row=row, actor=actor)
    return "Votre réponse est enregistrée : la place sera proposée à la personne suivante."


# -- placements and agreements ----------------------------------------------------------
class HostForm(BaseModel):
    """Confirmation de l'accueil par la structure."""

    tutor_name: str = FormField(title="Tuteur ou tutrice : prénom et nom", max_length=200)
    tutor_email: MailAddress = FormField(title="Adresse électronique du tuteur")
    tutor_function: str = FormField(default="", title="Fonction du tuteur", max_length=200)
    capacity: int = FormField(
        default=1, ge=0, le=16, title="Nombre de stagiaires que la structure peut accueillir"
    )
    days: list[date] = FormField(
        title="Jours d'immersion proposés",
        description="Un jour par ligne (aaaa-mm-jj), jours ouvrés dans la période",
        min_length=1,
        max_length=5,
    )
    may_observe: str = FormField(
        title="Ce que le stagiaire pourra observer", min_length=2, max_length=2000
    )
    may_not_observe: str = FormField(
        title="Ce qu'il ne pourra pas observer (secret professionnel)",
        min_length=2,
        max_length=2000,
    )


def ensure_placements(*, session: Session, row: ImmersionSession, actor: Actor) -> list[Placement]:
    """Give a host to every kept participant who has none; ask the host to confirm."""
    assert row.id is not None
    waiting = [
        a
        for a in applications(session, row.id, ApplicationStatus.SELECTED)
        if placement_of(session, a.id or 0) is None
        and not _unplaceable_known(session, row.id, a.id or 0)
    ]
    if not waiting:
        return []
    hosts = invited(session, row.id)
    active = placements(session, row.id, *ACTIVE_PLACEMENT)
    free = {
        h.organisation_id: (
            h.declared_capacity if h.declared_capacity is not None else h.host_capacity
        )
        - sum(1 for p in active if p.host_organisation_id == h.organisation_id)
        for h in hosts
    }
    result = assign_placements(
        [Participant(a.id or 0, a.number, a.organisation_id, tuple(a.wishes)) for a in waiting],
        {h: max(n, 0) for h, n in free.items()},
    )
    created: list[Placement] = []
    for assignment in result:
        created_one = _create_placement(session, row, assignment, actor)
        if created_one is not None:
            created.append(created_one)
    return created


def _unplaceable_known(session: Session, row_id: int, application_id: int) -> bool:
    return _sent(session, row_id, f"application-{application_id}-unplaced")


def _create_placement(
    session: Session, row: ImmersionSession, assignment: Assignment, actor: Actor
) -> Placement | None:
    assert row.id is not None
    application = session.get(Application, assignment.application_id)
    assert application is not None
    if assignment.host_id is None:
        _event(
            session,
            row.id,
            "placement.unassigned",
            actor,
            {"application_id": application.id, "reason": assignment.reason},
        )
        _mail(
            session,
            row,
            to=coordinator(session, row),
            template="immersion_alert",
            dedup_key=f"application-{application.id}-unplaced",
            context={
                "alert": f"Aucune structure d'accueil pour la candidature n°{application.number} "
                f"({_contact(session, application.contact_id).name}) : {assignment.reason}."
            },
        )
        return None
    referent = _org_contact(session, assignment.host_id)
    if referent is None or referent.id is None:
        raise DomainError(f"la structure n°{assignment.host_id} n'a aucun contact")
    placement = Placement(
        session_id=row.id,
        application_id=assignment.application_id,
        host_organisation_id=assignment.host_id,
        host_contact_id=referent.id,
        wish_rank=assignment.wish_rank,
        reason=assignment.reason,
        pair_application_id=assignment.pair_with,
    )
    session.add(placement)
    session.flush()
    _event(
        session,
        row.id,
        "placement.proposed",
        actor,
        {
            "placement_id": placement.id,
            "application_id": application.id,
            "host_id": assignment.host_id,
            "reason": assignment.reason,
        },
    )
    participant = _contact(session, application.contact_id)
    link = _awaited_link(
        session,
        row,
        referent,
        STEP_HOST,
        placement.id,
        deadline=host_deadline(row),
        step_label=f"confirmer l'accueil de {participant.name}",
    )
    _mail(
        session,
        row,
        to=referent,
        template="immersion_host_request",
        dedup_key=f"placement-{placement.id}-host-request",
        context={
            "link_id": link.id,
            "participant": participant.name,
            "participant_function": application.function,
            "home": _org(session, application.organisation_id).label,
            "window": f"du {row.window_start:%d/%m/%Y} au {row.window_end:%d/%m/%Y}",
            "days": f"{row.min_days} à {row.max_days} jours",
            "availability": application.availability or "non précisées",
        },
    )
    return placement


def confirm_host(*, session: Session, placement: Placement, form: HostForm, actor: Actor) -> str:
    row = get_session(session, placement.session_id)
    if placement.status is not PlacementStatus.PROPOSED:
        raise DomainError("cet accueil est déjà confirmé ou annulé")
    errors = check_days(
        form.days,
        window_start=row.window_start,
        window_end=row.window_end,
        min_days=row.min_days,
        max_days=row.max_days,
    )
    if errors:
        raise DomainError("Jours refusés : " + " ; ".join(errors))
    tutor = ensure_contact(
        session,
        organisation_id=placement.host_organisation_id,
        name=form.tutor_name,
        email=str(form.tutor_email),
        function=form.tutor_function,
    )
    placement.tutor_contact_id = tutor.id
    placement.days = [d.isoformat() for d in sorted(form.days)]
    placement.may_observe = form.may_observe
    placement.may_not_observe = form.may_not_observe
    assert row.id is not None
    for inv in invited(session, row.id):
        if inv.organisation_id == placement.host_organisation_id:
            inv.declared_capacity = form.capacity
            session.add(inv)
    change_status(
        session=session,
        entity=placement,
        to=PlacementStatus.CONFIRMED,
        actor=actor,
        details={
            "placement_id": placement.id,
            "tutor_contact_id": tutor.id,
            "days": placement.days,
            "capacity": form.capacity,
            "may_observe": form.may_observe,
            "may_not_observe": form.may_not_observe,
        },
    )
    ensure_agreements(session=session, row=row, actor=actor)
    return (
        f"Merci : l'accueil est confirmé ({len(form.days)} jour(s)). La convention de stage "
        "va être envoyée pour signature."
    )


Party = Literal["participant", "manager", "tutor"]
PARTY_LABELS: dict[str, str] = {
    "participant": "le ou la stagiaire",
    "manager": "le ou la responsable de la structure d'origine",
    "tutor": "le tuteur ou la tutrice de la structure d'accueil",
}


def _participant(session: Session, placement: Placement) -> Contact:
    application = session.get(Application, placement.application_id)
    assert application is not None
    return _contact(session, application.contact_id)


def _parties(session: Session, placement: Placement) -> dict[str, Contact]:
    application = session.get(Application, placement.application_id)
    assert application is not None
    return {
        "participant": _contact(session, application.contact_id),
        "manager": _contact(session, application.manager_contact_id),
        "tutor": _contact(session, placement.tutor_contact_id),
    }


def ensure_agreements(*, session: Session, row: ImmersionSession, actor: Actor) -> list[Agreement]:
    """A tripartite agreement for every confirmed placement, mailed to the three parties."""
    assert row.id is not None
    created: list[Agreement] = []
    for placement in placements(session, row.id, PlacementStatus.CONFIRMED):
        if agreement_of(session, placement.id or 0) is not None:
            continue
        agreement = Agreement(
            session_id=row.id, placement_id=placement.id or 0, created_at=clock.now(session)
        )
        session.add(agreement)
        session.flush()
        _event(
            session,
            row.id,
            "agreement.created",
            actor,
            {"agreement_id": agreement.id, "placement_id": placement.id},
        )
        for party, contact in _parties(session, placement).items():
            link = _awaited_link(
                session,
                row,
                contact,
                STEP_SIGN,
                agreement.id,
                deadline=signature_deadline(row),
                step_label="signer la convention de stage",
            )
            _mail(
                session,
                row,
                to=contact,
                template="immersion_agreement",
                dedup_key=f"agreement-{agreement.id}-{party}",
                context={"link_id": link.id, **_agreement_context(session, placement, party)},
            )
        created.append(agreement)
    return created


def _agreement_context(session: Session, placement: Placement, party: str) -> dict[str, Any]:
    application = session.get(Application, placement.application_id)
    assert application is not None
    parties = _parties(session, placement)
    return {
        "party": PARTY_LABELS[party],
        "participant": parties["participant"].name,
        "home": _org(session, application.organisation_id).label,
        "host": _org(session, placement.host_organisation_id).label,
        "tutor": parties["tutor"].name,
        "days": _days_label(placement.day_list),
        "may_observe": placement.may_observe,
        "may_not_observe": placement.may_not_observe,
    }


class SignatureForm(BaseModel):
    """Signature de la convention de stage."""

    agree: bool = FormField(
        default=False,
        title="J'ai lu la convention de stage et je la signe",
    )
    confidentiality: bool = FormField(
        default=False,
        title="Je m'engage à respecter le cadre d'observation et le secret professionnel",
    )


def sign_agreement(
    *, session: Session, agreement: Agreement, contact_id: int, form: SignatureForm, actor: Actor
) -> str:
    if not (form.agree and form.confidentiality):
        raise DomainError("cochez les deux cases pour signer la convention")
    if agreement.status is not AgreementStatus.PENDING:
        raise DomainError("cette convention n'attend plus de signature")
    placement = session.get(Placement, agreement.placement_id)
    assert placement is not None
    parties = [p for p, c in _parties(session, placement).items() if c.id == contact_id]
    if not parties:
        raise DomainError("vous n'êtes pas partie à cette convention")
    now = clock.now(session)
    signed = []
    for party in parties:
        attribute = f"{party}_signed_at"
        if getattr(agreement, attribute) is None:
            setattr(agreement, attribute, now)
            signed.append(party)
    session.add(agreement)
    _event(
        session,
        agreement.session_id,
        "agreement.signed",
        actor,
        {"agreement_id": agreement.id, "parties": signed},
    )
    if all(
        getattr(agreement, f"{p}_signed_at") is not None
        for p in ("participant", "manager", "tutor")
    ):
        change_status(session=session, entity=agreement, to=AgreementStatus.SIGNED, actor=actor)
        change_status(session=session, entity=placement, to=PlacementStatus.SIGNED, actor=actor)
        return "Merci : la convention est signée par les trois parties."
    return "Merci : votre signature est enregistrée. La convention attend les autres signatures."


def placements_confirmed(session: Session, row: ImmersionSession) -> bool:
    assert row.id is not None
    return not placements(session, row.id, PlacementStatus.PROPOSED) and not applications(
        session, row.id, ApplicationStatus.OFFERED
    )


def agreements_signed(session: Session, row: ImmersionSession) -> bool:
    assert row.id is not None
    return placements_confirmed(session, row) and not placements(
        session, row.id, PlacementStatus.CONFIRMED
    )


def advance_to(
    *, session: Session, row: ImmersionSession, to: SessionStatus, actor: Actor, reason: str = ""
) -> None:
    """Move the session on (no-op if it is already there: replays)."""
    if row.status is to:
        return
    change_status(session=session, entity=row, to=to, actor=actor, reason=reason)
    _bump(session, row)


def next_offer_deadline(session: Session, row: ImmersionSession) -> datetime | None:
    assert row.id is not None
    deadlines = [
        a.offer_deadline
        for a in applications(session, row.id, ApplicationStatus.OFFERED)
        if a.offer_deadline is not None
    ]
    return min(deadlines) if deadlines else None


def awaited(session: Session, row: ImmersionSession) -> list[str]:
    """Who the session waits for now (French, for the run's progress artifact)."""
    assert row.id is not None
    people: list[str] = []
    if row.status is SessionStatus.CALL_OPEN:
        people.append(f"candidatures jusqu'au {_when(row.call_closes_at)}")
    for placement in placements(session, row.id, PlacementStatus.PROPOSED):
        host = _org(session, placement.host_organisation_id).label
        people.append(
            f"{host} : confirmation de l'accueil de {_participant(session, placement).name}"
        )
    for placement in placements(session, row.id, PlacementStatus.CONFIRMED):
        agreement = agreement_of(session, placement.id or 0)
        if agreement is None:
            continue
        for party, contact in _parties(session, placement).items():
            if getattr(agreement, f"{party}_signed_at") is None:
                people.append(f"{contact.name} : signature de la convention")
    for application in applications(session, row.id, ApplicationStatus.OFFERED):
        people.append(
            f"{_contact(session, application.contact_id).name} : réponse à la place proposée"
        )
    if row.status is SessionStatus.EVALUATION:
        for placement, author in missing_evaluations(session, row):
            who = "stagiaire" if author == "participant" else "tuteur"
            people.append(f"évaluation ({who}) : {_participant(session, placement).name}")
    wait = session.exec(
        select(Wait).where(
            Wait.case_type == CASE.value, Wait.case_id == row.id, Wait.status == WaitStatus.OPEN
        )
    ).first()
    if wait is not None and wait.waiting_on and not people:
        people.append(wait.waiting_on)
    return people


def close_stale_waits(*, session: Session, row: ImmersionSession, keep: set[str]) -> int:
    """Close the waits of finished phases (a resumed run may skip the wait it was in)."""
    from models.core.waits import close_wait, next_generation, open_waits

    stale = [w for w in open_waits(session, CASE) if w.case_id == row.id and w.step not in keep]
    for wait in stale:
        next_generation(session=session, wait=wait)
        close_wait(session=session, wait=wait)
    return len(stale)


def participant_numbers(session: Session, row: ImmersionSession) -> tuple[list[int], list[str]]:
    people = _participants(session, row)
    return [a.number for a in people], [_contact(session, a.contact_id).name for a in people]


def note_refused_form(
    *, session: Session, row: ImmersionSession, step: str, error: str, actor: Actor
) -> None:
    """A coordinator's form answer that the rules refused: audited, asked again."""
    assert row.id is not None
    _event(session, row.id, "form.refused", actor, {"step": step, "error": error})


def last_refusal(session: Session, row: ImmersionSession, step: str) -> str:
    from models.core.audit import AuditEvent

    assert row.id is not None
    event = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.case_type == CASE.value,
            AuditEvent.case_id == row.id,
            AuditEvent.action == "form.refused",
        )
        .order_by(col(AuditEvent.seq).desc())
    ).first()
    if event is None or not event.payload or event.payload.get("step") != step:
        return ""
    return str(event.payload.get("error", ""))


# -- meetings ---------------------------------------------------------------------------
def _participants(session: Session, row: ImmersionSession) -> list[Application]:
    assert row.id is not None
    return applications(session, row.id, ApplicationStatus.SELECTED, ApplicationStatus.COMPLETED)


def ensure_invitations(*, session: Session, row: ImmersionSession) -> int:
    """Preparation-day invitation (calendar REQUEST) to participants and the facilitator."""
    assert row.id is not None
    if row.status in (SessionStatus.CANCELLED, SessionStatus.CLOSED):
        return 0
    part = _meeting(row, "preparation")
    context = {
        "when": _when(row.preparation_at),
        "place": row.preparation_place,
        "facilitator": row.facilitator_name or "la coordination",
    }
    count = 0
    recipients: list[tuple[str, Contact | Recipient]] = [
        (f"preparation-{a.contact_id}-{row.preparation_sequence}", _contact(session, a.contact_id))
        for a in _participants(session, row)
    ]
    if row.facilitator_email:
        recipients.append(
            (
                f"preparation-facilitator-{row.preparation_sequence}",
                Recipient(email=row.facilitator_email, name=row.facilitator_name),
            )
        )
    for key, to in recipients:
        if not _sent(session, row.id, key):
            _mail(
                session,
                row,
                to=to,
                template="immersion_preparation",
                dedup_key=key,
                context=context,
                calendar=part,
            )
            count += 1
    return count


def record_attendance(
    *,
    session: Session,
    row: ImmersionSession,
    meeting: Literal["preparation", "restitution"],
    present_numbers: Sequence[int],
    actor: Actor,
) -> None:
    assert row.id is not None
    people = _participants(session, row)
    known = {a.number for a in people}
    unknown = sorted(set(present_numbers) - known)
    if unknown:
        raise DomainError(f"numéros inconnus parmi les participants : {unknown}")
    for application in people:
        exists = session.exec(
            select(Attendance).where(
                Attendance.session_id == row.id,
                Attendance.meeting == meeting,
                Attendance.application_id == application.id,
            )
        ).first()
        if exists is None:
            session.add(
                Attendance(
                    session_id=row.id,
                    meeting=meeting,
                    application_id=application.id or 0,
                    present=application.number in present_numbers,
                )
            )
    _event(
        session,
        row.id,
        f"attendance.{meeting}",
        actor,
        {"present": sorted(present_numbers), "expected": sorted(known)},
    )


def immersion_end(session: Session, row: ImmersionSession) -> datetime:
    """After the last immersion day (or the window's end if no day is known), at 18:00."""
    assert row.id is not None
    days = [d for p in placements(session, row.id, PlacementStatus.SIGNED) for d in p.day_list]
    last = max(days) if days else row.window_end
    return at_local(min(last, row.window_end), 18, get_settings().tz)


def immersion_notices(*, session: Session, row: ImmersionSession) -> datetime | None:
    """Calendar parts for signed placements, reminders two business days before; alerts
    for unsigned ones. Returns when the next reminder is due (None: all sent)."""
    assert row.id is not None
    tz = get_settings().tz
    now = clock.now(session)
    upcoming: list[datetime] = []
    for placement in placements(session, row.id, PlacementStatus.SIGNED):
        host = _org(session, placement.host_organisation_id).label
        part = _immersion_part(row, placement, host)
        parties = _parties(session, placement)
        context = {
            "participant": parties["participant"].name,
            "tutor": parties["tutor"].name,
            "host": host,
            "days": _days_label(placement.day_list),
            "may_observe": placement.may_observe,
            "may_not_observe": placement.may_not_observe,
        }
        remind_at = at_local(reminder_day(min(placement.day_list)), 9, tz)
        for who in ("participant", "tutor"):
            _mail(
                session,
                row,
                to=parties[who],
                template="immersion_days",
                dedup_key=f"placement-{placement.id}-days-{who}",
                context=context,
                calendar=part,
            )
            if now >= remind_at:
                _mail(
                    session,
                    row,
                    to=parties[who],
                    template="immersion_day_reminder",
                    dedup_key=f"placement-{placement.id}-reminder-{who}",
                    context=context,
                )
        if now < remind_at:
            upcoming.append(remind_at)
    unsigned = placements(session, row.id, PlacementStatus.PROPOSED, PlacementStatus.CONFIRMED)
    if unsigned:
        names = [_participant(session, p).name for p in unsigned]
        _mail(
            session,
            row,
            to=coordinator(session, row),
            template="immersion_alert",
            dedup_key="immersion-unsigned",
            context={
                "alert": "Immersions sans convention signée (elles ne peuvent pas "
                "commencer) : " + ", ".join(names) + "."
            },
        )
    return min(upcoming) if upcoming else None


def finish_immersions(*, session: Session, row: ImmersionSession, actor: Actor) -> None:
    """Signed placements are done; their participants have completed the session."""
    assert row.id is not None
    for placement in placements(session, row.id, PlacementStatus.SIGNED):
        change_status(session=session, entity=placement, to=PlacementStatus.DONE, actor=actor)
        application = session.get(Application, placement.application_id)
        assert application is not None
        if application.status is ApplicationStatus.SELECTED:
            change_status(
                session=session, entity=application, to=ApplicationStatus.COMPLETED, actor=actor
            )


# -- evaluations ------------------------------------------------------------------------
class ParticipantEvaluationForm(BaseModel):
    """Grille d'observation et évaluation de fin de stage (stagiaire)."""

    missions: str = FormField(
        title="Missions et publics de la structure observés", min_length=2, max_length=4000
    )
    practices: str = FormField(
        title="Pratiques et outils de travail observés", min_length=2, max_length=4000
    )
    limits: str = FormField(
        title="Limites d'intervention et leviers de coopération", min_length=2, max_length=4000
    )
    rating: int = FormField(default=4, ge=1, le=5, title="Satisfaction globale (1 à 5)")
    useful: str = FormField(default="", title="Ce qui vous a été utile", max_length=4000)
    improve: str = FormField(default="", title="Ce qui pourrait être amélioré", max_length=4000)


class HostEvaluationForm(BaseModel):
    """Évaluation de fin de stage (structure d'accueil)."""

    rating: int = FormField(default=4, ge=1, le=5, title="Satisfaction globale (1 à 5)")
    useful: str = FormField(default="", title="Ce que l'accueil a apporté", max_length=4000)
    improve: str = FormField(default="", title="Ce qui pourrait être amélioré", max_length=4000)


def request_evaluations(*, session: Session, row: ImmersionSession) -> int:
    """Observation grid + evaluation links to participants, host evaluation to tutors."""
    assert row.id is not None
    count = 0
    for placement in placements(session, row.id, PlacementStatus.DONE):
        parties = _parties(session, placement)
        host = _org(session, placement.host_organisation_id).label
        for who, step, template in (
            ("participant", STEP_GRID, "immersion_evaluation"),
            ("tutor", STEP_HOST_EVAL, "immersion_host_evaluation"),
        ):
            key = f"placement-{placement.id}-evaluation-{who}"
            if _sent(session, row.id, key):
                continue
            link = _awaited_link(
                session,
                row,
                parties[who],
                step,
                placement.id,
                deadline=row.restitution_at,
                step_label="remplir l'évaluation de fin de stage",
            )
            _mail(
                session,
                row,
                to=parties[who],
                template=template,
                dedup_key=key,
                context={
                    "link_id": link.id,
                    "host": host,
                    "participant": parties["participant"].name,
                    "restitution": _when(row.restitution_at),
                },
            )
            count += 1
    return count


def missing_evaluations(session: Session, row: ImmersionSession) -> list[tuple[Placement, str]]:
    assert row.id is not None
    missing = []
    for placement in placements(session, row.id, PlacementStatus.DONE):
        authors = {
            e.author
            for e in session.exec(select(Evaluation).where(Evaluation.placement_id == placement.id))
        }
        for author in ("participant", "host"):
            if author not in authors:
                missing.append((placement, author))
    return missing


def record_evaluation(
    *,
    session: Session,
    placement: Placement,
    author: Literal["participant", "host"],
    form: ParticipantEvaluationForm | HostEvaluationForm,
    actor: Actor,
) -> str:
    exists = session.exec(
        select(Evaluation).where(
            Evaluation.placement_id == placement.id, Evaluation.author == author
        )
    ).first()
    if exists is not None:
        raise DomainError("cette évaluation a déjà été envoyée")
    now = clock.now(session)
    if isinstance(form, ParticipantEvaluationForm):
        session.add(
            ObservationGrid(
                session_id=placement.session_id,
                placement_id=placement.id or 0,
                missions=form.missions,
                practices=form.practices,
                limits=form.limits,
                submitted_at=now,
            )
        )
    session.add(
        Evaluation(
            session_id=placement.session_id,
            placement_id=placement.id or 0,
            author=author,
            rating=form.rating,
            useful=form.useful,
            improve=form.improve,
            submitted_at=now,
        )
    )
    session.flush()
    _event(
        session,
        placement.session_id,
        f"evaluation.{author}",
        actor,
        {"placement_id": placement.id, "rating": form.rating},
    )
    return "Merci : votre évaluation est enregistrée. Elle nourrira la restitution et le bilan."


def ensure_restitution_invitations(*, session: Session, row: ImmersionSession) -> int:
    """Restitution invitation (calendar REQUEST) to participants, tutors and facilitator."""
    assert row.id is not None
    part = _meeting(row, "restitution")
    context = {"when": _when(row.restitution_at), "place": row.restitution_place}
    recipients: dict[str, Contact | Recipient] = {}
    for placement in placements(session, row.id, PlacementStatus.DONE):
        for contact in (_parties(session, placement)[w] for w in ("participant", "tutor")):
            recipients[f"restitution-{contact.id}-{row.restitution_sequence}"] = contact
    if row.facilitator_email:
        recipients[f"restitution-facilitator-{row.restitution_sequence}"] = Recipient(
            email=row.facilitator_email, name=row.facilitator_name
        )
    count = 0
    for key, to in recipients.items():
        if not _sent(session, row.id, key):
            _mail(
                session,
                row,
                to=to,
                template="immersion_restitution",
                dedup_key=key,
                context=context,
                calendar=part,
            )
            count += 1
    return count


# -- cancellation and moves -------------------------------------------------------------
def _invited_to(session: Session, row_id: int, prefix: str) -> list[OutboxMessage]:
    """Messages that carried a calendar part whose dedup key starts with prefix."""
    return [
        m
        for m in session.exec(
            select(OutboxMessage).where(
                OutboxMessage.case_type == CASE.value, OutboxMessage.case_id == row_id
            )
        )
        if m.dedup_key.startswith(prefix)
        and m.calendar is not None
        and m.calendar.get("method") == CalendarMethod.REQUEST.value
    ]


def move_meeting(
    *,
    session: Session,
    row: ImmersionSession,
    meeting: Literal["preparation", "restitution"],
    start: datetime,
    end: datetime,
    place: str,
    actor: Actor,
) -> int:
    """Move a meeting: a calendar update (higher SEQUENCE) to everyone already invited."""
    assert row.id is not None
    if end <= start:
        raise DomainError("la réunion finit avant de commencer")
    invited_before = {
        (m.recipient_email, m.recipient_name, m.contact_id)
        for m in _invited_to(session, row.id, f"{meeting}-")
    }
    if meeting == "preparation":
        row.preparation_at, row.preparation_end, row.preparation_place = start, end, place
        row.preparation_sequence += 1
        sequence = row.preparation_sequence
    else:
        row.restitution_at, row.restitution_end, row.restitution_place = start, end, place
        row.restitution_sequence += 1
        sequence = row.restitution_sequence
    session.add(row)
    _bump(session, row)
    _event(
        session,
        row.id,
        "meeting.moved",
        actor,
        {
            "meeting": meeting,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "place": place,
            "sequence": sequence,
        },
    )
    part = _meeting(row, meeting)
    for email, name, contact_id in sorted(invited_before, key=lambda t: t[0]):
        _mail(
            session,
            row,
            to=Recipient(email, name, contact_id),
            template="immersion_meeting_moved",
            dedup_key=f"{meeting}-moved-{email}-{sequence}",
            context={
                "meeting": "journée de préparation" if meeting == "preparation" else "restitution",
                "when": _when(start),
                "place": place,
            },
            calendar=part,
        )
    return len(invited_before)


def cancel_session(*, session: Session, row: ImmersionSession, actor: Actor, reason: str) -> int:
    """Cancel the session: calendar CANCEL to everyone invited, a mail to every applicant."""
    assert row.id is not None
    if row.status is SessionStatus.CANCELLED:
        return 0
    row.cancel_reason = reason
    change_status(
        session=session, entity=row, to=SessionStatus.CANCELLED, actor=actor, reason=reason
    )
    stop_case_reminders(session, CASE, row.id)
    _bump(session, row)
    count = 0
    for message in _invited_to(session, row.id, ""):
        assert message.calendar is not None
        part = CalendarPart.from_dict(message.calendar)
        cancel = CalendarPart(
            **{**part.as_dict(), "method": CalendarMethod.CANCEL, "sequence": part.sequence + 1}
        )
        _mail(
            session,
            row,
            to=Recipient(message.recipient_email, message.recipient_name, message.contact_id),
            template="immersion_session_cancelled",
            dedup_key=f"cancel-{message.id}",
            context={"reason": reason, "meeting": part.summary},
            calendar=cancel,
        )
        count += 1
    for application in applications(session, row.id):
        key = f"cancel-application-{application.id}"
        if application.status is not ApplicationStatus.WITHDRAWN and not _sent(
            session, row.id, key
        ):
            _mail(
                session,
                row,
                to=_contact(session, application.contact_id),
                template="immersion_session_cancelled",
                dedup_key=key,
                context={"reason": reason, "meeting": ""},
            )
            count += 1
    return count


def cancel_and_wake(*, session: Session, row: ImmersionSession, actor: Actor, reason: str) -> int:
    """Cancel the session (coordinator, through the service) and wake its run so it ends.

    Returns the number of mails queued; the caller delivers the resumes
    (`models.core.runs.deliver_resumes`) after the commit.
    """
    count = cancel_session(session=session, row=row, actor=actor, reason=reason)
    assert row.id is not None
    wake_case(session=session, case_type=CASE, case_id=row.id)
    return count


# -- report -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionReportData:
    session_id: int
    title: str
    clsm: str
    status: str
    figures: ReportFigures
    participants: list[dict[str, Any]]  # one row per kept participant (report table)


def session_report(session: Session, session_id: int) -> SessionReportData:
    """The session's report ("bilan"): figures and one row per participant."""
    row = get_session(session, session_id)
    apps = applications(session, session_id)
    all_placements = placements(session, session_id)
    evaluations = list(session.exec(select(Evaluation).where(Evaluation.session_id == session_id)))
    present = {
        meeting: sum(
            1
            for a in session.exec(
                select(Attendance).where(
                    Attendance.session_id == session_id, Attendance.meeting == meeting
                )
            )
            if a.present
        )
        for meeting in ("preparation", "restitution")
    }
    figures = report_figures(
        applications=[
            ApplicationFacts(
                home=_org(session, a.organisation_id).label,
                status=a.status.value,
                ever_selected=a.ever_selected,
                promoted=a.promoted,
                name=_contact(session, a.contact_id).name,
                withdrawal_reason=a.withdrawal_reason,
            )
            for a in apps
        ],
        placements=[
            PlacementFacts(
                host=_org(session, p.host_organisation_id).label,
                done=p.status is PlacementStatus.DONE,
                days=len(p.days),
            )
            for p in all_placements
        ],
        preparation_present=present["preparation"],
        restitution_present=present["restitution"],
        participant_ratings=[e.rating for e in evaluations if e.author == "participant"],
        host_ratings=[e.rating for e in evaluations if e.author == "host"],
        comments=[e.useful for e in evaluations if e.useful],
    )
    rows = []
    for a in apps:
        if not a.ever_selected:
            continue
        placement = next(
            (
                p
                for p in all_placements
                if p.application_id == a.id and p.status is not PlacementStatus.CANCELLED
            ),
            None,
        )
        rows.append(
            {
                "n°": a.number,
                "participant": _contact(session, a.contact_id).name,
                "structure d'origine": _org(session, a.organisation_id).label,
                "structure d'accueil": _org(session, placement.host_organisation_id).label
                if placement
                else "",
                "jours": len(placement.days) if placement else 0,
                "statut": STATUS_TEXT.get(a.status.value, a.status.value),
                "motif": a.withdrawal_reason,
            }
        )
    clsm = session.get(Clsm, row.clsm_id)
    return SessionReportData(
        session_id=session_id,
        title=row.title,
        clsm=clsm.name if clsm else "",
        status=STATUS_LABELS[row.status],
        figures=figures,
        participants=rows,
    )


STATUS_TEXT = {
    "submitted": "candidature reçue",
    "selected": "retenu",
    "waitlisted": "liste d'attente",
    "offered": "place proposée",
    "not_selected": "non retenu",
    "withdrawn": "retiré",
    "completed": "immersion réalisée",
}


def report_markdown(data: SessionReportData) -> str:
    f = data.figures
    lines = [
        f"# Bilan — {data.title}",
        "",
        f"- Candidatures : **{f.applications}**",
        f"- Retenues : **{f.kept}** (dont {f.promoted} depuis la liste d'attente)",
        f"- Liste d'attente à la clôture : {f.waitlisted} ; non retenues : {f.not_selected}",
        f"- Retraits : {len(f.withdrawals)}"
        + "".join(f"\n  - {name} : {reason}" for name, reason in f.withdrawals),
        f"- Immersions réalisées : **{f.immersions_done}**, {f.days_total} jours au total",
        f"- Présents à la journée de préparation : {f.preparation_present} ; "
        f"à la restitution : {f.restitution_present}",
        f"- Satisfaction des stagiaires : {_rating(f.participant_rating)} "
        f"({f.participant_evaluations} évaluations) ; des structures d'accueil : "
        f"{_rating(f.host_rating)} ({f.host_evaluations} évaluations)",
        "",
        "| Structure | Candidatures | Retenues | Stagiaires accueillis | Jours accueillis |",
        "|---|---|---|---|---|",
        *(
            f"| {s.structure} | {s.applications} | {s.kept} | {s.hosted} | {s.days_hosted} |"
            for s in f.structures
        ),
    ]
    return "\n".join(lines)


def _rating(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}/5".replace(".", ",")


def report_csv(data: SessionReportData) -> str:
    """The report's per-structure table and per-participant table, as CSV (';', UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(
        ["structure", "candidatures", "retenues", "stagiaires accueillis", "jours accueillis"]
    )
    for s in data.figures.structures:
        writer.writerow([s.structure, s.applications, s.kept, s.hosted, s.days_hosted])
    writer.writerow([])
    columns = [
        "n°",
        "participant",
        "structure d'origine",
        "structure d'accueil",
        "jours",
        "statut",
        "motif",
    ]
    writer.writerow(columns)
    for r in data.participants:
        writer.writerow([r[c] for c in columns])
    return out.getvalue()


def store_report(*, session: Session, row: ImmersionSession, actor: Actor) -> SessionReportData:
    """Freeze the report figures in the database (once) and audit them."""
    assert row.id is not None
    data = session_report(session, row.id)
    existing = session.exec(select(SessionReport).where(SessionReport.session_id == row.id)).first()
    if existing is None:
        figures = {
            "applications": data.figures.applications,
            "kept": data.figures.kept,
            "waitlisted": data.figures.waitlisted,
            "not_selected": data.figures.not_selected,
            "withdrawals": len(data.figures.withdrawals),
            "promoted": data.figures.promoted,
            "immersions_done": data.figures.immersions_done,
            "days_total": data.figures.days_total,
            "participant_rating": data.figures.participant_rating,
            "host_rating": data.figures.host_rating,
        }
        session.add(
            SessionReport(session_id=row.id, figures=figures, created_at=clock.now(session))
        )
        _event(session, row.id, "report.created", actor, figures)
    return data


# -- partner steps (service pages) ------------------------------------------------------
STEP_APPLY = "immersion-apply"
STEP_CHANGE = "immersion-application"
STEP_OFFER = "immersion-offer"
STEP_HOST = "immersion-host"
STEP_SIGN = "immersion-sign"
STEP_GRID = "immersion-evaluation"
STEP_HOST_EVAL = "immersion-host-evaluation"


def current_wait_step(session: Session, link: StepLink) -> str | None:
    """Whatever the session's flow run waits on now: an answer may change what comes next."""
    wait = session.exec(
        select(Wait)
        .where(
            Wait.case_type == CASE.value,
            Wait.case_id == link.case_id,
            Wait.status == WaitStatus.OPEN,
        )
        .order_by(col(Wait.since).desc())
    ).first()
    return wait.step if wait else None


def _session_of(session: Session, link: StepLink) -> ImmersionSession:
    return get_session(session, link.case_id)


def _subject(session: Session, link: StepLink, model: type[_T]) -> _T:
    row = session.get(model, link.subject_id) if link.subject_id is not None else None
    if row is None or getattr(row, "session_id", link.case_id) != link.case_id:
        raise NotFound("élément introuvable pour ce lien")
    return row


def _page_apply(session: Session, link: StepLink) -> StepPage:
    row = _session_of(session, link)
    contact = _contact(session, link.contact_id)
    hosts = [_org(session, i.organisation_id) for i in invited(session, row.id or 0)]
    return StepPage(
        title="Candidater à une immersion professionnelle",
        case_label=row.reference,
        paragraphs=[
            "Les stages croisés permettent de passer de 1 à 5 jours en observation dans une "
            "structure partenaire du CLSM, précédés d'une journée de préparation et suivis "
            "d'une restitution.",
            f"Structure d'origine : {_org(session, contact.organisation_id).label}. "
            "Votre responsable hiérarchique devra cosigner la convention de stage.",
        ],
        details=[
            ("Clôture de l'appel", _when(row.call_closes_at)),
            ("Places", str(row.capacity)),
            ("Période d'immersion", f"du {row.window_start:%d/%m/%Y} au {row.window_end:%d/%m/%Y}"),
            ("Journée de préparation", f"{_when(row.preparation_at)}, {row.preparation_place}"),
            ("Structures d'accueil possibles", ", ".join(h.label for h in hosts)),
        ],
    )


def _record_apply(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
    row = _session_of(session, link)
    contact = _contact(session, link.contact_id)
    application = submit_application(
        session=session, row=row, organisation_id=contact.organisation_id, form=answer, actor=actor
    )
    return (
        f"Merci : votre candidature n°{application.number} est enregistrée. Un courriel de "
        "confirmation vous a été envoyé, avec un lien pour la modifier ou la retirer."
    )


def _page_change(session: Session, link: StepLink) -> StepPage:
    row = _session_of(session, link)
    application = _subject(session, link, Application)
    return StepPage(
        title="Votre candidature",
        case_label=row.reference,
        paragraphs=[
            "Vous pouvez modifier votre candidature jusqu'à la clôture de l'appel, "
            "ou la retirer à tout moment avant votre immersion."
        ],
        details=[
            ("Numéro", str(application.number)),
            ("État", STATUS_TEXT[application.status.value]),
            ("Vœux", ", ".join(_org(session, w).label for w in application.wishes)),
        ],
    )


def _record_change(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
    return change_application(
        session=session, application=_subject(session, link, Application), form=answer, actor=actor
    )


def _page_offer(session: Session, link: StepLink) -> StepPage:
    row = _session_of(session, link)
    application = _subject(session, link, Application)
    return StepPage(
        title="Une place s'est libérée",
        case_label=row.reference,
        paragraphs=["Une place s'est libérée dans la session : elle vous est proposée."],
        details=[
            (
                "Répondre avant le",
                _when(application.offer_deadline) if application.offer_deadline else "",
            ),
            ("Journée de préparation", f"{_when(row.preparation_at)}, {row.preparation_place}"),
        ],
    )


def _record_offer(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
    return answer_offer(
        session=session,
        application=_subject(session, link, Application),
        accept=answer.answer.startswith("j'accepte"),
        actor=actor,
    )


def _page_host(session: Session, link: StepLink) -> StepPage:
    row = _session_of(session, link)
    placement = _subject(session, link, Placement)
    application = session.get(Application, placement.application_id)
    assert application is not None
    return StepPage(
        title="Accueillir un ou une stagiaire",
        case_label=row.reference,
        paragraphs=[
            "Merci d'indiquer le tuteur ou la tutrice, les jours proposés et le cadre "
            "d'observation : ce que la personne accueillie pourra observer ou non, au regard "
            "du secret professionnel.",
        ],
        details=[
            ("Stagiaire", _contact(session, application.contact_id).name),
            ("Fonction", application.function),
            ("Structure d'origine", _org(session, application.organisation_id).label),
            ("Disponibilités", application.availability or "non précisées"),
            ("Période", f"du {row.window_start:%d/%m/%Y} au {row.window_end:%d/%m/%Y}"),
            ("Durée", f"{row.min_days} à {row.max_days} jours ouvrés"),
        ],
    )


def _record_host(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
    return confirm_host(
        session=session, placement=_subject(session, link, Placement), form=answer, actor=actor
    )


def _page_sign(session: Session, link: StepLink) -> StepPage:
    row = _session_of(session, link)
    agreement = _subject(session, link, Agreement)
    placement = session.get(Placement, agreement.placement_id)
    assert placement is not None
    party = next(
        (p for p, c in _parties(session, placement).items() if c.id == link.contact_id),
        "participant",
    )
    ctx = _agreement_context(session, placement, party)
    return StepPage(
        title="Convention de stage d'immersion",
        case_label=row.reference,
        paragraphs=[
            f"Vous signez en tant que {ctx['party']}.",
            "La convention est cosignée par le ou la stagiaire, la structure d'origine et la "
            "structure d'accueil. Le ou la stagiaire observe sans intervenir et respecte le "
            "secret professionnel ; aucune immersion ne commence sans les trois signatures.",
        ],
        details=[
            ("Stagiaire", ctx["participant"]),
            ("Structure d'origine", ctx["home"]),
            ("Structure d'accueil", ctx["host"]),
            ("Tuteur ou tutrice", ctx["tutor"]),
            ("Jours", ctx["days"]),
            ("Pourra être observé", ctx["may_observe"]),
            ("Ne pourra pas être observé", ctx["may_not_observe"]),
        ],
    )


def _record_sign(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
    return sign_agreement(
        session=session,
        agreement=_subject(session, link, Agreement),
        contact_id=link.contact_id,
        form=answer,
        actor=actor,
    )


def _page_evaluation(session: Session, link: StepLink) -> StepPage:
    row = _session_of(session, link)
    placement = _subject(session, link, Placement)
    host = _org(session, placement.host_organisation_id).label
    return StepPage(
        title="Grille d'observation et évaluation de fin de stage",
        case_label=row.reference,
        paragraphs=["Vos réponses nourriront la restitution et le bilan de la session."],
        details=[("Structure d'accueil", host), ("Jours", _days_label(placement.day_list))],
    )


def _record_evaluation(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
    return record_evaluation(
        session=session,
        placement=_subject(session, link, Placement),
        author="participant",
        form=answer,
        actor=actor,
    )


def _page_host_evaluation(session: Session, link: StepLink) -> StepPage:
    row = _session_of(session, link)
    placement = _subject(session, link, Placement)
    application = session.get(Application, placement.application_id)
    assert application is not None
    return StepPage(
        title="Évaluation de l'accueil",
        case_label=row.reference,
        details=[
            ("Stagiaire", _contact(session, application.contact_id).name),
            ("Jours", _days_label(placement.day_list)),
        ],
    )


def _record_host_evaluation(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
    return record_evaluation(
        session=session,
        placement=_subject(session, link, Placement),
        author="host",
        form=answer,
        actor=actor,
    )


def _initial_change(session: Session, link: StepLink) -> dict[str, Any]:
    application = _subject(session, link, Application)
    return {
        "motivation": application.motivation,
        "wishes": [_org(session, w).label for w in application.wishes],
        "availability": application.availability,
    }


def _initial_host(session: Session, link: StepLink) -> dict[str, Any]:
    placement = _subject(session, link, Placement)
    inv = session.exec(
        select(InvitedStructure).where(
            InvitedStructure.session_id == link.case_id,
            InvitedStructure.organisation_id == placement.host_organisation_id,
        )
    ).first()
    return {"capacity": inv.declared_capacity or inv.host_capacity if inv else 1}


STEP_KINDS: tuple[StepKind, ...] = (
    StepKind(
        STEP_APPLY,
        ApplicationForm,
        _page_apply,
        _record_apply,
        submit_label="Envoyer ma candidature",
    ),
    StepKind(
        STEP_CHANGE,
        ApplicationChangeForm,
        _page_change,
        _record_change,
        wait_step=current_wait_step,
        initial=_initial_change,
    ),
    StepKind(STEP_OFFER, OfferForm, _page_offer, _record_offer, wait_step=current_wait_step),
    StepKind(
        STEP_HOST,
        HostForm,
        _page_host,
        _record_host,
        wait_step=current_wait_step,
        initial=_initial_host,
        submit_label="Confirmer l'accueil",
    ),
    StepKind(
        STEP_SIGN,
        SignatureForm,
        _page_sign,
        _record_sign,
        wait_step=current_wait_step,
        submit_label="Signer la convention",
    ),
    StepKind(
        STEP_GRID,
        ParticipantEvaluationForm,
        _page_evaluation,
        _record_evaluation,
        wait_step=current_wait_step,
    ),
    StepKind(
        STEP_HOST_EVAL,
        HostEvaluationForm,
        _page_host_evaluation,
        _record_host_evaluation,
        wait_step=current_wait_step,
    ),
)


# -- case kind --------------------------------------------------------------------------
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


CASE_KIND = CaseKind(CASE, "session d'immersion", _summaries, _one)
