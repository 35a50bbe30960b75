"""Level 1: the coordinator consults partners bilaterally (one link each, reminded, silent
ones reported at the deadline), then proposes an orientation or escalates to level 2.

The consulted partner's page shows the pseudonymised description; the mail never does.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, select

from models.core import clock
from models.core.audit import Actor
from models.core.calendar import local_date
from models.core.directory import orientation_catalogue
from models.core.errors import DomainError
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.people import Organisation
from models.core.settings import get_settings
from models.core.status import change_status
from models.saisine.common import (
    EXAMPLE_REFERENCE,
    SaisineMail,
    alert_coordinator,
    close_consultations,
    consultable_organisations,
    consultations,
    contact,
    conventions,
    event,
    first_contact,
    get_saisine,
    link_to,
    mail,
    open_wait_step,
    org_label,
    subject_of,
    tell_outcome,
    touch,
)
from models.saisine.plan import Next, Task, consultation_moments
from models.saisine.rules import ORIENTATION_LABELS, OrientationKind, check_consultable
from models.saisine.states import ConsultationStatus, SaisineStatus, Step, WaitName, wait_step
from models.saisine.tables import Consultation, FollowUp, Orientation, Saisine


class ConsultationMail(SaisineMail):
    """To a consulted partner: answer by the link before the deadline (or a reminder)."""

    template: ClassVar[str] = "saisine_consultation"
    link_id: int
    deadline: str  # dd/mm/yyyy
    reminder: bool

    @classmethod
    def example(cls) -> ConsultationMail:
        return cls(reference=EXAMPLE_REFERENCE, link_id=1, deadline="12/03/2026", reminder=False)


def answers_wait_steps(round_: int) -> tuple[str, str]:
    """The waits for the partners' answers: until the reminder, then until the deadline."""
    return (
        wait_step(WaitName.ANSWERS_REMINDER, round_=round_),
        wait_step(WaitName.ANSWERS, round_=round_),
    )


def next_in_level1(session: Session, saisine: Saisine) -> Next:
    """Partners to choose; their answers awaited (reminded, then reported at the deadline);
    then the orientation."""
    current = consultations(session, saisine, saisine.round)
    if not current:
        return Next.until(WaitName.PARTNERS)
    asked = [c for c in current if c.status is ConsultationStatus.ASKED]
    if not asked:
        return Next.until(WaitName.ORIENTATION)
    now = clock.now(session)
    remind_at = min(c.remind_at for c in current)
    deadline = max(c.deadline for c in current)
    if now < remind_at:
        return Next.until(WaitName.ANSWERS_REMINDER, due_at=remind_at, round_=saisine.round)
    if now < deadline:
        return Next.until(
            WaitName.ANSWERS, due_at=deadline, round_=saisine.round, task=Task.REMIND_PARTNERS
        )
    if any(c.reminded_at is None for c in asked):
        return Next(task=Task.REMIND_PARTNERS)
    return Next(task=Task.REPORT_SILENT_PARTNERS)


def partner_choices(session: Session, saisine: Saisine) -> dict[str, int]:
    """The structures the coordinator may consult, by label."""
    return {o.label: o.id for o in consultable_organisations(session, saisine) if o.id}


def choose_partners(
    *, session: Session, saisine: Saisine, labels: list[str], actor: Actor
) -> list[Consultation]:
    """The partners form's answer: the structures to consult, by label."""
    choices = partner_choices(session, saisine)
    unknown = [label for label in labels if label not in choices]
    if unknown:
        raise DomainError(f"Structures inconnues : {', '.join(unknown)}")
    return consult_partners(
        session=session,
        saisine=saisine,
        organisation_ids=[choices[label] for label in labels],
        actor=actor,
    )


def _ask(session: Session, saisine: Saisine, consultation: Consultation, *, reminder: bool) -> None:
    link = link_to(session, saisine, consultation.contact_id, Step.CONSULTATION, consultation.id)
    assert link.id is not None
    mail(
        session,
        saisine,
        to=contact(session, consultation.contact_id),
        message=ConsultationMail(
            reference=saisine.reference,
            link_id=link.id,
            deadline=f"{consultation.deadline.astimezone(get_settings().tz):%d/%m/%Y}",
            reminder=reminder,
        ),
        dedup_key=f"consultation-{consultation.id}{'-reminder' if reminder else ''}",
    )


def consult_partners(
    *, session: Session, saisine: Saisine, organisation_ids: list[int], actor: Actor
) -> list[Consultation]:
    """Ask each chosen structure (valid convention only); one link and one mail each."""
    if saisine.status is not SaisineStatus.LEVEL1:
        raise DomainError(f"{saisine.label} n'est pas au niveau 1.")
    if not organisation_ids:
        raise DomainError("Choisissez au moins une structure à consulter.")
    moment = clock.now(session)
    today = local_date(moment, get_settings().tz)
    names = {o.id: o.label for o in session.exec(select(Organisation)) if o.id is not None}
    check_consultable(organisation_ids, conventions(session, saisine.clsm_id), today, names)
    remind_at, deadline = consultation_moments(today)
    created: list[Consultation] = []
    existing = {c.organisation_id for c in consultations(session, saisine, saisine.round)}
    for organisation_id in organisation_ids:
        if organisation_id in existing:
            continue
        partner = first_contact(session, organisation_id)
        assert partner.id is not None and saisine.id is not None
        consultation = Consultation(
            saisine_id=saisine.id,
            round=saisine.round,
            organisation_id=organisation_id,
            contact_id=partner.id,
            asked_at=moment,
            remind_at=remind_at,
            deadline=deadline,
        )
        session.add(consultation)
        session.flush()
        _ask(session, saisine, consultation, reminder=False)
        event(
            session,
            saisine,
            "consultation.asked",
            actor,
            {
                "consultation_id": consultation.id,
                "organisation": names.get(organisation_id, ""),
                "contact_id": partner.id,
                "round": saisine.round,
                "deadline": deadline.isoformat(),
            },
        )
        created.append(consultation)
    touch(session, saisine)
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
    count = 0
    for consultation in consultations(session, saisine, saisine.round):
        if consultation.status is not ConsultationStatus.ASKED or consultation.reminded_at:
            continue
        _ask(session, saisine, consultation, reminder=True)
        consultation.reminded_at = moment
        session.add(consultation)
        event(
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
        alert_coordinator(
            session,
            saisine,
            alert="consultations",
            names=[org_label(session, c.organisation_id) for c in silent],
            dedup_key=f"silent-partners-r{saisine.round}",
        )
    session.flush()
    return len(silent)


def orientation_choices(session: Session, saisine: Saisine) -> dict[str, OrientationKind]:
    """The orientations offered for this case: the CLSM's catalogue (label → kind, an entry
    the coordinator added being an "other" orientation), or the default one if it is empty."""
    catalogue = orientation_catalogue(session, saisine.clsm_id)
    if not catalogue:
        return {label: kind for kind, label in ORIENTATION_LABELS.items()}
    codes = {kind.value: kind for kind in OrientationKind}
    return {entry.label: codes.get(entry.code, OrientationKind.OTHER) for entry in catalogue}


def record_orientation(
    *,
    session: Session,
    saisine: Saisine,
    kind: OrientationKind,
    who_acts: str,
    detail: str,
    follow_up_on: date | None,
    actor: Actor,
    label: str = "",
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
        label=label,
        who_acts=who_acts.strip(),
        detail=detail.strip(),
        decided_at=moment,
        follow_up_on=follow_up_on,
    )
    session.add(orientation)
    session.flush()
    close_consultations(session, saisine, actor)
    change_status(
        session=session,
        entity=saisine,
        to=SaisineStatus.ORIENTED,
        actor=actor,
        details={
            "orientation_id": orientation.id,
            "kind": kind.value,
            "label": label or ORIENTATION_LABELS[kind],
            "who_acts": orientation.who_acts,
            "detail": orientation.detail,
            "follow_up_on": follow_up_on.isoformat() if follow_up_on else None,
        },
    )
    if follow_up_on is not None:
        session.add(FollowUp(saisine_id=saisine.id, round=saisine.round, due_on=follow_up_on))
    partners = [c.contact_id for c in consultations(session, saisine, saisine.round)]
    tell_outcome(session, saisine, "orientation", orientation.id, partners)
    touch(session, saisine)
    return orientation


# -- the consulted partner's page ---------------------------------------------------------------
YesNo = Literal["oui", "non"]


class ConsultationAnswer(BaseModel):
    knows_situation: YesNo = Field(title="Connaissez-vous cette situation ?")
    proposal: str = Field(
        default="",
        max_length=2000,
        title="Ce que votre structure peut proposer",
        description="Accompagnement, contact, rendez-vous, informations utiles…",
    )


def description(saisine: Saisine) -> list[tuple[str, str]]:
    """The pseudonymised description, for the consulted partner's page only."""
    if saisine.purged_at is not None:
        return [("Description", "effacée (fin de la durée de conservation)")]
    return [
        ("Initiales", saisine.initials or "—"),
        ("Tranche d'âge", saisine.age_range or "—"),
        ("Commune", saisine.commune or "—"),
        ("Difficulté rencontrée", saisine.difficulty or "—"),
        (
            "Consentement de la personne",
            "recueilli" if saisine.consent_given else f"non recueilli : {saisine.consent_note}",
        ),
    ]


def _page(session: Session, link: StepLink) -> StepPage:
    saisine = get_saisine(session, link.case_id)
    return StepPage(
        title="Consultation de la cellule de concertation",
        case_label=saisine.label,
        paragraphs=[
            "La coordination du CLSM sollicite votre structure sur une situation psychosociale "
            "complexe. Ces informations sont confidentielles et réservées à votre structure.",
        ],
        details=description(saisine),
    )


def _record(session: Session, link: StepLink, answer: ConsultationAnswer, actor: Actor) -> str:
    record_consultation_answer(
        session=session,
        consultation=subject_of(session, Consultation, link),
        knows_situation=answer.knows_situation == "oui",
        proposal=answer.proposal,
        actor=actor,
    )
    return "Merci, votre réponse a été transmise à la coordination de la cellule."


def _wait(session: Session, link: StepLink) -> str | None:
    consultation = subject_of(session, Consultation, link)
    saisine = get_saisine(session, link.case_id)
    return open_wait_step(session, saisine, *answers_wait_steps(consultation.round))


CONSULTATION_STEP = StepKind(
    name=Step.CONSULTATION,
    form=ConsultationAnswer,
    page=_page,
    record=_record,
    wait_step=_wait,
    submit_label="Envoyer ma réponse",
    after_sending="Après l'envoi, votre réponse est transmise à la coordination du CLSM, qui "
    "propose une orientation une fois toutes les structures consultées entendues (ou à "
    "l'échéance) ; vous recevrez alors un courriel avec la suite donnée. Ce lien ne sert "
    "qu'une fois.",
)
MAILS = (ConsultationMail,)
