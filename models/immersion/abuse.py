"""Abuse of the call link: applications refused by its limits are counted (never what was
typed), a coordinator flags an application as abusive and purges it before the selection.

A purge erases what the application brought: its free text, the contacts it created (unless
something else uses them since), the address on its mails, the payloads of its audit events
(through the audit's erasure path, which writes `personal-data.erased`); its links stop
working and its status becomes `purged`, which no selection takes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from models.core import clock
from models.core.audit import Actor, AuditEvent, redact_case
from models.core.errors import DomainError, NotFound
from models.core.links import StepLink
from models.core.outbox import OutboxMessage, OutboxStatus
from models.core.people import Contact
from models.core.settings import get_settings
from models.core.status import change_status
from models.immersion.common import event, get_session, organisation
from models.immersion.states import ApplicationStatus, SessionStatus, Step
from models.immersion.tables import (
    CASE,
    Application,
    ImmersionSession,
    Placement,
    RefusedApplications,
)

ERASED_NAME = "Personne effacée"
# the selection has not been made while the session is in one of these
BEFORE_SELECTION = (SessionStatus.CALL_OPEN, SessionStatus.SELECTION)


def client_hash(address: str) -> str:
    """A client address as kept in the refusal counts: keyed, so not reversible by trying
    every address, and short; enough to tell one sender's burst from another's."""
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"client:{address}".encode(), hashlib.sha256).hexdigest()[:16]


def record_refused(*, session: Session, link: StepLink, address: str) -> None:
    """Count one application refused by the call link's limits (in its own transaction)."""
    moment = clock.now(session)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    client = client_hash(address)
    for _ in range(2):  # two processes may create the same hour's row at once
        row = session.exec(
            select(RefusedApplications).where(
                RefusedApplications.link_id == link.id,
                RefusedApplications.client_hash == client,
                RefusedApplications.hour == hour,
            )
        ).first()
        if row is None:
            assert link.id is not None
            row = RefusedApplications(
                session_id=link.case_id,
                link_id=link.id,
                client_hash=client,
                hour=hour,
                last_at=moment,
            )
        row.count += 1
        row.last_at = moment
        session.add(row)
        try:
            session.commit()
            return
        except IntegrityError:
            session.rollback()


def get_application(session: Session, row: ImmersionSession, application_id: int) -> Application:
    application = session.get(Application, application_id)
    if application is None or application.session_id != row.id:
        raise NotFound("Candidature introuvable dans cette session.")
    return application


def flag_application(
    *, session: Session, application: Application, reason: str, actor: Actor
) -> None:
    """A coordinator flags an application as abusive; audited, naming them."""
    if application.status is ApplicationStatus.PURGED:
        raise DomainError("Cette candidature est déjà effacée.")
    if application.flagged_at is not None:
        raise DomainError(f"La candidature n°{application.number} est déjà signalée.")
    row = get_session(session, application.session_id)
    application.flagged_at = clock.now(session)
    application.flagged_by = actor.label
    application.flag_reason = reason.strip()
    session.add(application)
    event(
        session,
        row,
        "application.flagged",
        actor,
        {"application_id": application.id, "number": application.number, "reason": reason},
    )


def _used_elsewhere(session: Session, person: Contact, application: Application) -> bool:
    """Whether something else names this contact since (another application, a placement,
    a role given in the directory): then it is not this application's to erase."""
    if person.roles:
        return True
    other = session.exec(
        select(Application.id).where(
            Application.id != application.id,
            or_(
                col(Application.contact_id) == person.id,
                col(Application.manager_contact_id) == person.id,
            ),
        )
    ).first()
    placed = session.exec(
        select(Placement.id).where(
            or_(
                col(Placement.host_contact_id) == person.id,
                col(Placement.tutor_contact_id) == person.id,
            )
        )
    ).first()
    return other is not None or placed is not None


def _erase_contacts(session: Session, application: Application) -> list[int]:
    erased: list[int] = []
    for contact_id in application.created_contacts:
        person = session.get(Contact, contact_id)
        if person is None or _used_elsewhere(session, person, application):
            continue
        person.name = ERASED_NAME
        person.email = f"efface-{contact_id}@invalid"
        person.function = person.phone = ""
        person.active = False
        session.add(person)
        erased.append(contact_id)
    return erased


def _forget_mails_and_links(
    session: Session, application: Application, contacts: list[int]
) -> None:
    """Its personal link stops working and its mails not yet sent stay unsent; the contacts
    it created (`contacts`) lose every link and address of the session. A contact it only
    found (a real partner's address typed by someone else) keeps its own links and mails."""
    now = clock.now(session)
    for link in session.exec(
        select(StepLink).where(
            StepLink.case_type == CASE.value,
            StepLink.case_id == application.session_id,
            or_(
                col(StepLink.contact_id).in_(contacts),
                col(StepLink.subject_id) == application.id,
            ),
        )
    ):
        if link.contact_id in contacts or link.step == Step.CHANGE:
            link.expires_at = min(link.expires_at, now)
            session.add(link)
    for message in session.exec(
        select(OutboxMessage).where(
            OutboxMessage.case_type == CASE.value,
            OutboxMessage.case_id == application.session_id,
            or_(
                col(OutboxMessage.contact_id).in_(contacts),
                col(OutboxMessage.dedup_key).startswith(f"application-{application.id}-"),
            ),
        )
    ):
        if message.contact_id in contacts:
            message.recipient_email = f"efface-{message.contact_id}@invalid"
            message.recipient_name = ""
        if message.status is OutboxStatus.PENDING:
            message.status = OutboxStatus.FAILED
            message.last_error = "non envoyé : candidature effacée (abus)"
        session.add(message)


def _events_of(session: Session, application: Application, contacts: list[int]) -> list[int]:
    """The seqs of the session's events that concern this application or its contacts."""
    seqs: list[int] = []
    for found in session.exec(
        select(AuditEvent).where(
            AuditEvent.case_type == CASE.value,
            AuditEvent.case_id == application.session_id,
            col(AuditEvent.payload).is_not(None),
        )
    ):
        payload = found.payload or {}
        if (
            payload.get("application_id") == application.id
            or (
                payload.get("entity") == Application.entity_name
                and payload.get("id") == application.id
            )
            or payload.get("contact_id") in contacts
        ):
            seqs.append(found.seq)
    return seqs


def purge_application(*, session: Session, application: Application, actor: Actor) -> int:
    """Erase a flagged application before the selection; returns the contacts erased.

    Refused (DomainError, in French) once the selection is made: the application then has
    a decision that people were mailed, and only a withdrawal may end it.
    """
    row = get_session(session, application.session_id)
    if application.status is ApplicationStatus.PURGED:
        raise DomainError(f"La candidature n°{application.number} est déjà effacée.")
    if application.flagged_at is None:
        raise DomainError("Signalez d'abord la candidature comme abusive, puis effacez-la.")
    if row.status not in BEFORE_SELECTION or application.status is not ApplicationStatus.SUBMITTED:
        raise DomainError(
            f"La sélection de la session est faite : la candidature n°{application.number} "
            "ne peut plus être effacée (elle peut seulement être retirée)."
        )
    contacts = _erase_contacts(session, application)
    _forget_mails_and_links(session, application, contacts)
    application.motivation = application.availability = application.function = ""
    application.flag_reason = ""
    application.wishes = []
    application.purged_at = clock.now(session)
    redact_case(
        session=session,
        case_type=CASE,
        case_id=application.session_id,
        actor=actor,
        reason=f"candidature n°{application.number} signalée comme abusive et effacée",
        seqs=_events_of(session, application, contacts),
    )
    change_status(session=session, entity=application, to=ApplicationStatus.PURGED, actor=actor)
    session.add(application)
    event(
        session,
        row,
        "application.purged",
        actor,
        {"number": application.number, "contacts_erased": len(contacts)},
    )
    return len(contacts)


# -- what the coordinator sees ------------------------------------------------------------
@dataclass(frozen=True)
class ApplicationLine:
    id: int
    number: int
    name: str
    email: str
    structure: str
    submitted_at: datetime
    status: ApplicationStatus
    flagged_at: datetime | None
    flagged_by: str
    flag_reason: str
    purged_at: datetime | None


@dataclass(frozen=True)
class RefusedLine:
    structure: str  # the invited structure whose call link was used
    hour: datetime
    client: str
    count: int
    last_at: datetime


@dataclass(frozen=True)
class AbuseOverview:
    session_id: int
    reference: str
    purge_allowed: bool
    applications: list[ApplicationLine]
    refused: list[RefusedLine]

    @property
    def flagged(self) -> list[ApplicationLine]:
        return [a for a in self.applications if a.flagged_at is not None]

    @property
    def refused_total(self) -> int:
        return sum(r.count for r in self.refused)


def abuse_overview(session: Session, row: ImmersionSession) -> AbuseOverview:
    assert row.id is not None
    lines: list[ApplicationLine] = []
    query = select(Application).where(Application.session_id == row.id)
    for application in session.exec(query.order_by(col(Application.number))):
        person = session.get(Contact, application.contact_id)
        assert application.id is not None and person is not None
        lines.append(
            ApplicationLine(
                id=application.id,
                number=application.number,
                name=person.name if application.purged_at is None else ERASED_NAME,
                email=person.email if application.purged_at is None else "",
                structure=organisation(session, application.organisation_id).label,
                submitted_at=application.submitted_at,
                status=application.status,
                flagged_at=application.flagged_at,
                flagged_by=application.flagged_by,
                flag_reason=application.flag_reason,
                purged_at=application.purged_at,
            )
        )
    refused: list[RefusedLine] = []
    counts = select(RefusedApplications).where(RefusedApplications.session_id == row.id)
    for count in session.exec(counts.order_by(col(RefusedApplications.hour).desc())):
        link = session.get(StepLink, count.link_id)
        holder = session.get(Contact, link.contact_id) if link else None
        refused.append(
            RefusedLine(
                structure=organisation(session, holder.organisation_id).label if holder else "?",
                hour=count.hour,
                client=count.client_hash,
                count=count.count,
                last_at=count.last_at,
            )
        )
    return AbuseOverview(
        session_id=row.id,
        reference=row.reference,
        purge_allowed=row.status in BEFORE_SELECTION,
        applications=lines,
        refused=refused,
    )
