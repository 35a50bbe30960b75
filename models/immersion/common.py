"""What every step of a session reads and writes: lookups, its scope, events, mails, links.

The plumbing itself (audit events, outbox rows, links, reminder plans) is
`models.core.scope`; here it is bound to a session row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import update
from sqlmodel import Session, SQLModel, col, select

from models.core import scope as core
from models.core.audit import Actor
from models.core.errors import NotFound, StaleUpdate
from models.core.kinds import CaseScope
from models.core.links import StepLink
from models.core.mails import MailContext
from models.core.outbox import Attachment, CalendarPart, OutboxMessage, Recipient
from models.core.people import Clsm, Contact, Organisation
from models.core.reminders import stop_reminders
from models.core.status import change_status
from models.core.waits import Wait, WaitStatus
from models.immersion.states import ApplicationStatus, Party, PlacementStatus, SessionStatus, Step
from models.immersion.tables import (
    ACTIVE_PLACEMENT,
    CASE,
    Agreement,
    Application,
    ImmersionSession,
    InvitedStructure,
    Placement,
)

_T = TypeVar("_T", bound=SQLModel)
EXAMPLE_TITLE = "Immersions 2022 — session 2"


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


def participants(session: Session, row: ImmersionSession) -> list[Application]:
    """The kept applications (selected, or whose immersion is done)."""
    assert row.id is not None
    return applications(session, row.id, ApplicationStatus.SELECTED, ApplicationStatus.COMPLETED)


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


def contact(session: Session, contact_id: int | None) -> Contact:
    row = session.get(Contact, contact_id) if contact_id is not None else None
    if row is None:
        raise NotFound(f"contact n°{contact_id} introuvable")
    return row


def organisation(session: Session, organisation_id: int) -> Organisation:
    row = session.get(Organisation, organisation_id)
    if row is None:
        raise NotFound(f"structure n°{organisation_id} introuvable")
    return row


def referent(session: Session, organisation_id: int) -> Contact | None:
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
    session: Session,
    *,
    organisation_id: int,
    name: str,
    email: str,
    function: str = "",
    created: list[int] | None = None,
) -> Contact:
    """The contact with this e-mail in this structure, created if missing (its id then
    added to `created`)."""
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
        if created is not None and row.id is not None:
            created.append(row.id)
    return row


def application_of(session: Session, placement: Placement) -> Application:
    application = session.get(Application, placement.application_id)
    assert application is not None
    return application


def participant(session: Session, placement: Placement) -> Contact:
    return contact(session, application_of(session, placement).contact_id)


def parties(session: Session, placement: Placement) -> dict[Party, Contact]:
    """The three signatories of a placement's agreement."""
    application = application_of(session, placement)
    return {
        "participant": contact(session, application.contact_id),
        "manager": contact(session, application.manager_contact_id),
        "tutor": contact(session, placement.tutor_contact_id),
    }


def subject(session: Session, link: StepLink, model: type[_T]) -> _T:
    """The row a link is about (an application, a placement, an agreement) in its session."""
    row = session.get(model, link.subject_id) if link.subject_id is not None else None
    if row is None or getattr(row, "session_id", link.case_id) != link.case_id:
        raise NotFound("élément introuvable pour ce lien")
    return row


def current_wait_step(session: Session, issued: StepLink) -> str | None:
    """Whatever the session's flow run waits on now: an answer may change what comes next."""
    wait = session.exec(
        select(Wait)
        .where(
            Wait.case_type == CASE.value,
            Wait.case_id == issued.case_id,
            Wait.status == WaitStatus.OPEN,
        )
        .order_by(col(Wait.since).desc())
    ).first()
    return wait.step if wait else None


def coordinator(session: Session, row: ImmersionSession) -> Recipient:
    clsm = session.get(Clsm, row.clsm_id)
    assert clsm is not None
    return Recipient(email=clsm.coordinator_email, name=clsm.coordinator_name or "Coordination")


# -- writing ----------------------------------------------------------------------------
def scope(row: ImmersionSession) -> CaseScope:
    """What this session's events, mails, links and reminders are filed under."""
    assert row.id is not None
    return CaseScope(CASE, row.id, row.clsm_id, row.reference)


def bump(session: Session, row: ImmersionSession) -> None:
    """Optimistic locking: raise StaleUpdate if the session changed since it was read."""
    result = session.execute(
        update(ImmersionSession)
        .where(col(ImmersionSession.id) == row.id, col(ImmersionSession.version) == row.version)
        .values(version=row.version + 1)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise StaleUpdate(row.reference)
    row.version += 1


def advance_to(
    *, session: Session, row: ImmersionSession, to: SessionStatus, actor: Actor, reason: str = ""
) -> None:
    """Move the session on (no-op if it is already there: replays)."""
    if row.status is to:
        return
    change_status(session=session, entity=row, to=to, actor=actor, reason=reason)
    bump(session, row)


def event(
    session: Session,
    row: ImmersionSession,
    action: str,
    actor: Actor,
    payload: dict[str, Any],
) -> None:
    core.record(session=session, scope=scope(row), action=action, actor=actor, payload=payload)


class SessionMail(MailContext):
    """A mail of a session: every template names the session."""

    session_title: str


def mail(
    session: Session,
    row: ImmersionSession,
    *,
    to: Contact | Recipient,
    message: SessionMail,
    dedup_key: str,
    calendar: CalendarPart | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> OutboxMessage:
    return core.mail(
        session=session,
        scope=scope(row),
        to=to,
        message=message,
        dedup_key=dedup_key,
        calendar=calendar,
        attachments=attachments,
    )


def sent(session: Session, row: ImmersionSession, dedup_key: str) -> bool:
    """Whether the session already queued the mail of this dedup key."""
    return (
        session.exec(
            select(OutboxMessage.id).where(
                OutboxMessage.case_type == CASE.value,
                OutboxMessage.case_id == row.id,
                OutboxMessage.dedup_key == dedup_key,
            )
        ).first()
        is not None
    )


def link(
    session: Session,
    row: ImmersionSession,
    to: Contact,
    step: Step,
    subject_id: int | None,
    *,
    multi_use: bool = False,
    until: datetime | None = None,
) -> StepLink:
    assert to.id is not None
    return core.link(
        session=session,
        scope=scope(row),
        contact_id=to.id,
        step=step,
        subject_id=subject_id,
        multi_use=multi_use,
        until=until,
    )


def personal_link(session: Session, row: ImmersionSession, application: Application) -> StepLink:
    """The applicant's link to change or withdraw (the one of the acknowledgement, reusable
    until the withdrawal cut-off), issued anew if the application came without one."""
    existing = session.exec(
        select(StepLink)
        .where(
            StepLink.case_type == CASE.value,
            StepLink.case_id == row.id,
            StepLink.step == Step.CHANGE,
            StepLink.subject_id == application.id,
        )
        .order_by(col(StepLink.id).desc())
    ).first()
    if existing is not None:
        return existing
    return link(
        session,
        row,
        contact(session, application.contact_id),
        Step.CHANGE,
        application.id,
        multi_use=True,
        until=row.withdrawal_cutoff,
    )


def awaited_link(
    session: Session,
    row: ImmersionSession,
    to: Contact,
    step: Step,
    subject_id: int | None,
    *,
    deadline: datetime,
    step_label: str,
) -> StepLink:
    """A link whose answer is awaited: reminded before `deadline`, escalated after it."""
    assert to.id is not None
    return core.awaited_link(
        session=session,
        scope=scope(row),
        contact_id=to.id,
        step=step,
        subject_id=subject_id,
        deadline=deadline,
        step_label=step_label,
    )


def stop_reminders_of(
    session: Session, row: ImmersionSession, step: Step, subject_id: int | None
) -> None:
    for issued in session.exec(
        select(StepLink).where(
            StepLink.case_type == CASE.value,
            StepLink.case_id == row.id,
            StepLink.step == step,
            StepLink.subject_id == subject_id,
        )
    ):
        stop_reminders(session, issued.id or 0, "annulé")


class AlertMail(SessionMail):
    """To the coordinator: something the session cannot settle alone."""

    template: ClassVar[str] = "immersion_alert"
    alert: str
    run_url: str
    """The session's run in the Prefect UI, through the service's gateway."""

    @classmethod
    def example(cls) -> AlertMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            alert="Signatures de convention en retard : Camille Dupont (stagiaire).",
            run_url="http://127.0.0.1:8000/prefect/runs/flow-run/3f2b8f0e-0000-4000-8000-000000000001",
        )
