"""Evaluations after the immersions: the participant's observation grid and evaluation, the
host tutor's evaluation, both by link."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel
from pydantic import Field as FormField
from sqlmodel import Session, select

from models.core import clock
from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.immersion.common import (
    EXAMPLE_TITLE,
    SessionMail,
    application_of,
    awaited_link,
    contact,
    current_wait_step,
    event,
    get_session,
    mail,
    organisation,
    parties,
    placements,
    sent,
    subject,
)
from models.immersion.plan import days_label, when
from models.immersion.states import PlacementStatus, Step
from models.immersion.tables import Evaluation, ImmersionSession, ObservationGrid, Placement

Author = Literal["participant", "host"]


class EvaluationMail(SessionMail):
    """To the participant: the observation grid and the end-of-placement evaluation."""

    template: ClassVar[str] = "immersion_evaluation"
    link_id: int
    host: str
    participant: str
    restitution: str

    @classmethod
    def example(cls) -> EvaluationMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            link_id=1,
            host="CHL",
            participant="Camille Dupont",
            restitution="15/11/2022 à 14:00",
        )


class HostEvaluationMail(EvaluationMail):
    """To the host tutor: the evaluation of the placement."""

    template: ClassVar[str] = "immersion_host_evaluation"

    @classmethod
    def example(cls) -> HostEvaluationMail:
        return cls(**EvaluationMail.example().model_dump())


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


_REQUESTS: tuple[tuple[Literal["participant", "tutor"], Step, type[EvaluationMail]], ...] = (
    ("participant", Step.GRID, EvaluationMail),
    ("tutor", Step.HOST_EVALUATION, HostEvaluationMail),
)


def request_evaluations(*, session: Session, row: ImmersionSession) -> int:
    """Observation grid + evaluation links to participants, host evaluation to tutors."""
    assert row.id is not None
    count = 0
    for placement in placements(session, row.id, PlacementStatus.DONE):
        signatories = parties(session, placement)
        host = organisation(session, placement.host_organisation_id).label
        for who, step, message in _REQUESTS:
            key = f"placement-{placement.id}-evaluation-{who}"
            if sent(session, row, key):
                continue
            issued = awaited_link(
                session,
                row,
                signatories[who],
                step,
                placement.id,
                deadline=row.restitution_at,
                step_label="remplir l'évaluation de fin de stage",
            )
            assert issued.id is not None
            mail(
                session,
                row,
                to=signatories[who],
                message=message(
                    session_title=row.title,
                    link_id=issued.id,
                    host=host,
                    participant=signatories["participant"].name,
                    restitution=when(row.restitution_at),
                ),
                dedup_key=key,
            )
            count += 1
    return count


def missing_evaluations(session: Session, row: ImmersionSession) -> list[tuple[Placement, Author]]:
    assert row.id is not None
    missing: list[tuple[Placement, Author]] = []
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
    author: Author,
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
    event(
        session,
        get_session(session, placement.session_id),
        f"evaluation.{author}",
        actor,
        {"placement_id": placement.id, "rating": form.rating},
    )
    return "Merci : votre évaluation est enregistrée. Elle nourrira la restitution et le bilan."


def _page_participant(session: Session, issued: StepLink) -> StepPage:
    row = get_session(session, issued.case_id)
    placement = subject(session, issued, Placement)
    host = organisation(session, placement.host_organisation_id).label
    return StepPage(
        title="Grille d'observation et évaluation de fin de stage",
        case_label=row.reference,
        paragraphs=["Vos réponses nourriront la restitution et le bilan de la session."],
        details=[("Structure d'accueil", host), ("Jours", days_label(placement.day_list))],
    )


def _record_participant(
    session: Session, issued: StepLink, answer: ParticipantEvaluationForm, actor: Actor
) -> str:
    return record_evaluation(
        session=session,
        placement=subject(session, issued, Placement),
        author="participant",
        form=answer,
        actor=actor,
    )


def _page_host(session: Session, issued: StepLink) -> StepPage:
    row = get_session(session, issued.case_id)
    placement = subject(session, issued, Placement)
    application = application_of(session, placement)
    return StepPage(
        title="Évaluation de l'accueil",
        case_label=row.reference,
        details=[
            ("Stagiaire", contact(session, application.contact_id).name),
            ("Jours", days_label(placement.day_list)),
        ],
    )


def _record_host(
    session: Session, issued: StepLink, answer: HostEvaluationForm, actor: Actor
) -> str:
    return record_evaluation(
        session=session,
        placement=subject(session, issued, Placement),
        author="host",
        form=answer,
        actor=actor,
    )


GRID = StepKind(
    Step.GRID,
    ParticipantEvaluationForm,
    _page_participant,
    _record_participant,
    wait_step=current_wait_step,
)
HOST_EVALUATION = StepKind(
    Step.HOST_EVALUATION,
    HostEvaluationForm,
    _page_host,
    _record_host,
    wait_step=current_wait_step,
)
MAILS = (EvaluationMail, HostEvaluationMail)
