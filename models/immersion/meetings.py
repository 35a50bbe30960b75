"""The session's meetings and days: the preparation day and the restitution (invitations,
attendance), and the immersion days themselves (invitations, reminders, completion)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from sqlmodel import Session, select

from models.core import clock
from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.outbox import Recipient
from models.core.people import Contact
from models.core.settings import get_settings
from models.core.status import change_status
from models.immersion.common import (
    EXAMPLE_TITLE,
    AlertMail,
    SessionMail,
    application_of,
    contact,
    coordinator,
    event,
    mail,
    organisation,
    participant,
    participants,
    parties,
    placements,
    sent,
)
from models.immersion.plan import (
    day_reminder_at,
    days_label,
    end_of_days,
    immersion_part,
    meeting_part,
    when,
)
from models.immersion.states import (
    ApplicationStatus,
    Meeting,
    Party,
    PlacementStatus,
    SessionStatus,
)
from models.immersion.tables import Attendance, ImmersionSession

NOTIFIED: tuple[Party, ...] = ("participant", "tutor")
"""Who is invited to a placement's days and to the restitution."""


# -- mails ------------------------------------------------------------------------------
class PreparationMail(SessionMail):
    """Invitation to the preparation day (calendar REQUEST)."""

    template: ClassVar[str] = "immersion_preparation"
    with_calendar: ClassVar[bool] = True
    when: str
    place: str
    facilitator: str

    @classmethod
    def example(cls) -> PreparationMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            when="04/10/2022 à 09:00",
            place="Maison des solidarités, Poitiers",
            facilitator="CODES 34",
        )


class RestitutionMail(SessionMail):
    """Invitation to the restitution (calendar REQUEST)."""

    template: ClassVar[str] = "immersion_restitution"
    with_calendar: ClassVar[bool] = True
    when: str
    place: str

    @classmethod
    def example(cls) -> RestitutionMail:
        return cls(session_title=EXAMPLE_TITLE, when="15/11/2022 à 14:00", place="CCAS de Poitiers")


class DaysMail(SessionMail):
    """The immersion days of a signed placement, to the participant and the tutor."""

    template: ClassVar[str] = "immersion_days"
    with_calendar: ClassVar[bool] = True
    participant: str
    tutor: str
    host: str
    days: str
    may_observe: str
    may_not_observe: str

    @classmethod
    def example(cls) -> DaysMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            participant="Camille Dupont",
            tutor="Dr Paul Bernard",
            host="CHL",
            days="10/10/2022, 11/10/2022",
            may_observe="réunions d'équipe",
            may_not_observe="consultations médicales",
        )


class DayReminderMail(DaysMail):
    """The immersion starts in two business days."""

    template: ClassVar[str] = "immersion_day_reminder"
    with_calendar: ClassVar[bool] = False

    @classmethod
    def example(cls) -> DayReminderMail:
        return cls(**DaysMail.example().model_dump())


# -- preparation day and restitution --------------------------------------------------
def _invite(
    session: Session,
    row: ImmersionSession,
    which: Meeting,
    recipients: dict[str, Contact | Recipient],
    message: SessionMail,
) -> int:
    part = meeting_part(row, which)
    count = 0
    for key, to in recipients.items():
        if not sent(session, row, key):
            mail(session, row, to=to, message=message, dedup_key=key, calendar=part)
            count += 1
    return count


def _facilitator(row: ImmersionSession) -> Recipient:
    return Recipient(email=row.facilitator_email, name=row.facilitator_name)


def ensure_invitations(*, session: Session, row: ImmersionSession) -> int:
    """Preparation-day invitation (calendar REQUEST) to participants and the facilitator."""
    if row.status in (SessionStatus.CANCELLED, SessionStatus.CLOSED):
        return 0
    sequence = row.preparation_sequence
    recipients: dict[str, Contact | Recipient] = {
        f"preparation-{a.contact_id}-{sequence}": contact(session, a.contact_id)
        for a in participants(session, row)
    }
    if row.facilitator_email:
        recipients[f"preparation-facilitator-{sequence}"] = _facilitator(row)
    message = PreparationMail(
        session_title=row.title,
        when=when(row.preparation_at),
        place=row.preparation_place,
        facilitator=row.facilitator_name or "la coordination",
    )
    return _invite(session, row, "preparation", recipients, message)


def ensure_restitution_invitations(*, session: Session, row: ImmersionSession) -> int:
    """Restitution invitation (calendar REQUEST) to participants, tutors and facilitator."""
    assert row.id is not None
    sequence = row.restitution_sequence
    recipients: dict[str, Contact | Recipient] = {}
    for placement in placements(session, row.id, PlacementStatus.DONE):
        signatories = parties(session, placement)
        for person in (signatories[who] for who in NOTIFIED):
            recipients[f"restitution-{person.id}-{sequence}"] = person
    if row.facilitator_email:
        recipients[f"restitution-facilitator-{sequence}"] = _facilitator(row)
    message = RestitutionMail(
        session_title=row.title, when=when(row.restitution_at), place=row.restitution_place
    )
    return _invite(session, row, "restitution", recipients, message)


def participant_numbers(session: Session, row: ImmersionSession) -> tuple[list[int], list[str]]:
    """The kept participants' numbers and names (the attendance form)."""
    people = participants(session, row)
    return [a.number for a in people], [contact(session, a.contact_id).name for a in people]


def record_attendance(
    *,
    session: Session,
    row: ImmersionSession,
    meeting: Meeting,
    present_numbers: Sequence[int],
    actor: Actor,
) -> None:
    assert row.id is not None
    people = participants(session, row)
    known = {a.number for a in people}
    unknown = sorted(set(present_numbers) - known)
    if unknown:
        raise DomainError(
            "ces numéros ne sont pas ceux de participants de la session : "
            + ", ".join(f"n° {n}" for n in unknown)
        )
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
    event(
        session,
        row,
        f"attendance.{meeting}",
        actor,
        {"present": sorted(present_numbers), "expected": sorted(known)},
    )


# -- immersion days -------------------------------------------------------------------
def immersion_end(session: Session, row: ImmersionSession) -> datetime:
    """After the last immersion day (or the window's end if no day is known), at 18:00."""
    assert row.id is not None
    signed = placements(session, row.id, PlacementStatus.SIGNED)
    return end_of_days(row, [d for p in signed for d in p.day_list])


def immersion_notices(*, session: Session, row: ImmersionSession) -> datetime | None:
    """Calendar parts for signed placements, reminders two business days before; alerts
    for unsigned ones. Returns when the next reminder is due (None: all sent)."""
    assert row.id is not None
    now = clock.now(session)
    upcoming: list[datetime] = []
    for placement in placements(session, row.id, PlacementStatus.SIGNED):
        host = organisation(session, placement.host_organisation_id).label
        part = immersion_part(row, placement, host)
        signatories = parties(session, placement)
        notice = DaysMail(
            session_title=row.title,
            participant=signatories["participant"].name,
            tutor=signatories["tutor"].name,
            host=host,
            days=days_label(placement.day_list),
            may_observe=placement.may_observe,
            may_not_observe=placement.may_not_observe,
        )
        remind_at = day_reminder_at(placement)
        for who in NOTIFIED:
            to = signatories[who]
            mail(
                session,
                row,
                to=to,
                message=notice,
                dedup_key=f"placement-{placement.id}-days-{who}",
                calendar=part,
            )
            if now >= remind_at:
                mail(
                    session,
                    row,
                    to=to,
                    message=DayReminderMail(**notice.model_dump()),
                    dedup_key=f"placement-{placement.id}-reminder-{who}",
                )
        if now < remind_at:
            upcoming.append(remind_at)
    unsigned = placements(session, row.id, PlacementStatus.PROPOSED, PlacementStatus.CONFIRMED)
    if unsigned:
        names = [participant(session, p).name for p in unsigned]
        mail(
            session,
            row,
            to=coordinator(session, row),
            message=AlertMail(
                session_title=row.title,
                alert="Immersions sans convention signée (elles ne peuvent pas "
                "commencer) : " + ", ".join(names) + ".",
                run_url=get_settings().run_url(row.flow_run_id),
            ),
            dedup_key="immersion-unsigned",
        )
    return min(upcoming) if upcoming else None


def finish_immersions(*, session: Session, row: ImmersionSession, actor: Actor) -> None:
    """Signed placements are done; their participants have completed the session."""
    assert row.id is not None
    for placement in placements(session, row.id, PlacementStatus.SIGNED):
        change_status(session=session, entity=placement, to=PlacementStatus.DONE, actor=actor)
        application = application_of(session, placement)
        if application.status is ApplicationStatus.SELECTED:
            change_status(
                session=session, entity=application, to=ApplicationStatus.COMPLETED, actor=actor
            )


MAILS = (PreparationMail, RestitutionMail, DaysMail, DayReminderMail)
