"""What changes a session after the fact: an application changed or withdrawn (its placement
and agreement cancelled, the freed place offered), a meeting moved, the session cancelled.

This module sits above the steps: a withdrawal frees a place that the selection's waiting
list fills (`selection.manage_vacancies`), and the application's wishes are read as at the
call (`call.wish_ids`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel
from pydantic import Field as FormField
from sqlmodel import Session, select

from models.core import clock
from models.core.audit import Actor
from models.core.calendar import check_open_day
from models.core.errors import DomainError, InvalidInput
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.outbox import CalendarMethod, CalendarPart, OutboxMessage, Recipient
from models.core.reminders import stop_case_reminders
from models.core.status import change_status
from models.core.waits import wake_case
from models.immersion.call import wish_ids
from models.immersion.common import (
    EXAMPLE_TITLE,
    SessionMail,
    agreement_of,
    application_of,
    applications,
    bump,
    contact,
    current_wait_step,
    event,
    get_session,
    mail,
    organisation,
    placement_of,
    sent,
    stop_reminders_of,
    subject,
)
from models.immersion.plan import (
    cancelled,
    days_label,
    immersion_part,
    local,
    meeting_part,
    when,
)
from models.immersion.selection import manage_vacancies
from models.immersion.states import (
    APPLICATION_LABELS,
    MEETING_LABELS,
    STATUS_LABELS,
    AgreementStatus,
    ApplicationStatus,
    Meeting,
    PlacementStatus,
    SessionStatus,
    Step,
)
from models.immersion.tables import CASE, Application, ImmersionSession, Placement


# -- mails ------------------------------------------------------------------------------
class WithdrawalMail(SessionMail):
    """To the participant: the withdrawal is recorded (the preparation day leaves their
    agenda if they were invited to it)."""

    template: ClassVar[str] = "immersion_withdrawal"
    number: int

    @classmethod
    def example(cls) -> WithdrawalMail:
        return cls(session_title=EXAMPLE_TITLE, number=3)


class PlacementCancelledMail(SessionMail):
    """To the host: the placement will not take place."""

    template: ClassVar[str] = "immersion_placement_cancelled"
    participant: str
    reason: str

    @classmethod
    def example(cls) -> PlacementCancelledMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            participant="Camille Dupont",
            reason="retrait du participant",
        )


class DaysCancelledMail(SessionMail):
    """To the participant: the immersion days leave the agenda (calendar CANCEL)."""

    template: ClassVar[str] = "immersion_days_cancelled"
    with_calendar: ClassVar[bool] = True
    host: str
    days: str

    @classmethod
    def example(cls) -> DaysCancelledMail:
        return cls(session_title=EXAMPLE_TITLE, host="CHL", days="10/10/2022, 11/10/2022")


class MeetingMovedMail(SessionMail):
    """A meeting moved: the calendar update (higher SEQUENCE) to everyone invited."""

    template: ClassVar[str] = "immersion_meeting_moved"
    with_calendar: ClassVar[bool] = True
    meeting: str
    when: str
    place: str

    @classmethod
    def example(cls) -> MeetingMovedMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            meeting="journée de préparation",
            when="05/10/2022 à 09:00",
            place="Salle B",
        )


class SessionCancelledMail(SessionMail):
    """The session is cancelled (with a calendar CANCEL of `meeting`, if one was sent)."""

    template: ClassVar[str] = "immersion_session_cancelled"
    reason: str
    meeting: str

    @classmethod
    def example(cls) -> SessionCancelledMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            reason="effectifs insuffisants",
            meeting="Journée de préparation — Immersions 2022",
        )


# -- changing or withdrawing an application ------------------------------------------
class ApplicationChangeForm(BaseModel):
    """Modifier ou retirer sa candidature (jusqu'à la clôture de l'appel)."""

    action: Literal["modifier", "retirer"] = FormField(
        title="Je souhaite",
        json_schema_extra={
            "labels": {"modifier": "modifier ma candidature", "retirer": "retirer ma candidature"}
        },
    )
    motivation: str = FormField(default="", title="Motivation", max_length=4000)
    wishes: list[str] = FormField(
        default_factory=list,
        title="Structures d'accueil souhaitées",
        description="Une par ligne, la préférée en premier",
        max_length=5,
    )
    availability: str = FormField(default="", title="Disponibilités", max_length=1000)
    reason: str = FormField(default="", title="Motif du retrait (facultatif)", max_length=300)


class WithdrawalForm(BaseModel):
    """Retirer sa candidature (après la clôture de l'appel, rien d'autre ne change)."""

    action: Literal["retirer"] = FormField(
        title="Je souhaite",
        json_schema_extra={"labels": {"retirer": "retirer ma candidature"}},
    )
    reason: str = FormField(default="", title="Motif du retrait (facultatif)", max_length=300)


def _changeable(session: Session, application: Application) -> bool:
    """Whether the application may still change (else it may only be withdrawn)."""
    row = get_session(session, application.session_id)
    return application.status is ApplicationStatus.SUBMITTED and (
        clock.now(session) < row.call_closes_at
    )


def change_application(
    *,
    session: Session,
    application: Application,
    form: ApplicationChangeForm | WithdrawalForm,
    actor: Actor,
) -> str:
    row = get_session(session, application.session_id)
    if application.status is ApplicationStatus.NOT_SELECTED:
        raise DomainError("votre candidature n'a pas été retenue : il n'y a rien à retirer")
    if form.action == "retirer":
        withdraw_application(
            session=session, application=application, actor=actor, reason=form.reason or "retrait"
        )
        return (
            "Votre retrait est enregistré. Merci de nous avoir prévenus : un courriel vous le "
            "confirme, et votre place éventuelle est proposée à la personne suivante sur la "
            "liste d'attente. Vous n'avez rien d'autre à faire."
        )
    assert isinstance(form, ApplicationChangeForm)
    if not _changeable(session, application):
        raise DomainError(
            "la candidature ne peut plus être modifiée après la clôture de l'appel",
            field="action",
        )
    changes: dict[str, Any] = {}
    if form.wishes:
        application.wishes = wish_ids(session, row, form.wishes, application.organisation_id)
        changes["wishes"] = application.wishes
    if form.motivation:
        application.motivation = form.motivation
        changes["motivation"] = True
    if form.availability:
        application.availability = form.availability
        changes["availability"] = True
    if not changes:
        raise DomainError("indiquez ce que vous souhaitez modifier", field="motivation")
    session.add(application)
    event(session, row, "application.changed", actor, {"application_id": application.id, **changes})
    return (
        "Votre candidature est modifiée. La sélection aura lieu après la clôture de l'appel ; "
        "sa décision vous parviendra par courriel."
    )


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
            and min(placement.day_list) <= local(clock.now(session)).date()
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
    applicant = contact(session, application.contact_id)
    invited_to_preparation = sent(
        session, row, f"preparation-{applicant.id}-{row.preparation_sequence}"
    )
    mail(
        session,
        row,
        to=applicant,
        message=WithdrawalMail(session_title=row.title, number=application.number),
        dedup_key=f"application-{application.id}-withdrawn",
        # the preparation day leaves the agenda of whoever was invited to it
        calendar=cancelled(meeting_part(row, "preparation")) if invited_to_preparation else None,
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
    """Cancel a placement and its agreement; the host (and the participant, if invited to the
    days) get the calendar CANCEL."""
    agreement = agreement_of(session, placement.id or 0)
    stop_reminders_of(session, row, Step.HOST, placement.id)
    if agreement is not None:
        stop_reminders_of(session, row, Step.SIGN, agreement.id)
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
    host = contact(session, placement.tutor_contact_id or placement.host_contact_id)
    host_label = organisation(session, placement.host_organisation_id).label
    calendar = None
    if placement.days:
        calendar = cancelled(immersion_part(row, placement, host_label))
    person = contact(session, application_of(session, placement).contact_id)
    mail(
        session,
        row,
        to=host,
        message=PlacementCancelledMail(
            session_title=row.title, participant=person.name, reason=reason
        ),
        dedup_key=f"placement-{placement.id}-cancelled",
        calendar=calendar,
    )
    if calendar is not None and sent(session, row, f"placement-{placement.id}-days-participant"):
        # the participant was invited to the days too: they leave their agenda as well
        mail(
            session,
            row,
            to=person,
            message=DaysCancelledMail(
                session_title=row.title, host=host_label, days=days_label(placement.day_list)
            ),
            dedup_key=f"placement-{placement.id}-days-cancelled",
            calendar=calendar,
        )


def _page(session: Session, issued: StepLink) -> StepPage:
    row = get_session(session, issued.case_id)
    application = subject(session, issued, Application)
    if application.status in (ApplicationStatus.WITHDRAWN, ApplicationStatus.COMPLETED):
        said = [
            "Votre candidature est retirée : il n'y a plus rien à faire ici."
            if application.status is ApplicationStatus.WITHDRAWN
            else "Votre immersion a eu lieu : il n'y a plus rien à faire ici."
        ]
    elif _changeable(session, application):
        said = [
            f"Vous pouvez modifier votre candidature jusqu'à la clôture de l'appel, le "
            f"{when(row.call_closes_at)}, ou la retirer.",
        ]
    else:
        said = [
            "L'appel est clos : votre candidature ne peut plus être modifiée. Vous pouvez "
            f"encore la retirer, jusqu'au {when(row.withdrawal_cutoff)} ; après cette date, "
            "prévenez directement la coordination.",
            "Si vous vous retirez, votre place est proposée à la personne suivante sur la "
            "liste d'attente.",
        ]
    return StepPage(
        title="Votre candidature",
        case_label=row.reference,
        paragraphs=said,
        details=[
            ("Numéro", str(application.number)),
            ("État", APPLICATION_LABELS[application.status]),
            ("Vœux", ", ".join(organisation(session, w).label for w in application.wishes)),
        ],
    )


def _form(session: Session, issued: StepLink) -> type[BaseModel]:
    application = subject(session, issued, Application)
    return ApplicationChangeForm if _changeable(session, application) else WithdrawalForm


def _record(
    session: Session,
    issued: StepLink,
    answer: ApplicationChangeForm | WithdrawalForm,
    actor: Actor,
) -> str:
    return change_application(
        session=session,
        application=subject(session, issued, Application),
        form=answer,
        actor=actor,
    )


def _initial(session: Session, issued: StepLink) -> dict[str, Any]:
    application = subject(session, issued, Application)
    if not _changeable(session, application):
        return {}
    return {
        "motivation": application.motivation,
        "wishes": [organisation(session, w).label for w in application.wishes],
        "availability": application.availability,
    }


CHANGE = StepKind(
    Step.CHANGE,
    ApplicationChangeForm,
    _page,
    _record,
    wait_step=current_wait_step,
    initial=_initial,
    form_of=_form,
    after_sending=(
        "Après l'envoi, votre réponse est enregistrée et un courriel vous la confirme ; "
        "la coordination du CLSM en est informée."
    ),
)


# -- moved meetings and cancellation -------------------------------------------------
def _invited_to(session: Session, row: ImmersionSession, prefix: str) -> list[OutboxMessage]:
    """Messages that carried a calendar REQUEST, whose dedup key starts with prefix."""
    return [
        m
        for m in session.exec(
            select(OutboxMessage).where(
                OutboxMessage.case_type == CASE.value, OutboxMessage.case_id == row.id
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
    meeting: Meeting,
    start: datetime,
    end: datetime,
    place: str,
    actor: Actor,
    insist: bool = False,
) -> int:
    """Move a meeting: a calendar update (higher SEQUENCE) to everyone already invited.

    Never to a weekend or a French public holiday unless the coordinator `insist`s."""
    if row.status in (SessionStatus.CLOSED, SessionStatus.CANCELLED):
        raise DomainError(f"la session est {STATUS_LABELS[row.status]} : ses réunions restent")
    if end <= start:
        raise DomainError("la réunion finit avant de commencer")
    check_open_day(local(start).date(), insist=insist)
    if start <= clock.now(session):
        raise InvalidInput("une réunion ne peut pas être déplacée dans le passé")
    invited_before = {
        (m.recipient_email, m.recipient_name, m.contact_id)
        for m in _invited_to(session, row, f"{meeting}-")
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
    bump(session, row)
    event(
        session,
        row,
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
    part = meeting_part(row, meeting)
    message = MeetingMovedMail(
        session_title=row.title, meeting=MEETING_LABELS[meeting], when=when(start), place=place
    )
    for email, name, contact_id in sorted(invited_before, key=lambda t: t[0]):
        mail(
            session,
            row,
            to=Recipient(email, name, contact_id),
            message=message,
            dedup_key=f"{meeting}-moved-{email}-{sequence}",
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
    bump(session, row)
    count = 0
    for message in _invited_to(session, row, ""):
        assert message.calendar is not None
        part = CalendarPart.from_dict(message.calendar)
        mail(
            session,
            row,
            to=Recipient(message.recipient_email, message.recipient_name, message.contact_id),
            message=SessionCancelledMail(
                session_title=row.title, reason=reason, meeting=part.summary
            ),
            dedup_key=f"cancel-{message.id}",
            calendar=cancelled(part, bump=True),
        )
        count += 1
    for application in applications(session, row.id):
        key = f"cancel-application-{application.id}"
        if application.status is not ApplicationStatus.WITHDRAWN and not sent(session, row, key):
            mail(
                session,
                row,
                to=contact(session, application.contact_id),
                message=SessionCancelledMail(session_title=row.title, reason=reason, meeting=""),
                dedup_key=key,
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


MAILS = (
    WithdrawalMail,
    PlacementCancelledMail,
    DaysCancelledMail,
    MeetingMovedMail,
    SessionCancelledMail,
)
