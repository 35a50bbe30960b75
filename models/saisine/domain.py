"""Saisines of the cell for complex psychosocial situations: tables and data functions.

A saisine goes through level 1 (bilateral consultations, then an orientation, then a
follow-up) and, if needed, level 2 (a cell meeting that records a decision and actions).
Every change is audited on the saisine's case (meeting events also on the meeting's case
and on every saisine it examines). Mails carry the reference and a link, never the
description: the description is shown only on the pages of the links.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Integer, Text, UniqueConstraint, func
from sqlmodel import Field, Session, SQLModel, col, select

from models.core import clock
from models.core.audit import Actor, record_event, redact_case
from models.core.base import UTCDateTime
from models.core.calendar import add_business_days, at_local, local_date
from models.core.enums import CaseType
from models.core.errors import DomainError, NotFound
from models.core.kinds import CaseScope
from models.core.links import StepLink, issue_link
from models.core.outbox import CalendarMethod, CalendarPart, Recipient, enqueue
from models.core.people import Clsm, Contact, Organisation, Partnership
from models.core.settings import get_settings
from models.core.spreadsheet import csv_text
from models.core.status import change_status
from models.core.waits import wake_case
from models.saisine.rules import (
    ORIENTATION_LABELS,
    Convention,
    OrientationKind,
    ReportCase,
    YearlyReport,
    build_report,
    check_close_allowed,
    check_consultable,
    check_decision_allowed,
    check_meeting_allowed,
    next_host,
    report_csv_rows,
)
from models.saisine.states import ActionStatus, ConsultationStatus, MeetingStatus, SaisineStatus

SAISINE = CaseType.SAISINE
MEETING = CaseType.MEETING

# Steps answered by link (registered in models.saisine.steps).
STEP_CONSULTATION = "saisine-consultation"
STEP_FOLLOW_UP = "saisine-follow-up"
STEP_ATTENDANCE = "saisine-attendance"
STEP_ACTION = "saisine-action"
STEP_OUTCOME = "saisine-outcome"

CONSULTATION_DAYS = 5  # business days to answer a consultation
REMINDER_DAYS = 3  # business days before the first reminder
MEETING_HOURS = 2

CHANNELS = ("téléphone", "courriel", "courrier", "rencontre")
AGE_RANGES = (
    "moins de 18 ans",
    "18-25 ans",
    "26-40 ans",
    "41-60 ans",
    "61-75 ans",
    "plus de 75 ans",
)


# -- tables ----------------------------------------------------------------------------------
_version = Column("version", Integer, nullable=False, default=1)


class Saisine(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("clsm_id", "reference", name="uq_saisine_reference"),)
    __mapper_args__ = {"version_id_col": _version}  # optimistic locking

    id: int | None = Field(default=None, primary_key=True)
    clsm_id: int = Field(foreign_key="clsm.id", index=True)
    reference: str = Field(max_length=20)
    received_at: datetime = Field(sa_type=UTCDateTime)
    channel: str = Field(max_length=30)
    referrer_organisation_id: int = Field(foreign_key="organisation.id")
    referrer_contact_id: int = Field(foreign_key="contact.id")
    # pseudonymised description: shown on pages only, erased at the end of retention
    initials: str | None = Field(default=None, max_length=10)
    age_range: str | None = Field(default=None, max_length=30)
    commune: str | None = Field(default=None, max_length=100)
    difficulty: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    consent_given: bool = False
    consent_note: str | None = Field(default=None, max_length=500)
    urgent: bool = False
    status: SaisineStatus = Field(default=SaisineStatus.RECEIVED, index=True)
    round: int = 1  # level 1 round (a failed orientation reopens level 1)
    form_seq: int = 0  # coordinator forms answered (each form gets a fresh wait key)
    last_form_error: str = Field(default="", max_length=500)
    version: int = Field(default=1, sa_column=_version)
    flow_run_id: str | None = Field(default=None, max_length=36, unique=True)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    close_reason: str = Field(default="", max_length=500)
    purged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def entity_name(self) -> str:
        return "saisine"

    @property
    def label(self) -> str:
        return f"Saisine {self.reference}"

    def audit_case(self) -> tuple[CaseType, int]:
        assert self.id is not None
        return SAISINE, self.id


class Consultation(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("saisine_id", "round", "organisation_id", name="uq_consultation"),
    )

    id: int | None = Field(default=None, primary_key=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)
    round: int = 1
    organisation_id: int = Field(foreign_key="organisation.id")
    contact_id: int = Field(foreign_key="contact.id")
    asked_at: datetime = Field(sa_type=UTCDateTime)
    remind_at: datetime = Field(sa_type=UTCDateTime)
    deadline: datetime = Field(sa_type=UTCDateTime)
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    knows_situation: bool | None = None
    proposal: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: ConsultationStatus = ConsultationStatus.ASKED

    @property
    def entity_name(self) -> str:
        return "consultation"

    def audit_case(self) -> tuple[CaseType, int]:
        return SAISINE, self.saisine_id


class Orientation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)
    round: int = 1
    kind: OrientationKind
    who_acts: str = Field(default="", max_length=300)
    detail: str = Field(default="", max_length=1000)
    decided_at: datetime = Field(sa_type=UTCDateTime)
    follow_up_on: date | None = None

    @property
    def text(self) -> str:
        """The line of the yearly report, e.g. "Orientation vers le DAC-PTA (CHL)"."""
        if self.detail:
            return self.detail
        base = ORIENTATION_LABELS[self.kind]
        return f"{base} ({self.who_acts})" if self.who_acts else base


class FollowUp(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("saisine_id", "round", name="uq_follow_up_round"),)

    id: int | None = Field(default=None, primary_key=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)
    round: int = 1
    due_on: date
    asked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    worked: bool | None = None
    next_step: str = Field(default="", max_length=20)  # "", "level1", "level2"
    comment: str = Field(default="", max_length=1000)


class CellMeeting(SQLModel, table=True):
    __tablename__ = "cell_meeting"

    id: int | None = Field(default=None, primary_key=True)
    clsm_id: int = Field(foreign_key="clsm.id", index=True)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    host_organisation_id: int = Field(foreign_key="organisation.id")
    status: MeetingStatus = MeetingStatus.PLANNED
    sequence: int = 0  # iCalendar SEQUENCE: raised on every change sent to the members
    cancel_reason: str = Field(default="", max_length=500)

    @property
    def entity_name(self) -> str:
        return "réunion de cellule"

    @property
    def uid(self) -> str:
        return f"cellule-{self.id}@clsm"

    def audit_case(self) -> tuple[CaseType, int]:
        assert self.id is not None
        return MEETING, self.id


class MeetingItem(SQLModel, table=True):
    """A saisine examined at a meeting (several saisines per meeting)."""

    __tablename__ = "meeting_item"
    __table_args__ = (UniqueConstraint("meeting_id", "saisine_id", name="uq_meeting_item"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="cell_meeting.id", index=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)


class MeetingMember(SQLModel, table=True):
    __tablename__ = "meeting_member"
    __table_args__ = (UniqueConstraint("meeting_id", "organisation_id", name="uq_meeting_member"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="cell_meeting.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id")
    contact_id: int = Field(foreign_key="contact.id")
    invited: bool = False  # False: permanent member
    invited_for_saisine_id: int | None = Field(default=None, foreign_key="saisine.id")
    attending: bool | None = None
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Decision(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True, unique=True)
    meeting_id: int = Field(foreign_key="cell_meeting.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    decided_at: datetime = Field(sa_type=UTCDateTime)


class DecisionAction(SQLModel, table=True):
    __tablename__ = "decision_action"

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(foreign_key="decision.id", index=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)
    text: str = Field(max_length=500)
    owner_contact_id: int = Field(foreign_key="contact.id")
    due_on: date
    status: ActionStatus = ActionStatus.OPEN
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closing_note: str = Field(default="", max_length=1000)
    closed_by_link_id: int | None = Field(default=None, foreign_key="step_link.id")

    @property
    def entity_name(self) -> str:
        return "action"

    def audit_case(self) -> tuple[CaseType, int]:
        return SAISINE, self.saisine_id


# -- data in and out ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SaisineIntake:
    """What the coordinator types after the partner's call (flow parameters)."""

    clsm_slug: str
    received_on: date
    channel: str
    referring_structure: str
    referrer_name: str
    referrer_email: str
    initials: str
    age_range: str
    commune: str
    difficulty: str
    consent_given: bool
    consent_note: str
    urgent: bool
    referrer_function: str = ""


@dataclass(frozen=True)
class ActionPlan:
    text: str
    owner_contact_id: int
    due_on: date


# -- small helpers -----------------------------------------------------------------------------
def _event(
    session: Session, saisine: Saisine, action: str, actor: Actor, payload: dict[str, Any]
) -> None:
    assert saisine.id is not None
    record_event(
        session=session,
        case_type=SAISINE,
        case_id=saisine.id,
        action=action,
        actor=actor,
        payload=payload,
    )


def _touch(session: Session, saisine: Saisine) -> None:
    """Mark the saisine changed: the version column guards concurrent writers."""
    session.add(saisine)
    session.flush()


def get_saisine(session: Session, saisine_id: int) -> Saisine:
    saisine = session.get(Saisine, saisine_id)
    if saisine is None:
        raise NotFound(f"saisine n°{saisine_id} introuvable")
    return saisine


def saisine_by_run(session: Session, flow_run_id: str) -> Saisine | None:
    return session.exec(select(Saisine).where(Saisine.flow_run_id == flow_run_id)).first()


def _clsm(session: Session, saisine: Saisine) -> Clsm:
    clsm = session.get(Clsm, saisine.clsm_id)
    assert clsm is not None
    return clsm


def _coordinator(session: Session, saisine: Saisine) -> Recipient:
    clsm = _clsm(session, saisine)
    return Recipient(email=clsm.coordinator_email, name=clsm.coordinator_name)


def _recipient(session: Session, contact_id: int) -> Recipient:
    contact = session.get(Contact, contact_id)
    assert contact is not None
    return Recipient(email=contact.email, name=contact.name, contact_id=contact.id)


def _org_label(session: Session, organisation_id: int) -> str:
    org = session.get(Organisation, organisation_id)
    return org.label if org else "?"


def first_contact(session: Session, organisation_id: int) -> Contact:
    contact = session.exec(
        select(Contact).where(Contact.organisation_id == organisation_id).order_by(col(Contact.id))
    ).first()
    if contact is None:
        raise DomainError(f"{_org_label(session, organisation_id)} : aucun contact enregistré")
    return contact


def saisine_scope(saisine: Saisine) -> CaseScope:
    """What this saisine's mails are filed under."""
    assert saisine.id is not None
    return CaseScope(SAISINE, saisine.id, saisine.clsm_id, saisine.label)


def meeting_label(meeting: CellMeeting) -> str:
    return f"Réunion de cellule du {meeting.starts_at.astimezone(get_settings().tz):%d/%m/%Y}"


def meeting_scope(meeting: CellMeeting) -> CaseScope:
    """What this meeting's convocations are filed under."""
    assert meeting.id is not None
    return CaseScope(MEETING, meeting.id, meeting.clsm_id, meeting_label(meeting))


def _mail(
    session: Session,
    saisine: Saisine,
    *,
    to: Recipient,
    template: str,
    dedup_key: str,
    link: StepLink | None = None,
    **context: Any,
) -> None:
    """A saisine mail: the reference, a link, a few labels; never the description."""
    assert saisine.id is not None
    body: dict[str, Any] = {"reference": saisine.reference, **context}
    if link is not None:
        body["link_id"] = link.id
    enqueue(
        session=session,
        scope=saisine_scope(saisine),
        to=to,
        template=template,
        context=body,
        dedup_key=dedup_key,
    )


def _link_to(
    session: Session, saisine: Saisine, contact_id: int, step: str, subject_id: int | None
) -> StepLink:
    assert saisine.id is not None
    return issue_link(
        session=session,
        contact_id=contact_id,
        case_type=SAISINE,
        case_id=saisine.id,
        step=step,
        subject_id=subject_id,
        multi_use=step == STEP_OUTCOME,
    )


# -- intake ------------------------------------------------------------------------------------
def next_reference(session: Session, clsm_id: int, year: int) -> str:
    count = session.exec(
        select(func.count())
        .select_from(Saisine)
        .where(Saisine.clsm_id == clsm_id, col(Saisine.reference).startswith(f"{year}-"))
    ).one()
    return f"{year}-{int(count) + 1:02d}"


def _find_or_create_referrer(
    session: Session, clsm_id: int, intake: SaisineIntake
) -> tuple[Organisation, Contact]:
    name = intake.referring_structure.strip()
    org = session.exec(
        select(Organisation).where(
            Organisation.clsm_id == clsm_id,
            (col(Organisation.name) == name) | (col(Organisation.short_name) == name),
        )
    ).first()
    if org is None:
        org = Organisation(clsm_id=clsm_id, name=name, short_name=name[:60], kind="")
        session.add(org)
        session.flush()
    assert org.id is not None
    email = intake.referrer_email.strip().lower()
    contact = session.exec(
        select(Contact).where(Contact.organisation_id == org.id, Contact.email == email)
    ).first()
    if contact is None:
        contact = Contact(
            organisation_id=org.id,
            name=intake.referrer_name.strip() or email,
            email=email,
            function=intake.referrer_function,
        )
        session.add(contact)
        session.flush()
    return org, contact


def open_saisine(
    *,
    session: Session,
    intake: SaisineIntake,
    actor: Actor,
    flow_run_id: str | None = None,
    reference: str = "",
) -> Saisine:
    """Record a new saisine (idempotent per flow run); urgent ones are closed at once."""
    if flow_run_id:
        existing = saisine_by_run(session, flow_run_id)
        if existing is not None:
            return existing
    clsm = session.exec(select(Clsm).where(Clsm.slug == intake.clsm_slug)).first()
    if clsm is None or clsm.id is None:
        raise DomainError(f"CLSM « {intake.clsm_slug} » inconnu")
    if not intake.referrer_email.strip() or not intake.referring_structure.strip():
        raise DomainError(
            "La structure et l'adresse e-mail de la personne qui saisit sont requises."
        )
    if not intake.consent_given and not intake.consent_note.strip():
        raise DomainError("Le consentement de la personne n'est pas recueilli : indiquez pourquoi.")
    org, contact = _find_or_create_referrer(session, clsm.id, intake)
    assert org.id is not None and contact.id is not None
    tz = get_settings().tz
    moment = clock.now(session)
    received_at = (
        moment
        if intake.received_on == local_date(moment, tz)
        else at_local(intake.received_on, 9, tz)
    )
    saisine = Saisine(
        clsm_id=clsm.id,
        reference=reference or next_reference(session, clsm.id, intake.received_on.year),
        received_at=received_at,
        channel=intake.channel,
        referrer_organisation_id=org.id,
        referrer_contact_id=contact.id,
        initials=intake.initials.strip().upper()[:10] or None,
        age_range=intake.age_range or None,
        commune=intake.commune.strip() or None,
        difficulty=intake.difficulty.strip() or None,
        consent_given=intake.consent_given,
        consent_note=intake.consent_note.strip() or None,
        urgent=intake.urgent,
        flow_run_id=flow_run_id,
    )
    session.add(saisine)
    session.flush()
    _event(
        session,
        saisine,
        "saisine.received",
        actor,
        {
            "reference": saisine.reference,
            "channel": saisine.channel,
            "referrer": org.label,
            "referrer_contact_id": contact.id,
            "initials": saisine.initials,
            "age_range": saisine.age_range,
            "commune": saisine.commune,
            "difficulty": saisine.difficulty,
            "consent_given": saisine.consent_given,
            "consent_note": saisine.consent_note,
            "urgent": saisine.urgent,
        },
    )
    if saisine.urgent:
        change_status(
            session=session,
            entity=saisine,
            to=SaisineStatus.URGENT_CLOSED,
            actor=actor,
            reason="situation d'urgence : la cellule n'est pas un service d'urgence",
        )
        saisine.closed_at = moment
        saisine.close_reason = "situation d'urgence, orientée vers les services d'urgence"
        _mail(
            session,
            saisine,
            to=_recipient(session, contact.id),
            template="saisine_urgent",
            dedup_key="urgent-guidance",
        )
    else:
        change_status(session=session, entity=saisine, to=SaisineStatus.LEVEL1, actor=actor)
    _touch(session, saisine)
    return saisine


# -- level 1: consultations --------------------------------------------------------------------
def conventions(session: Session, clsm_id: int) -> list[Convention]:
    return [
        Convention(p.organisation_id, p.starts_on, p.ends_on)
        for p in session.exec(select(Partnership).where(Partnership.clsm_id == clsm_id))
    ]


def consultable_organisations(session: Session, saisine: Saisine) -> list[Organisation]:
    """Structures the coordinator may consult today (valid convention), referrer excluded."""
    from models.saisine.rules import consultable

    today = local_date(clock.now(session), get_settings().tz)
    allowed = consultable(conventions(session, saisine.clsm_id), today)
    orgs = session.exec(
        select(Organisation)
        .where(col(Organisation.id).in_(allowed))
        .order_by(col(Organisation.name))
    )
    return [o for o in orgs if o.id != saisine.referrer_organisation_id]


def consultations(
    session: Session, saisine: Saisine, round_: int | None = None
) -> list[Consultation]:
    query = select(Consultation).where(Consultation.saisine_id == saisine.id)
    if round_ is not None:
        query = query.where(Consultation.round == round_)
    return list(session.exec(query.order_by(col(Consultation.id))))


def consult_partners(
    *, session: Session, saisine: Saisine, organisation_ids: list[int], actor: Actor
) -> list[Consultation]:
    """Ask each chosen structure (valid convention only); one link and one mail each."""
    if saisine.status is not SaisineStatus.LEVEL1:
        raise DomainError(f"{saisine.label} n'est pas au niveau 1.")
    if not organisation_ids:
        raise DomainError("Choisissez au moins une structure à consulter.")
    tz = get_settings().tz
    moment = clock.now(session)
    today = local_date(moment, tz)
    names = {o.id: o.label for o in session.exec(select(Organisation)) if o.id is not None}
    check_consultable(organisation_ids, conventions(session, saisine.clsm_id), today, names)
    remind_at = at_local(add_business_days(today, REMINDER_DAYS), 9, tz)
    deadline = at_local(add_business_days(today, CONSULTATION_DAYS), 18, tz)
    created: list[Consultation] = []
    existing = {c.organisation_id for c in consultations(session, saisine, saisine.round)}
    for organisation_id in organisation_ids:
        if organisation_id in existing:
            continue
        contact = first_contact(session, organisation_id)
        assert contact.id is not None and saisine.id is not None
        consultation = Consultation(
            saisine_id=saisine.id,
            round=saisine.round,
            organisation_id=organisation_id,
            contact_id=contact.id,
            asked_at=moment,
            remind_at=remind_at,
            deadline=deadline,
        )
        session.add(consultation)
        session.flush()
        link = _link_to(session, saisine, contact.id, STEP_CONSULTATION, consultation.id)
        _mail(
            session,
            saisine,
            to=_recipient(session, contact.id),
            template="saisine_consultation",
            dedup_key=f"consultation-{consultation.id}",
            link=link,
            deadline=f"{deadline.astimezone(tz):%d/%m/%Y}",
            reminder=False,
        )
        _event(
            session,
            saisine,
            "consultation.asked",
            actor,
            {
                "consultation_id": consultation.id,
                "organisation": names.get(organisation_id, ""),
                "contact_id": contact.id,
                "round": saisine.round,
                "deadline": deadline.isoformat(),
            },
        )
        created.append(consultation)
    _touch(session, saisine)
    return created


def record_consultation_answer(
    *,
    session: Session,
    consultation: Consultation,
    knows_situation: bool,
    proposal: str,
    actor: Actor,
) -> None:
    if consultation.status not in (ConsultationStatus.ASKED, ConsultationStatus.ESCALATED):
        raise DomainError("Cette consultation a déjà reçu une réponse ou est close.")
    consultation.knows_situation = knows_situation
    consultation.proposal = proposal.strip() or None
    consultation.answered_at = clock.now(session)
    change_status(
        session=session,
        entity=consultation,
        to=ConsultationStatus.ANSWERED,
        actor=actor,
        details={"knows_situation": knows_situation, "proposal": consultation.proposal},
    )
    session.add(consultation)
    session.flush()


def consultations_answered(session: Session, saisine: Saisine) -> bool:
    current = consultations(session, saisine, saisine.round)
    return bool(current) and all(c.status is ConsultationStatus.ANSWERED for c in current)


def remind_silent_partners(*, session: Session, saisine: Saisine) -> int:
    """One reminder per silent partner of the current round (idempotent)."""
    moment = clock.now(session)
    tz = get_settings().tz
    count = 0
    for consultation in consultations(session, saisine, saisine.round):
        if consultation.status is not ConsultationStatus.ASKED or consultation.reminded_at:
            continue
        link = _link_to(
            session, saisine, consultation.contact_id, STEP_CONSULTATION, consultation.id
        )
        _mail(
            session,
            saisine,
            to=_recipient(session, consultation.contact_id),
            template="saisine_consultation",
            dedup_key=f"consultation-{consultation.id}-reminder",
            link=link,
            deadline=f"{consultation.deadline.astimezone(tz):%d/%m/%Y}",
            reminder=True,
        )
        consultation.reminded_at = moment
        session.add(consultation)
        _event(
            session,
            saisine,
            "consultation.reminded",
            Actor.system(),
            {"consultation_id": consultation.id},
        )
        count += 1
    session.flush()
    return count


def escalate_silent_partners(*, session: Session, saisine: Saisine) -> int:
    """At the deadline, tell the coordinator who has not answered (idempotent)."""
    silent = [
        c
        for c in consultations(session, saisine, saisine.round)
        if c.status is ConsultationStatus.ASKED
    ]
    for consultation in silent:
        change_status(
            session=session,
            entity=consultation,
            to=ConsultationStatus.ESCALATED,
            actor=Actor.system(),
            reason="pas de réponse à l'échéance",
        )
        session.add(consultation)
    if silent:
        names = [_org_label(session, c.organisation_id) for c in silent]
        _mail(
            session,
            saisine,
            to=_coordinator(session, saisine),
            template="saisine_coordinator_alert",
            dedup_key=f"silent-partners-r{saisine.round}",
            alert="consultations",
            names=names,
        )
    session.flush()
    return len(silent)


# -- orientation, follow-up --------------------------------------------------------------------
def orientations(session: Session, saisine: Saisine) -> list[Orientation]:
    return list(
        session.exec(
            select(Orientation)
            .where(Orientation.saisine_id == saisine.id)
            .order_by(col(Orientation.id))
        )
    )


def _tell_outcome(session: Session, saisine: Saisine, what: str, contact_ids: list[int]) -> None:
    """Mail the referrer and the partners concerned: reference + link to the outcome page."""
    for contact_id in dict.fromkeys([saisine.referrer_contact_id, *contact_ids]):
        link = _link_to(session, saisine, contact_id, STEP_OUTCOME, None)
        _mail(
            session,
            saisine,
            to=_recipient(session, contact_id),
            template="saisine_outcome",
            dedup_key=f"outcome-{what}-contact-{contact_id}",
            link=link,
            outcome=what.split("-")[0],
        )


def record_orientation(
    *,
    session: Session,
    saisine: Saisine,
    kind: OrientationKind,
    who_acts: str,
    detail: str,
    follow_up_on: date | None,
    actor: Actor,
) -> Orientation:
    """Close level 1 with an orientation; referrer and consulted partners are told."""
    if saisine.status is not SaisineStatus.LEVEL1:
        raise DomainError(f"{saisine.label} n'est pas au niveau 1 : pas d'orientation possible.")
    moment = clock.now(session)
    if follow_up_on is not None and follow_up_on <= local_date(moment, get_settings().tz):
        raise DomainError("La date de suivi doit être postérieure à aujourd'hui.")
    assert saisine.id is not None
    orientation = Orientation(
        saisine_id=saisine.id,
        round=saisine.round,
        kind=kind,
        who_acts=who_acts.strip(),
        detail=detail.strip(),
        decided_at=moment,
        follow_up_on=follow_up_on,
    )
    session.add(orientation)
    session.flush()
    for consultation in consultations(session, saisine, saisine.round):
        if consultation.status is not ConsultationStatus.CLOSED:
            change_status(
                session=session, entity=consultation, to=ConsultationStatus.CLOSED, actor=actor
            )
    change_status(
        session=session,
        entity=saisine,
        to=SaisineStatus.ORIENTED,
        actor=actor,
        details={
            "orientation_id": orientation.id,
            "kind": kind.value,
            "who_acts": orientation.who_acts,
            "detail": orientation.detail,
            "follow_up_on": follow_up_on.isoformat() if follow_up_on else None,
        },
    )
    if follow_up_on is not None:
        session.add(FollowUp(saisine_id=saisine.id, round=saisine.round, due_on=follow_up_on))
    partners = [c.contact_id for c in consultations(session, saisine, saisine.round)]
    _tell_outcome(session, saisine, f"orientation-{orientation.id}", partners)
    _touch(session, saisine)
    return orientation


def escalate_to_level2(*, session: Session, saisine: Saisine, actor: Actor, reason: str) -> None:
    for consultation in consultations(session, saisine, saisine.round):
        if consultation.status is not ConsultationStatus.CLOSED:
            change_status(
                session=session, entity=consultation, to=ConsultationStatus.CLOSED, actor=actor
            )
    change_status(
        session=session, entity=saisine, to=SaisineStatus.LEVEL2, actor=actor, reason=reason
    )
    _touch(session, saisine)


def current_follow_up(session: Session, saisine: Saisine) -> FollowUp | None:
    return session.exec(
        select(FollowUp).where(FollowUp.saisine_id == saisine.id, FollowUp.round == saisine.round)
    ).first()


def start_follow_up(*, session: Session, saisine: Saisine) -> FollowUp:
    """The follow-up date has come: ask the referrer whether the orientation worked."""
    follow_up = current_follow_up(session, saisine)
    if follow_up is None:
        raise DomainError(f"{saisine.label} : aucun suivi prévu.")
    follow_up.asked_at = clock.now(session)
    session.add(follow_up)
    change_status(session=session, entity=saisine, to=SaisineStatus.FOLLOW_UP, actor=Actor.system())
    link = _link_to(session, saisine, saisine.referrer_contact_id, STEP_FOLLOW_UP, follow_up.id)
    _mail(
        session,
        saisine,
        to=_recipient(session, saisine.referrer_contact_id),
        template="saisine_follow_up",
        dedup_key=f"follow-up-{follow_up.id}",
        link=link,
    )
    _touch(session, saisine)
    return follow_up


def record_follow_up_answer(
    *,
    session: Session,
    follow_up: FollowUp,
    worked: bool,
    next_step: str,
    comment: str,
    actor: Actor,
) -> None:
    if follow_up.answered_at is not None:
        raise DomainError("Ce suivi a déjà reçu une réponse.")
    if not worked and next_step not in ("level1", "level2"):
        raise DomainError("Indiquez la suite souhaitée : reprendre les échanges ou la cellule.")
    follow_up.worked = worked
    follow_up.next_step = "" if worked else next_step
    follow_up.comment = comment.strip()
    follow_up.answered_at = clock.now(session)
    session.add(follow_up)
    saisine = get_saisine(session, follow_up.saisine_id)
    _event(
        session,
        saisine,
        "follow-up.answered",
        actor,
        {
            "follow_up_id": follow_up.id,
            "worked": worked,
            "next": follow_up.next_step,
            "comment": follow_up.comment,
        },
    )


def apply_follow_up(*, session: Session, saisine: Saisine) -> None:
    """After the referrer's answer: close, reopen level 1 or escalate to level 2."""
    follow_up = current_follow_up(session, saisine)
    assert follow_up is not None and follow_up.answered_at is not None
    system = Actor.system()
    if follow_up.worked:
        close_saisine(session=session, saisine=saisine, reason="orientation efficace", actor=system)
    elif follow_up.next_step == "level2":
        escalate_to_level2(
            session=session, saisine=saisine, actor=system, reason="l'orientation n'a pas abouti"
        )
    else:
        saisine.round += 1
        change_status(
            session=session,
            entity=saisine,
            to=SaisineStatus.LEVEL1,
            actor=system,
            reason="l'orientation n'a pas abouti : reprise des échanges",
            details={"round": saisine.round},
        )
        _touch(session, saisine)


# -- level 2: cell meetings --------------------------------------------------------------------
def meeting_items(session: Session, meeting: CellMeeting) -> list[Saisine]:
    return list(
        session.exec(
            select(Saisine)
            .join(MeetingItem, col(MeetingItem.saisine_id) == col(Saisine.id))
            .where(MeetingItem.meeting_id == meeting.id)
            .order_by(col(Saisine.id))
        )
    )


def meetings_of(session: Session, saisine: Saisine) -> list[CellMeeting]:
    return list(
        session.exec(
            select(CellMeeting)
            .join(MeetingItem, col(MeetingItem.meeting_id) == col(CellMeeting.id))
            .where(MeetingItem.saisine_id == saisine.id)
            .order_by(col(CellMeeting.id))
        )
    )


def current_meeting(session: Session, saisine: Saisine) -> CellMeeting | None:
    """The saisine's latest meeting that is planned or held (not cancelled)."""
    alive = [m for m in meetings_of(session, saisine) if m.status is not MeetingStatus.CANCELLED]
    return alive[-1] if alive else None


def meeting_members(session: Session, meeting: CellMeeting) -> list[MeetingMember]:
    return list(
        session.exec(
            select(MeetingMember)
            .where(MeetingMember.meeting_id == meeting.id)
            .order_by(col(MeetingMember.id))
        )
    )


def _meeting_event(
    session: Session, meeting: CellMeeting, action: str, actor: Actor, payload: dict[str, Any]
) -> None:
    """Meeting events go to the meeting's case and to every saisine it examines."""
    assert meeting.id is not None
    body = {"meeting_id": meeting.id, **payload}
    record_event(
        session=session,
        case_type=MEETING,
        case_id=meeting.id,
        action=action,
        actor=actor,
        payload=body,
    )
    for saisine in meeting_items(session, meeting):
        _event(session, saisine, action, actor, body)


def permanent_members(session: Session, clsm_id: int) -> list[Organisation]:
    return list(
        session.exec(
            select(Organisation)
            .where(Organisation.clsm_id == clsm_id, col(Organisation.permanent_member).is_(True))
            .order_by(col(Organisation.name))
        )
    )


def proposed_host(session: Session, clsm_id: int) -> Organisation:
    """The permanent member that hosted least recently (rotation)."""
    members = permanent_members(session, clsm_id)
    ids = [m.id for m in members if m.id is not None]
    tz = get_settings().tz
    hosted = [
        (m.host_organisation_id, local_date(m.starts_at, tz))
        for m in session.exec(
            select(CellMeeting).where(
                CellMeeting.clsm_id == clsm_id, CellMeeting.status != MeetingStatus.CANCELLED
            )
        )
    ]
    chosen = next_host(ids, hosted)
    return next(m for m in members if m.id == chosen)


def planned_meetings(session: Session, clsm_id: int) -> list[CellMeeting]:
    return list(
        session.exec(
            select(CellMeeting)
            .where(
                CellMeeting.clsm_id == clsm_id,
                CellMeeting.status == MeetingStatus.PLANNED,
                col(CellMeeting.starts_at) > clock.now(session),
            )
            .order_by(col(CellMeeting.starts_at))
        )
    )


def _calendar(session: Session, meeting: CellMeeting, method: CalendarMethod) -> CalendarPart:
    host = session.get(Organisation, meeting.host_organisation_id)
    clsm = session.get(Clsm, meeting.clsm_id)
    references = ", ".join(s.reference for s in meeting_items(session, meeting))
    return CalendarPart(
        uid=meeting.uid,
        sequence=meeting.sequence,
        method=method,
        summary=f"Réunion de la cellule de concertation — {clsm.name if clsm else 'CLSM'}",
        start=meeting.starts_at.isoformat(),
        end=(meeting.starts_at + timedelta(hours=MEETING_HOURS)).isoformat(),
        location=", ".join(
            x for x in [host.name if host else "", host.address if host else ""] if x
        ),
        description=f"Saisines examinées : {references}" if references else "",
    )


def _convoke(session: Session, meeting: CellMeeting, members: list[MeetingMember]) -> None:
    """Convocation with a calendar REQUEST and an attendance link (once per SEQUENCE)."""
    assert meeting.id is not None
    for member in members:
        link = issue_link(
            session=session,
            contact_id=member.contact_id,
            case_type=MEETING,
            case_id=meeting.id,
            step=STEP_ATTENDANCE,
            subject_id=member.id,
        )
        enqueue(
            session=session,
            scope=meeting_scope(meeting),
            to=_recipient(session, member.contact_id),
            template="saisine_convocation",
            context={
                "references": [s.reference for s in meeting_items(session, meeting)],
                "invited": member.invited,
                "update": meeting.sequence > 0,
                "link_id": link.id,
            },
            dedup_key=f"convocation-{meeting.id}-seq-{meeting.sequence}-contact-{member.contact_id}",
            calendar=_calendar(session, meeting, CalendarMethod.REQUEST),
        )


def _add_member(
    session: Session,
    meeting: CellMeeting,
    organisation_id: int,
    invited_for: int | None,
) -> MeetingMember | None:
    assert meeting.id is not None
    exists = session.exec(
        select(MeetingMember).where(
            MeetingMember.meeting_id == meeting.id,
            MeetingMember.organisation_id == organisation_id,
        )
    ).first()
    if exists is not None:
        return None
    contact = first_contact(session, organisation_id)
    assert contact.id is not None
    member = MeetingMember(
        meeting_id=meeting.id,
        organisation_id=organisation_id,
        contact_id=contact.id,
        invited=invited_for is not None,
        invited_for_saisine_id=invited_for,
    )
    session.add(member)
    session.flush()
    return member


def plan_meeting(
    *,
    session: Session,
    saisine: Saisine,
    starts_at: datetime | None,
    host_organisation_id: int | None,
    invited_ids: list[int],
    actor: Actor,
    meeting: CellMeeting | None = None,
) -> CellMeeting:
    """Put the saisine on a meeting (a new one, or an already planned one) and convoke."""
    check_meeting_allowed(saisine.status)
    if current_meeting(session, saisine) is not None:
        raise DomainError(f"{saisine.label} est déjà inscrite à une réunion de cellule.")
    moment = clock.now(session)
    assert saisine.id is not None
    names = {o.id: o.label for o in session.exec(select(Organisation)) if o.id is not None}
    today = local_date(moment, get_settings().tz)
    check_consultable(invited_ids, conventions(session, saisine.clsm_id), today, names)
    new = meeting is None
    if meeting is None:
        if starts_at is None or starts_at <= moment:
            raise DomainError("La date de la réunion doit être dans le futur.")
        permanent = {m.id for m in permanent_members(session, saisine.clsm_id)}
        if host_organisation_id not in permanent:
            raise DomainError("La réunion se tient chez un membre permanent de la cellule.")
        assert host_organisation_id is not None
        meeting = CellMeeting(
            clsm_id=saisine.clsm_id, starts_at=starts_at, host_organisation_id=host_organisation_id
        )
        session.add(meeting)
        session.flush()
    elif meeting.status is not MeetingStatus.PLANNED or meeting.starts_at <= moment:
        raise DomainError("Cette réunion n'est plus à venir : choisissez-en une autre.")
    assert meeting.id is not None
    session.add(MeetingItem(meeting_id=meeting.id, saisine_id=saisine.id))
    session.flush()
    added: list[MeetingMember] = []
    if new:
        for org in permanent_members(session, saisine.clsm_id):
            assert org.id is not None
            member = _add_member(session, meeting, org.id, None)
            if member:
                added.append(member)
    for organisation_id in invited_ids:
        member = _add_member(session, meeting, organisation_id, saisine.id)
        if member:
            added.append(member)
    if new:
        record_event(
            session=session,
            case_type=MEETING,
            case_id=meeting.id,
            action="meeting.planned",
            actor=actor,
            payload={
                "starts_at": meeting.starts_at.isoformat(),
                "host": names.get(meeting.host_organisation_id, ""),
            },
        )
    _meeting_event(
        session,
        meeting,
        "meeting.saisine-added",
        actor,
        {
            "reference": saisine.reference,
            "starts_at": meeting.starts_at.isoformat(),
            "host": names.get(meeting.host_organisation_id, ""),
            "invited": [names.get(i, "") for i in invited_ids],
        },
    )
    _convoke(session, meeting, added)
    _touch(session, saisine)
    return meeting


def _wake_meeting_runs(session: Session, meeting: CellMeeting) -> None:
    """The runs waiting for this meeting's day re-read it (cancelled or moved)."""
    for saisine in meeting_items(session, meeting):
        assert saisine.id is not None
        wake_case(
            session=session,
            case_type=SAISINE,
            case_id=saisine.id,
            steps=[meeting_wait_step(meeting)],
        )


def meeting_wait_step(meeting: CellMeeting) -> str:
    return f"meeting-{meeting.id}-day"


def cancel_meeting(*, session: Session, meeting: CellMeeting, reason: str, actor: Actor) -> None:
    """Cancel a planned meeting: calendar CANCEL (higher SEQUENCE) to every member."""
    if not reason.strip():
        raise DomainError("Indiquez le motif de l'annulation.")
    change_status(
        session=session, entity=meeting, to=MeetingStatus.CANCELLED, actor=actor, reason=reason
    )
    meeting.sequence += 1
    meeting.cancel_reason = reason.strip()
    session.add(meeting)
    session.flush()
    assert meeting.id is not None
    part = _calendar(session, meeting, CalendarMethod.CANCEL)
    for member in meeting_members(session, meeting):
        enqueue(
            session=session,
            scope=meeting_scope(meeting),
            to=_recipient(session, member.contact_id),
            template="saisine_meeting_cancelled",
            context={"references": [s.reference for s in meeting_items(session, meeting)]},
            dedup_key=f"cancel-{meeting.id}-contact-{member.contact_id}",
            calendar=part,
        )
    _meeting_event(session, meeting, "meeting.cancelled", actor, {"reason": reason.strip()})
    _wake_meeting_runs(session, meeting)


def reschedule_meeting(
    *, session: Session, meeting: CellMeeting, starts_at: datetime, actor: Actor
) -> None:
    """Move a planned meeting: a new REQUEST with a higher SEQUENCE; answers asked again."""
    if meeting.status is not MeetingStatus.PLANNED:
        raise DomainError("Seule une réunion prévue peut être déplacée.")
    if starts_at <= clock.now(session):
        raise DomainError("La nouvelle date doit être dans le futur.")
    before = meeting.starts_at
    meeting.starts_at = starts_at
    meeting.sequence += 1
    session.add(meeting)
    members = meeting_members(session, meeting)
    for member in members:
        member.attending = None
        member.answered_at = None
        session.add(member)
    session.flush()
    _meeting_event(
        session,
        meeting,
        "meeting.moved",
        actor,
        {"from": before.isoformat(), "to": starts_at.isoformat(), "sequence": meeting.sequence},
    )
    _convoke(session, meeting, members)
    _wake_meeting_runs(session, meeting)


def record_attendance(
    *, session: Session, member: MeetingMember, attending: bool, actor: Actor
) -> None:
    meeting = session.get(CellMeeting, member.meeting_id)
    assert meeting is not None
    if meeting.status is not MeetingStatus.PLANNED:
        raise DomainError("Cette réunion n'est plus prévue.")
    member.attending = attending
    member.answered_at = clock.now(session)
    session.add(member)
    _meeting_event(
        session,
        meeting,
        "meeting.attendance",
        actor,
        {"organisation": _org_label(session, member.organisation_id), "attending": attending},
    )


def mark_meeting_held(*, session: Session, meeting: CellMeeting, actor: Actor) -> None:
    if meeting.status is MeetingStatus.HELD:
        return
    if meeting.starts_at > clock.now(session):
        raise DomainError("La réunion n'a pas encore eu lieu.")
    change_status(session=session, entity=meeting, to=MeetingStatus.HELD, actor=actor)
    _meeting_event(session, meeting, "meeting.held", actor, {})


def back_to_level1(*, session: Session, saisine: Saisine, reason: str, actor: Actor) -> None:
    """Level 2 abandoned (e.g. meeting cancelled): bilateral exchanges again."""
    if current_meeting(session, saisine) is not None:
        raise DomainError("Annulez d'abord la réunion prévue.")
    saisine.round += 1
    change_status(
        session=session,
        entity=saisine,
        to=SaisineStatus.LEVEL1,
        actor=actor,
        reason=reason,
        details={"round": saisine.round},
    )
    _touch(session, saisine)


# -- decision and actions ----------------------------------------------------------------------
def decision_of(session: Session, saisine: Saisine) -> Decision | None:
    return session.exec(select(Decision).where(Decision.saisine_id == saisine.id)).first()


def actions_of(session: Session, saisine: Saisine) -> list[DecisionAction]:
    return list(
        session.exec(
            select(DecisionAction)
            .where(DecisionAction.saisine_id == saisine.id)
            .order_by(col(DecisionAction.id))
        )
    )


def record_decision(
    *,
    session: Session,
    saisine: Saisine,
    meeting: CellMeeting,
    text: str,
    actions: list[ActionPlan],
    actor: Actor,
) -> Decision:
    """The cell's decision after a held meeting; each action's owner gets a closing link."""
    check_decision_allowed(saisine.status, meeting.status)
    if not text.strip():
        raise DomainError("Le texte de la décision est requis.")
    assert saisine.id is not None and meeting.id is not None
    moment = clock.now(session)
    decision = Decision(
        saisine_id=saisine.id, meeting_id=meeting.id, text=text.strip(), decided_at=moment
    )
    session.add(decision)
    session.flush()
    assert decision.id is not None
    for plan in actions:
        if not plan.text.strip():
            continue
        action = DecisionAction(
            decision_id=decision.id,
            saisine_id=saisine.id,
            text=plan.text.strip(),
            owner_contact_id=plan.owner_contact_id,
            due_on=plan.due_on,
        )
        session.add(action)
        session.flush()
        link = _link_to(session, saisine, plan.owner_contact_id, STEP_ACTION, action.id)
        _mail(
            session,
            saisine,
            to=_recipient(session, plan.owner_contact_id),
            template="saisine_action",
            dedup_key=f"action-{action.id}",
            link=link,
            due_on=f"{plan.due_on:%d/%m/%Y}",
            reminder=False,
        )
    change_status(
        session=session,
        entity=saisine,
        to=SaisineStatus.DECIDED,
        actor=actor,
        details={
            "decision_id": decision.id,
            "meeting_id": meeting.id,
            "text": decision.text,
            "actions": [
                {
                    "text": a.text,
                    "owner_contact_id": a.owner_contact_id,
                    "due_on": a.due_on.isoformat(),
                }
                for a in actions_of(session, saisine)
            ],
        },
    )
    members = [m.contact_id for m in meeting_members(session, meeting)]
    _tell_outcome(session, saisine, f"decision-{decision.id}", members)
    _touch(session, saisine)
    return decision


def close_action(
    *, session: Session, action: DecisionAction, note: str, actor: Actor, link_id: int | None
) -> None:
    change_status(
        session=session,
        entity=action,
        to=ActionStatus.DONE,
        actor=actor,
        details={"note": note.strip()},
    )
    action.done_at = clock.now(session)
    action.closing_note = note.strip()
    action.closed_by_link_id = link_id
    session.add(action)
    session.flush()


def action_moments(action: DecisionAction) -> tuple[datetime, datetime]:
    """When the owner is reminded (2 business days before) and the coordinator alerted."""
    tz = get_settings().tz
    return (
        at_local(add_business_days(action.due_on, -2), 9, tz),
        at_local(add_business_days(action.due_on, 1), 9, tz),
    )


def next_action_alarm(session: Session, saisine: Saisine) -> datetime | None:
    pending: list[datetime] = []
    for action in actions_of(session, saisine):
        if action.status is not ActionStatus.OPEN:
            continue
        remind, alert = action_moments(action)
        if action.reminded_at is None:
            pending.append(remind)
        elif action.escalated_at is None:
            pending.append(alert)
    return min(pending) if pending else None


def remind_action_owners(*, session: Session, saisine: Saisine) -> int:
    """Reminders due to owners, alerts due to the coordinator (each once)."""
    moment = clock.now(session)
    sent = 0
    for action in actions_of(session, saisine):
        if action.status is not ActionStatus.OPEN:
            continue
        remind, alert = action_moments(action)
        if action.reminded_at is None and moment >= remind:
            link = _link_to(session, saisine, action.owner_contact_id, STEP_ACTION, action.id)
            _mail(
                session,
                saisine,
                to=_recipient(session, action.owner_contact_id),
                template="saisine_action",
                dedup_key=f"action-{action.id}-reminder",
                link=link,
                due_on=f"{action.due_on:%d/%m/%Y}",
                reminder=True,
            )
            action.reminded_at = moment
            _event(session, saisine, "action.reminded", Actor.system(), {"action_id": action.id})
            sent += 1
        if action.reminded_at is not None and action.escalated_at is None and moment >= alert:
            _mail(
                session,
                saisine,
                to=_coordinator(session, saisine),
                template="saisine_coordinator_alert",
                dedup_key=f"action-{action.id}-overdue",
                alert="action",
                names=[_recipient(session, action.owner_contact_id).name],
            )
            action.escalated_at = moment
            _event(session, saisine, "action.overdue", Actor.system(), {"action_id": action.id})
            sent += 1
        session.add(action)
    session.flush()
    return sent


def actions_done(session: Session, saisine: Saisine) -> bool:
    return all(a.status is not ActionStatus.OPEN for a in actions_of(session, saisine))


# -- closing -----------------------------------------------------------------------------------
def close_saisine(*, session: Session, saisine: Saisine, reason: str, actor: Actor) -> None:
    """Close: every action done, or a reason from the coordinator (open actions dropped)."""
    actions = actions_of(session, saisine)
    check_close_allowed([a.status for a in actions], reason)
    for action in actions:
        if action.status is ActionStatus.OPEN:
            change_status(
                session=session, entity=action, to=ActionStatus.DROPPED, actor=actor, reason=reason
            )
    change_status(
        session=session, entity=saisine, to=SaisineStatus.CLOSED, actor=actor, reason=reason
    )
    saisine.closed_at = clock.now(session)
    saisine.close_reason = reason.strip() or "actions réalisées"
    _touch(session, saisine)
    # runs waiting on a date or on links re-read the saisine and finish
    assert saisine.id is not None
    wake_case(session=session, case_type=SAISINE, case_id=saisine.id, coordinator_forms=False)


# -- retention ---------------------------------------------------------------------------------
def purge_closed_saisines(*, session: Session, older_than_years: int) -> list[str]:
    """Erase the personal data of saisines closed more than N years ago; audited.

    The description fields are nulled and the payloads of the case's audit events erased
    (digests kept), so the chain still verifies. Returns the references purged.
    """
    moment = clock.now(session)
    limit = moment - timedelta(days=365 * older_than_years)
    purged: list[str] = []
    for saisine in session.exec(
        select(Saisine).where(
            col(Saisine.closed_at).is_not(None),
            col(Saisine.closed_at) <= limit,
            col(Saisine.purged_at).is_(None),
        )
    ):
        assert saisine.id is not None
        saisine.initials = saisine.age_range = saisine.commune = saisine.difficulty = None
        saisine.consent_note = None
        saisine.purged_at = moment
        for consultation in consultations(session, saisine):
            consultation.proposal = None
            session.add(consultation)
        for follow_up in session.exec(select(FollowUp).where(FollowUp.saisine_id == saisine.id)):
            follow_up.comment = ""
            session.add(follow_up)
        _touch(session, saisine)
        redact_case(
            session=session,
            case_type=SAISINE,
            case_id=saisine.id,
            actor=Actor.system(),
            reason=f"fin de la durée de conservation ({older_than_years} ans)",
        )
        purged.append(saisine.reference)
    return purged


# -- yearly report -----------------------------------------------------------------------------
def _report_case(session: Session, saisine: Saisine) -> ReportCase:
    tz = get_settings().tz
    meetings = meetings_of(session, saisine)
    decision = decision_of(session, saisine)
    orientation_list = orientations(session, saisine)
    orientation = orientation_list[-1] if orientation_list else None
    held = next((m for m in meetings if m.id == decision.meeting_id), None) if decision else None
    if held is not None:
        day = local_date(held.starts_at, tz)
    elif orientation is not None:
        day = local_date(orientation.decided_at, tz)
    else:
        day = local_date(saisine.received_at, tz)
    invited: list[str] = []
    if held is not None:
        for member in meeting_members(session, held):
            if member.invited_for_saisine_id == saisine.id:
                invited.append(_org_label(session, member.organisation_id))
    return ReportCase(
        reference=saisine.reference,
        month_day=day,
        referrer=_org_label(session, saisine.referrer_organisation_id),
        status=saisine.status,
        orientation=orientation.text if orientation and not decision else "",
        orientation_kind=orientation.kind if orientation and not decision else None,
        decision=decision.text if decision else "",
        invited=tuple(invited),
        meeting_cancelled=any(m.status is MeetingStatus.CANCELLED for m in meetings),
        escalated=bool(meetings) and orientation is None,
    )


def yearly_report(session: Session, clsm_id: int, year: int) -> YearlyReport:
    """The table of the annual report: one row per saisine, then counts per level."""
    saisines = session.exec(select(Saisine).where(Saisine.clsm_id == clsm_id))
    return build_report(year, [_report_case(session, s) for s in saisines])


def record_report_read(
    *, session: Session, clsm_id: int, report: YearlyReport, actor: Actor, form: str
) -> int:
    """The yearly report names each saisine's referrer and decisions: its read is recorded
    in the history of every saisine it shows (`report.read`)."""
    references = [row.reference for row in report.rows]
    shown = session.exec(
        select(Saisine).where(Saisine.clsm_id == clsm_id, col(Saisine.reference).in_(references))
    ).all()
    for saisine in shown:
        assert saisine.id is not None
        record_event(
            session=session,
            case_type=SAISINE,
            case_id=saisine.id,
            action="report.read",
            actor=actor,
            payload={"report": f"bilan {report.year}", "format": form},
        )
    return len(shown)


def yearly_report_csv(
    session: Session, clsm_id: int, year: int, report: YearlyReport | None = None
) -> str:
    report = report or yearly_report(session, clsm_id, year)
    totals = [[f"Total {level.value}", str(count)] for level, count in report.counts.items()]
    return csv_text([*report_csv_rows(report), [], *totals])


__all__ = [
    "AGE_RANGES",
    "CHANNELS",
    "ActionPlan",
    "CellMeeting",
    "Consultation",
    "Decision",
    "DecisionAction",
    "FollowUp",
    "MeetingItem",
    "MeetingMember",
    "Orientation",
    "Saisine",
    "SaisineIntake",
]
