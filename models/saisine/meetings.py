"""Level 2: cell meetings. A saisine is put on a meeting (a new one at a permanent member's
premises, by rotation, or one already planned) with invited members; every member gets a
convocation with an invitation and an attendance link. Meetings may be moved or cancelled
(calendar REQUEST or CANCEL with a higher SEQUENCE); the runs waiting for the day re-read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from models.core import clock, scope
from models.core.audit import Actor
from models.core.calendar import local_date
from models.core.directory import cell_members
from models.core.errors import DomainError
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.mails import MailContext
from models.core.outbox import CalendarMethod, CalendarPart
from models.core.people import Clsm, Organisation
from models.core.settings import get_settings
from models.core.status import change_status
from models.core.waits import wake_case
from models.saisine.common import (
    EXAMPLE_REFERENCE,
    consultable_organisations,
    contact,
    conventions,
    current_meeting,
    first_contact,
    meeting_event,
    meeting_items,
    meeting_members,
    meeting_scope,
    org_label,
    orientations,
    reopen_level1,
    subject_of,
    touch,
)
from models.saisine.plan import Next, meeting_calendar, proposed_meeting_start
from models.saisine.rules import check_consultable, check_meeting_allowed, next_host
from models.saisine.states import MeetingStatus, Step, WaitName, wait_step
from models.saisine.tables import SAISINE, CellMeeting, MeetingItem, MeetingMember, Saisine


class ConvocationMail(MailContext):
    """To a member: the meeting (invitation attached), the saisines examined, a link to
    say whether they attend. Sent again, as an update, when the meeting moves."""

    template: ClassVar[str] = "saisine_convocation"
    with_calendar: ClassVar[bool] = True
    references: list[str]
    invited: bool
    update: bool
    link_id: int

    @classmethod
    def example(cls) -> ConvocationMail:
        return cls(references=[EXAMPLE_REFERENCE], invited=True, update=False, link_id=1)


class MeetingCancelledMail(MailContext):
    """To every member: the meeting is cancelled (calendar CANCEL)."""

    template: ClassVar[str] = "saisine_meeting_cancelled"
    with_calendar: ClassVar[bool] = True
    references: list[str]

    @classmethod
    def example(cls) -> MeetingCancelledMail:
        return cls(references=[EXAMPLE_REFERENCE])


def next_in_level2(session: Session, saisine: Saisine) -> Next:
    """A meeting to organise; its day awaited (it may be moved or cancelled meanwhile);
    then the cell's decision."""
    meeting = current_meeting(session, saisine)
    if meeting is None:
        return Next.until(WaitName.MEETING)
    if meeting.status is MeetingStatus.PLANNED and clock.now(session) < meeting.starts_at:
        return Next.until(WaitName.MEETING_DAY, due_at=meeting.starts_at, meeting_id=meeting.id)
    return Next.until(WaitName.DECISION, meeting_id=meeting.id)


@dataclass(frozen=True)
class MeetingChoices:
    """What the meeting form offers, by label: planned meetings, hosts (the proposed one
    first), structures that may be invited; and the proposed date (Paris time)."""

    meetings: dict[str, int]
    hosts: dict[str, int]
    invitable: dict[str, int]
    proposed_start: datetime


def meeting_choices(session: Session, saisine: Saisine) -> MeetingChoices:
    tz = get_settings().tz
    meetings: dict[str, int] = {}
    for meeting in planned_meetings(session, saisine.clsm_id):
        assert meeting.id is not None
        when = f"{meeting.starts_at.astimezone(tz):%d/%m/%Y %H:%M}"
        meetings[f"Réunion du {when} chez {org_label(session, meeting.host_organisation_id)}"] = (
            meeting.id
        )
    proposed = proposed_host(session, saisine.clsm_id)
    members = [proposed, *[m for m in permanent_members(session, saisine.clsm_id) if m != proposed]]
    return MeetingChoices(
        meetings=meetings,
        hosts={m.label: m.id for m in members if m.id is not None},
        invitable={
            o.label: o.id
            for o in consultable_organisations(session, saisine)
            if o.id and not o.permanent_member
        },
        proposed_start=proposed_meeting_start(local_date(clock.now(session), tz)),
    )


def put_on_meeting(
    *,
    session: Session,
    saisine: Saisine,
    meeting: str | None,
    starts_at: datetime | None,
    host: str,
    invited: list[str],
    actor: Actor,
) -> CellMeeting:
    """The meeting form's answer: a planned meeting by its label (None: a new one at
    `starts_at`, Paris time if naive, hosted by `host`), with the invited structures."""
    choices = meeting_choices(session, saisine)
    existing = None
    if meeting is not None:
        existing = session.get(CellMeeting, choices.meetings.get(meeting, -1))
        if existing is None:
            raise DomainError("Réunion introuvable : choisissez-en une autre.")
    if starts_at is not None and starts_at.tzinfo is None:
        starts_at = starts_at.replace(tzinfo=get_settings().tz)
    return plan_meeting(
        session=session,
        saisine=saisine,
        starts_at=starts_at,
        host_organisation_id=choices.hosts.get(host),
        invited_ids=[choices.invitable[i] for i in invited if i in choices.invitable],
        actor=actor,
        meeting=existing,
    )


def meeting_wait_step(meeting: CellMeeting) -> str:
    """The wait for the meeting's day."""
    return wait_step(WaitName.MEETING_DAY, meeting_id=meeting.id)


def permanent_members(session: Session, clsm_id: int) -> list[Organisation]:
    """The cell's active permanent members, in the directory's hosting rotation order."""
    return cell_members(session, clsm_id)


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
    return meeting_calendar(
        meeting,
        method,
        clsm_name=clsm.name if clsm else "CLSM",
        place=[host.name, host.address] if host else [],
        references=[s.reference for s in meeting_items(session, meeting)],
    )


def _convoke(session: Session, meeting: CellMeeting, members: list[MeetingMember]) -> None:
    """Convocation with a calendar REQUEST and an attendance link (once per SEQUENCE)."""
    where = meeting_scope(meeting)
    references = [s.reference for s in meeting_items(session, meeting)]
    for member in members:
        link = scope.link(
            session=session,
            scope=where,
            contact_id=member.contact_id,
            step=Step.ATTENDANCE,
            subject_id=member.id,
        )
        assert link.id is not None
        scope.mail(
            session=session,
            scope=where,
            to=contact(session, member.contact_id),
            message=ConvocationMail(
                references=references,
                invited=member.invited,
                update=meeting.sequence > 0,
                link_id=link.id,
            ),
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
        scope.record(
            session=session,
            scope=meeting_scope(meeting),
            action="meeting.planned",
            actor=actor,
            payload={
                "starts_at": meeting.starts_at.isoformat(),
                "host": names.get(meeting.host_organisation_id, ""),
            },
        )
    meeting_event(
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
    touch(session, saisine)
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


def meeting_changed(session: Session, meeting_id: int, planned_at: datetime) -> bool:
    """The meeting is no longer planned at `planned_at` (cancelled, held or moved)."""
    fresh = session.get(CellMeeting, meeting_id)
    return (
        fresh is None or fresh.status is not MeetingStatus.PLANNED or fresh.starts_at != planned_at
    )


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
    part = _calendar(session, meeting, CalendarMethod.CANCEL)
    message = MeetingCancelledMail(
        references=[s.reference for s in meeting_items(session, meeting)]
    )
    for member in meeting_members(session, meeting):
        scope.mail(
            session=session,
            scope=meeting_scope(meeting),
            to=contact(session, member.contact_id),
            message=message,
            dedup_key=f"cancel-{meeting.id}-contact-{member.contact_id}",
            calendar=part,
        )
    meeting_event(session, meeting, "meeting.cancelled", actor, {"reason": reason.strip()})
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
    meeting_event(
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
    meeting_event(
        session,
        meeting,
        "meeting.attendance",
        actor,
        {"organisation": org_label(session, member.organisation_id), "attending": attending},
    )


def back_to_level1(*, session: Session, saisine: Saisine, reason: str, actor: Actor) -> None:
    """Level 2 abandoned (e.g. meeting cancelled): bilateral exchanges again.

    The answers of the round that led to level 2 stand: the coordinator may record an
    orientation at once, without consulting again. Only a round already oriented (level 2
    reached through a failed orientation) opens a new one, for its own orientation.
    """
    if current_meeting(session, saisine) is not None:
        raise DomainError("Annulez d'abord la réunion prévue.")
    oriented = any(o.round == saisine.round for o in orientations(session, saisine))
    reopen_level1(session=session, saisine=saisine, reason=reason, actor=actor, new_round=oriented)


# -- a member's attendance page (case: the meeting) ------------------------------------------------
class AttendanceAnswer(BaseModel):
    attending: Literal["oui", "non"] = Field(title="Serez-vous présent(e) à la réunion ?")


def _page(session: Session, link: StepLink) -> StepPage:
    member = subject_of(session, MeetingMember, link)
    meeting = session.get(CellMeeting, member.meeting_id)
    assert meeting is not None
    host = session.get(Organisation, meeting.host_organisation_id)
    tz = get_settings().tz
    return StepPage(
        title="Réunion de la cellule de concertation",
        case_label=f"Réunion de cellule n°{meeting.id}",
        paragraphs=[
            "Réunion annulée."
            if meeting.status is MeetingStatus.CANCELLED
            else "Merci d'indiquer votre présence."
        ],
        details=[
            ("Date", f"{meeting.starts_at.astimezone(tz):%d/%m/%Y à %H:%M}"),
            ("Lieu", host.name if host else "—"),
            ("Saisines examinées", ", ".join(s.reference for s in meeting_items(session, meeting))),
        ],
    )


def _record(session: Session, link: StepLink, answer: AttendanceAnswer, actor: Actor) -> str:
    member = subject_of(session, MeetingMember, link)
    record_attendance(
        session=session, member=member, attending=answer.attending == "oui", actor=actor
    )
    return "Merci, votre réponse est enregistrée."


ATTENDANCE_STEP = StepKind(
    name=Step.ATTENDANCE,
    form=AttendanceAnswer,
    page=_page,
    record=_record,
    after_sending="Après l'envoi, la coordination du CLSM connaît votre présence ; "
    "l'invitation reste dans votre agenda et tout changement de date vous sera envoyé par "
    "courriel. Ce lien ne sert qu'une fois.",
)
MAILS = (ConvocationMail, MeetingCancelledMail)
