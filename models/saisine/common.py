"""What every step of a saisine shares: lookups, the case's scope, its events, mails and
links, and the moves of the whole saisine that several steps make (escalate to level 2,
reopen level 1, close). Step modules build on this and never on each other.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeVar

from sqlmodel import Session, col, select

from models.core import clock, scope
from models.core.audit import Actor
from models.core.calendar import local_date
from models.core.errors import DomainError, NotFound
from models.core.kinds import CaseScope
from models.core.links import StepLink
from models.core.mails import MailContext
from models.core.outbox import Recipient
from models.core.people import Clsm, Contact, Organisation, Partnership
from models.core.settings import get_settings
from models.core.status import change_status
from models.core.waits import WaitStatus, find_wait, wake_case
from models.saisine.rules import Convention, check_close_allowed, consultable
from models.saisine.states import (
    ActionStatus,
    ConsultationStatus,
    MeetingStatus,
    SaisineStatus,
    Step,
)
from models.saisine.tables import (
    MEETING,
    SAISINE,
    CellMeeting,
    Consultation,
    Decision,
    DecisionAction,
    FollowUp,
    MeetingItem,
    MeetingMember,
    Orientation,
    Saisine,
)

EXAMPLE_REFERENCE = "2026-03"


# -- lookups -----------------------------------------------------------------------------------
def get_saisine(session: Session, saisine_id: int) -> Saisine:
    saisine = session.get(Saisine, saisine_id)
    if saisine is None:
        raise NotFound(f"saisine n°{saisine_id} introuvable")
    return saisine


def saisine_by_run(session: Session, flow_run_id: str) -> Saisine | None:
    return session.exec(select(Saisine).where(Saisine.flow_run_id == flow_run_id)).first()


def contact(session: Session, contact_id: int) -> Contact:
    found = session.get(Contact, contact_id)
    assert found is not None
    return found


def org_label(session: Session, organisation_id: int) -> str:
    org = session.get(Organisation, organisation_id)
    return org.label if org else "?"


def first_contact(session: Session, organisation_id: int) -> Contact:
    found = session.exec(
        select(Contact).where(Contact.organisation_id == organisation_id).order_by(col(Contact.id))
    ).first()
    if found is None:
        raise DomainError(f"{org_label(session, organisation_id)} : aucun contact enregistré")
    return found


def conventions(session: Session, clsm_id: int) -> list[Convention]:
    return [
        Convention(p.organisation_id, p.starts_on, p.ends_on)
        for p in session.exec(select(Partnership).where(Partnership.clsm_id == clsm_id))
    ]


def consultable_organisations(session: Session, saisine: Saisine) -> list[Organisation]:
    """Structures the coordinator may consult today (valid convention), referrer excluded."""
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


def orientations(session: Session, saisine: Saisine) -> list[Orientation]:
    return list(
        session.exec(
            select(Orientation)
            .where(Orientation.saisine_id == saisine.id)
            .order_by(col(Orientation.id))
        )
    )


def current_follow_up(session: Session, saisine: Saisine) -> FollowUp | None:
    return session.exec(
        select(FollowUp).where(FollowUp.saisine_id == saisine.id, FollowUp.round == saisine.round)
    ).first()


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


# -- the case: scope, events, mails, links ---------------------------------------------------
def saisine_scope(saisine: Saisine) -> CaseScope:
    """What this saisine's events, mails and links are filed under."""
    assert saisine.id is not None
    return CaseScope(SAISINE, saisine.id, saisine.clsm_id, saisine.label)


def meeting_label(meeting: CellMeeting) -> str:
    return f"Réunion de cellule du {meeting.starts_at.astimezone(get_settings().tz):%d/%m/%Y}"


def meeting_scope(meeting: CellMeeting) -> CaseScope:
    """What this meeting's events and convocations are filed under."""
    assert meeting.id is not None
    return CaseScope(MEETING, meeting.id, meeting.clsm_id, meeting_label(meeting))


def event(
    session: Session, saisine: Saisine, action: str, actor: Actor, payload: dict[str, Any]
) -> None:
    scope.record(
        session=session, scope=saisine_scope(saisine), action=action, actor=actor, payload=payload
    )


def meeting_event(
    session: Session, meeting: CellMeeting, action: str, actor: Actor, payload: dict[str, Any]
) -> None:
    """Meeting events go to the meeting's case and to every saisine it examines."""
    body = {"meeting_id": meeting.id, **payload}
    scope.record(
        session=session, scope=meeting_scope(meeting), action=action, actor=actor, payload=body
    )
    for saisine in meeting_items(session, meeting):
        event(session, saisine, action, actor, body)


def touch(session: Session, saisine: Saisine) -> None:
    """Mark the saisine changed: the version column guards concurrent writers."""
    session.add(saisine)
    session.flush()


def coordinator(session: Session, saisine: Saisine) -> Recipient:
    clsm = session.get(Clsm, saisine.clsm_id)
    assert clsm is not None
    return Recipient(email=clsm.coordinator_email, name=clsm.coordinator_name)


class SaisineMail(MailContext):
    """A saisine mail: its reference and a few labels; never the description."""

    reference: str


def mail(
    session: Session,
    saisine: Saisine,
    *,
    to: Contact | Recipient,
    message: SaisineMail,
    dedup_key: str,
) -> None:
    scope.mail(
        session=session,
        scope=saisine_scope(saisine),
        to=to,
        message=message,
        dedup_key=dedup_key,
    )


def link_to(
    session: Session, saisine: Saisine, contact_id: int, step: Step, subject_id: int | None
) -> StepLink:
    return scope.link(
        session=session,
        scope=saisine_scope(saisine),
        contact_id=contact_id,
        step=step,
        subject_id=subject_id,
        multi_use=step is Step.OUTCOME,
    )


class CoordinatorAlertMail(SaisineMail):
    """To the coordinator: a description to type, partners silent at the deadline, a silent
    follow-up, a late action; with the link of the page where the next task is."""

    template: ClassVar[str] = "saisine_coordinator_alert"
    alert: Literal["description", "consultations", "follow-up", "action"]
    names: list[str]
    run_url: str
    """The saisine's run in the Prefect UI, through the service's gateway."""
    page_url: str = ""
    """The service page of the next task (the description page, or the saisine's page)."""

    @classmethod
    def example(cls) -> CoordinatorAlertMail:
        return cls(
            reference=EXAMPLE_REFERENCE,
            alert="consultations",
            names=["DAC-PTA"],
            run_url="http://127.0.0.1:8000/prefect/runs/flow-run/3f2b8f0e-0000-4000-8000-000000000001",
            page_url="http://127.0.0.1:8000/saisines/1",
        )


def saisine_page_url(saisine: Saisine) -> str:
    """The coordinator's page of the saisine in the service."""
    return f"{get_settings().base_url.rstrip('/')}/saisines/{saisine.id}"


def alert_coordinator(
    session: Session,
    saisine: Saisine,
    *,
    alert: Literal["description", "consultations", "follow-up", "action"],
    names: list[str],
    dedup_key: str,
    page_url: str = "",
) -> None:
    mail(
        session,
        saisine,
        to=coordinator(session, saisine),
        message=CoordinatorAlertMail(
            reference=saisine.reference,
            alert=alert,
            names=names,
            run_url=get_settings().run_url(saisine.flow_run_id),
            page_url=page_url or saisine_page_url(saisine),
        ),
        dedup_key=dedup_key,
    )


class OutcomeMail(SaisineMail):
    """To the referrer and the partners concerned: an orientation or a decision to read."""

    template: ClassVar[str] = "saisine_outcome"
    link_id: int
    outcome: Literal["orientation", "decision"]

    @classmethod
    def example(cls) -> OutcomeMail:
        return cls(reference=EXAMPLE_REFERENCE, link_id=1, outcome="orientation")


def tell_outcome(
    session: Session,
    saisine: Saisine,
    outcome: Literal["orientation", "decision"],
    outcome_id: int | None,
    contact_ids: list[int],
) -> None:
    """Mail the referrer and the partners concerned: reference + link to the outcome page."""
    for contact_id in dict.fromkeys([saisine.referrer_contact_id, *contact_ids]):
        link = link_to(session, saisine, contact_id, Step.OUTCOME, None)
        assert link.id is not None
        mail(
            session,
            saisine,
            to=contact(session, contact_id),
            message=OutcomeMail(reference=saisine.reference, link_id=link.id, outcome=outcome),
            dedup_key=f"outcome-{outcome}-{outcome_id}-contact-{contact_id}",
        )


# -- partner pages -----------------------------------------------------------------------------
Subject = TypeVar("Subject", Consultation, FollowUp, MeetingMember, DecisionAction)


def subject_of(session: Session, model: type[Subject], link: StepLink) -> Subject:
    """The row a link is about (a consultation, a follow-up, a member, an action)."""
    row = session.get(model, link.subject_id) if link.subject_id is not None else None
    if row is None:
        raise NotFound("Cette demande n'existe plus.")
    return row


def open_wait_step(session: Session, saisine: Saisine, *steps: str) -> str | None:
    """The first of `steps` the saisine's run is waiting on, if any."""
    assert saisine.id is not None
    for step in steps:
        wait = find_wait(session=session, case_type=SAISINE, case_id=saisine.id, step=step)
        if wait is not None and wait.status is WaitStatus.OPEN:
            return step
    return None


# -- moves of the whole saisine ---------------------------------------------------------------
def close_consultations(session: Session, saisine: Saisine, actor: Actor) -> None:
    """Level 1 of this round is over: its consultations close."""
    for consultation in consultations(session, saisine, saisine.round):
        if consultation.status is not ConsultationStatus.CLOSED:
            change_status(
                session=session, entity=consultation, to=ConsultationStatus.CLOSED, actor=actor
            )


def escalate_to_level2(*, session: Session, saisine: Saisine, actor: Actor, reason: str) -> None:
    close_consultations(session, saisine, actor)
    change_status(
        session=session, entity=saisine, to=SaisineStatus.LEVEL2, actor=actor, reason=reason
    )
    touch(session, saisine)


def reopen_level1(
    *, session: Session, saisine: Saisine, reason: str, actor: Actor, new_round: bool = True
) -> None:
    """Bilateral exchanges again: in a new round (new consultations, new orientation), or in
    the same round, whose answers stand (an orientation may be recorded at once)."""
    if new_round:
        saisine.round += 1
    change_status(
        session=session,
        entity=saisine,
        to=SaisineStatus.LEVEL1,
        actor=actor,
        reason=reason,
        details={"round": saisine.round},
    )
    touch(session, saisine)


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
    touch(session, saisine)
    # runs waiting on a date or on links re-read the saisine and finish
    assert saisine.id is not None
    wake_case(session=session, case_type=SAISINE, case_id=saisine.id, coordinator_forms=False)
