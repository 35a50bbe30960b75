"""One immersion session ("stages croisés") = one run of the `immersion-session` deployment.

The body is a loop: read the session's status, run its phase. A phase asks the models one
question (`models.immersion.progress`: do what can be done now, and say what comes next),
then enters at most one wait: a date or a partner's answer (`wait_until`, woken by `tick`
or the service), or a coordinator's form in the Prefect UI (`ask`). A resumed run starts
again from the top and finds the state where it left it; every step is idempotent (mails
deduplicated, events written only on a change), so a replay sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated, TypeVar

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlmodel import Session

from flows.artifacts import show_markdown, show_table
from flows.inputs.fields import INSIST, WallClockParameter, at_paris
from flows.inputs.immersion import (
    AttendanceForm,
    PairLine,
    PlacementLine,
    PlacementReviewForm,
    PreparationAttendanceForm,
    SelectionForm,
    fr,
    with_choices,
)
from flows.mail import send_case_mail
from flows.run import run_id, system_actor
from flows.tags import tag_run
from flows.waits import ask, wait_until
from models.core import clock
from models.core.audit import Actor
from models.core.db import session_scope
from models.core.settings import get_settings
from models.immersion import call, progress, review
from models.immersion.common import get_session
from models.immersion.plan import default_withdrawal_cutoff
from models.immersion.progress import AttendanceQuestion, Pause, Report, SelectionQuestion
from models.immersion.review import PlacementQuestion
from models.immersion.states import STATUS_LABELS, WAIT_LABELS, SessionStatus, WaitName
from models.immersion.tables import CASE, ImmersionSession, ImmersionSessionCreate

S = SessionStatus
R = TypeVar("R")


def _with_row(row_id: int, action: Callable[[Session, ImmersionSession], R]) -> R:
    """One transaction on the session's row."""
    with session_scope() as session:
        return action(session, get_session(session, row_id))


# -- tasks: each asks the models one question, in one transaction --------------------------
@task(name="Créer ou reprendre la session", cache_policy=NO_CACHE, retries=2)
def setup_session(data: ImmersionSessionCreate, session_id: int, flow_run_id: str) -> int:
    with session_scope() as session:
        return call.start_session(
            session=session,
            data=data,
            session_id=session_id,
            flow_run_id=flow_run_id,
            actor=Actor.system(flow_run_id),
        )


def read_status(row_id: int) -> SessionStatus:
    """The status (closing the waits of phases already left) and the progress artifact."""

    def read(session: Session, row: ImmersionSession) -> tuple[SessionStatus, str]:
        return progress.current_status(session, row), progress.progress_markdown(session, row)

    status, markdown = _with_row(row_id, read)
    show_markdown(
        key=f"session-{row_id}-etat", markdown=markdown, description="Où en est la session"
    )
    return status


@task(name="Envoyer l'appel à candidatures", cache_policy=NO_CACHE, retries=2)
def open_call(row_id: int) -> None:
    """Mail the call; nothing to wait for (the call phase follows)."""
    _with_row(row_id, lambda s, row: call.open_call(session=s, row=row, actor=system_actor()))


@task(name="Suivre l'appel à candidatures", cache_policy=NO_CACHE, retries=2)
def follow_call(row_id: int) -> Pause | None:
    return _with_row(
        row_id, lambda s, row: progress.call_next(session=s, row=row, actor=system_actor())
    )


@task(name="Proposer la sélection", cache_policy=NO_CACHE)
def propose(row_id: int) -> SelectionQuestion:
    return _with_row(row_id, lambda s, row: progress.selection_question(session=s, row=row))


@task(name="Proposer les accueils, puis suivre les structures d'accueil", cache_policy=NO_CACHE)
def follow_placements(row_id: int) -> Pause | PlacementQuestion | None:
    return _with_row(
        row_id, lambda s, row: progress.placement_next(session=s, row=row, actor=system_actor())
    )


@task(name="Suivre accueils, conventions et désistements", cache_policy=NO_CACHE, retries=2)
def follow_partners(row_id: int) -> Pause | None:
    return _with_row(
        row_id, lambda s, row: progress.partners_next(session=s, row=row, actor=system_actor())
    )


@task(name="Préparer la journée de préparation", cache_policy=NO_CACHE, retries=2)
def follow_preparation(row_id: int) -> Pause | AttendanceQuestion:
    return _with_row(
        row_id, lambda s, row: progress.preparation_next(session=s, row=row, actor=system_actor())
    )


@task(name="Envoyer les jours d'immersion et les rappels", cache_policy=NO_CACHE, retries=2)
def follow_immersions(row_id: int) -> Pause | None:
    return _with_row(
        row_id, lambda s, row: progress.immersion_next(session=s, row=row, actor=system_actor())
    )


@task(name="Demander les évaluations", cache_policy=NO_CACHE, retries=2)
def follow_evaluations(row_id: int) -> Pause | None:
    return _with_row(
        row_id, lambda s, row: progress.evaluation_next(session=s, row=row, actor=system_actor())
    )


@task(name="Préparer la restitution", cache_policy=NO_CACHE, retries=2)
def follow_restitution(row_id: int) -> Pause | AttendanceQuestion:
    return _with_row(row_id, lambda s, row: progress.restitution_next(session=s, row=row))


@task(name="Établir le bilan", cache_policy=NO_CACHE, retries=2)
def make_report(row_id: int) -> Report:
    return _with_row(
        row_id, lambda s, row: progress.report(session=s, row=row, actor=system_actor())
    )


# -- the one wait of a phase ----------------------------------------------------------
def _pause(row_id: int, pause: Pause | None) -> None:
    """Suspend until the pause's date, or until the awaited answer (or a cancellation)."""
    if pause is None:
        return
    wait_until(
        case_type=CASE,
        case_id=row_id,
        step=pause.wait,
        ready=lambda session: progress.woken(session, get_session(session, row_id), pause),
        due_at=pause.due_at,
        waiting_on=pause.waiting_on,
    )


def _ask_selection(row_id: int, question: SelectionQuestion) -> None:
    show_table(
        key=f"session-{row_id}-selection",
        table=question.table,
        description="Proposition de sélection",
    )

    def record(session: Session, answer: SelectionForm, actor: Actor) -> None:
        progress.answer_selection(
            session=session,
            row=get_session(session, row_id),
            kept=answer.kept,
            waitlist=answer.waitlist,
            pairs=[(p.first, p.second) for p in map(PairLine.model_validate, answer.pairs)],
            actor=actor,
            comment=answer.comment,
        )

    choices = question.choices
    ask(
        case_type=CASE,
        case_id=row_id,
        step=WaitName.SELECTION,
        form=with_choices(SelectionForm, {"kept": choices, "waitlist": choices, "pairs": choices}),
        initial=question.initial,
        description=question.description,
        on_answer=record,
        waiting_on=WAIT_LABELS[WaitName.SELECTION],
    )


def _review_or_pause(row_id: int, next_: Pause | PlacementQuestion | None) -> None:
    """The placements: the coordinator reviews the proposed hosts, then the hosts answer."""
    if not isinstance(next_, PlacementQuestion):
        _pause(row_id, next_)
        return
    question = next_
    show_table(
        key=f"session-{row_id}-placements", table=question.table, description="Accueils proposés"
    )

    def record(session: Session, answer: PlacementReviewForm, actor: Actor) -> None:
        lines = map(PlacementLine.model_validate, answer.placements)
        review.review_placements(
            session=session,
            row=get_session(session, row_id),
            lines=[(line.participant, line.host) for line in lines],
            actor=actor,
            comment=answer.comment,
            shown=question.participants,
        )

    choices = {"participant": question.participants, "host": question.hosts}
    ask(
        case_type=CASE,
        case_id=row_id,
        step=WaitName.PLACEMENT_REVIEW,
        form=with_choices(PlacementReviewForm, {"placements": choices}),
        initial=question.initial,
        description=question.description,
        on_answer=record,
        waiting_on=WAIT_LABELS[WaitName.PLACEMENT_REVIEW],
    )


def _pause_or_ask(row_id: int, next_: Pause | AttendanceQuestion) -> None:
    """A meeting phase: wait for the day, or ask who came."""
    if isinstance(next_, Pause):
        _pause(row_id, next_)
        return
    question = next_

    def record(session: Session, answer: AttendanceForm, actor: Actor) -> None:
        leaving = answer if isinstance(answer, PreparationAttendanceForm) else None
        progress.answer_attendance(
            session=session,
            row=get_session(session, row_id),
            meeting=question.meeting,
            present=answer.present,
            withdrawn=leaving.withdrawn if leaving else (),
            withdraw_reason=leaving.withdraw_reason if leaving else "",
            actor=actor,
        )

    preparation = question.meeting == "preparation"
    form: type[AttendanceForm] = with_choices(
        PreparationAttendanceForm if preparation else AttendanceForm,
        {"present": question.choices, **({"withdrawn": question.choices} if preparation else {})},
    )
    ask(
        case_type=CASE,
        case_id=row_id,
        step=question.wait,
        form=form,
        initial=question.initial,
        description=question.description,
        on_answer=record,
        waiting_on=question.waiting_on,
    )


def _show_report(row_id: int, report: Report) -> None:
    show_markdown(
        key=f"session-{row_id}-bilan", markdown=report.markdown, description="Bilan de la session"
    )
    show_table(
        key=f"session-{row_id}-bilan-participants",
        table=report.participants,
        description="Participants de la session",
    )


# -- phases: one question to the models, then at most one wait ----------------------------
PHASES: dict[SessionStatus, Callable[[int], None]] = {
    S.DRAFT: lambda row_id: open_call(row_id),
    S.CALL_OPEN: lambda row_id: _pause(row_id, follow_call(row_id)),
    S.SELECTION: lambda row_id: _ask_selection(row_id, propose(row_id)),
    S.PLACEMENT: lambda row_id: _review_or_pause(row_id, follow_placements(row_id)),
    S.AGREEMENTS: lambda row_id: _pause(row_id, follow_partners(row_id)),
    S.PREPARATION: lambda row_id: _pause_or_ask(row_id, follow_preparation(row_id)),
    S.IMMERSION: lambda row_id: _pause(row_id, follow_immersions(row_id)),
    S.EVALUATION: lambda row_id: _pause(row_id, follow_evaluations(row_id)),
    S.RESTITUTION: lambda row_id: _pause_or_ask(row_id, follow_restitution(row_id)),
    S.REPORT: lambda row_id: _show_report(row_id, make_report(row_id)),
}


def _now() -> datetime:
    with session_scope() as session:
        return clock.now(session)


@flow(
    name="immersion-session",
    flow_run_name="Session {title}",
    log_prints=True,
    persist_result=True,
)
def immersion_session(
    clsm: Annotated[str, fr("CLSM (identifiant court)")],
    title: Annotated[str, fr("Titre de la session")],
    structures: Annotated[list[str], fr("Structures invitées")],
    call_closes_on: Annotated[date, fr("Clôture de l'appel à candidatures : jour")],
    preparation_on: Annotated[date, fr("Journée de préparation : jour")],
    window_start: Annotated[date, fr("Premier jour possible des immersions")],
    window_end: Annotated[date, fr("Dernier jour possible des immersions")],
    restitution_on: Annotated[date, fr("Restitution : jour")],
    call_closes_time: Annotated[
        WallClockParameter, fr("Clôture de l'appel : heure (heure de Paris)")
    ] = "18:00",
    preparation_time: Annotated[
        WallClockParameter, fr("Journée de préparation : heure de début (heure de Paris)")
    ] = "09:00",
    restitution_time: Annotated[
        WallClockParameter, fr("Restitution : heure de début (heure de Paris)")
    ] = "14:00",
    preparation_place: Annotated[str, fr("Lieu de la journée de préparation")] = "",
    restitution_place: Annotated[str, fr("Lieu de la restitution")] = "",
    facilitator_name: Annotated[str, fr("Animation de la journée de préparation")] = "",
    facilitator_email: Annotated[str, fr("Adresse électronique de l'animation")] = "",
    capacity: Annotated[int, fr("Nombre de places")] = 16,
    max_per_structure: Annotated[int, fr("Maximum de participants par structure")] = 0,
    host_capacity: Annotated[int, fr("Stagiaires accueillis par structure")] = 2,
    min_days: Annotated[int, fr("Durée minimale d'une immersion (jours)")] = 1,
    max_days: Annotated[int, fr("Durée maximale d'une immersion (jours)")] = 5,
    preparation_hours: Annotated[float, fr("Durée de la journée de préparation (heures)")] = 7.0,
    restitution_hours: Annotated[float, fr("Durée de la restitution (heures)")] = 3.5,
    withdrawal_days: Annotated[int, fr("Fin des remplacements (jours ouvrés avant)")] = 2,
    offer_days: Annotated[int, fr("Délai de réponse à une place proposée (jours)")] = 3,
    insist: Annotated[bool, fr(INSIST)] = False,
    session_id: Annotated[int, fr("Session déjà préparée à reprendre (n°)")] = 0,
) -> dict[str, int | str]:
    """Session de stages croisés : appel, sélection, accueils, conventions, préparation,
    immersions, évaluations, restitution et bilan.

    Args:
        clsm: Identifiant court du CLSM (ex. « poitiers »).
        title: Titre de la session (ex. « Immersions 2022 — session 2 »).
        structures: Structures invitées : noms ou sigles, une par ligne (ex. CCAS, CHL).
        call_closes_on: Jour de clôture de l'appel à candidatures.
        preparation_on: Jour de la journée de préparation.
        window_start: Premier jour possible des immersions.
        window_end: Dernier jour possible des immersions.
        restitution_on: Jour de la demi-journée de restitution.
        call_closes_time: Heure de clôture de l'appel (heure de Paris, 18:00 par défaut).
        preparation_time: Heure de début de la journée de préparation (heure de Paris).
        restitution_time: Heure de début de la restitution (heure de Paris).
        preparation_place: Lieu de la journée de préparation.
        restitution_place: Lieu de la restitution.
        facilitator_name: Animation de la journée de préparation (ex. CODES 34).
        facilitator_email: Adresse électronique de l'animation (invitation agenda).
        capacity: Nombre de places (16 par défaut).
        max_per_structure: Maximum de participants par structure (0 : pas de maximum).
        host_capacity: Stagiaires qu'une structure peut accueillir (avant sa confirmation).
        min_days: Durée minimale d'une immersion, en jours (1 à 5).
        max_days: Durée maximale d'une immersion, en jours (1 à 5).
        preparation_hours: Durée de la journée de préparation, en heures.
        restitution_hours: Durée de la restitution, en heures.
        withdrawal_days: Une place libérée est proposée à la liste d'attente jusqu'à ce
            nombre de jours ouvrés avant la journée de préparation (18 h).
        offer_days: Délai de réponse à une place proposée, en jours.
        insist: Cocher pour maintenir la journée de préparation ou la restitution un
            week-end ou un jour férié (refusé sinon).
        session_id: Laisser 0 (n° d'une session déjà préparée à reprendre).
    """
    logger = get_run_logger()
    prep = at_paris(preparation_on, preparation_time)
    restitution = at_paris(restitution_on, restitution_time)
    data = ImmersionSessionCreate(
        clsm_slug=clsm,
        title=title,
        structures=[s for line in structures for s in line.split(",") if s.strip()],
        capacity=capacity,
        max_per_structure=max_per_structure or None,
        host_capacity=host_capacity,
        call_opens_on=_now().astimezone(get_settings().tz).date(),
        call_closes_at=at_paris(call_closes_on, call_closes_time),
        preparation_at=prep,
        preparation_end=prep + timedelta(hours=preparation_hours),
        preparation_place=preparation_place,
        facilitator_name=facilitator_name,
        facilitator_email=facilitator_email,
        window_start=window_start,
        window_end=window_end,
        min_days=min_days,
        max_days=max_days,
        restitution_at=restitution,
        restitution_end=restitution + timedelta(hours=restitution_hours),
        restitution_place=restitution_place,
        withdrawal_cutoff=default_withdrawal_cutoff(prep, withdrawal_days),
        offer_days=offer_days,
        insist=insist,
    )
    row_id = setup_session(data, session_id, run_id())
    tag_run(run_id(), clsm, "immersion")
    while True:
        status = read_status(row_id)
        if status in (S.CLOSED, S.CANCELLED):
            logger.info("Session %s : %s", title, STATUS_LABELS[status])
            send_case_mail(CASE, row_id)
            return {"session_id": row_id, "status": status.value}
        PHASES[status](row_id)
