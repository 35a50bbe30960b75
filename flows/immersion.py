"""One immersion session ("stages croisés") = one run of the `immersion-session` deployment.

The body is a loop: read the session's status from the app database, run the next step.
A resumed run starts again from the top and finds the state where it left it; every step
is idempotent (mails deduplicated, events written only on a change), so a replay sends
nothing twice. Partners answer through the service (links); dates are waited for with
`wait_until(due_at=...)` (woken by `tick`); the coordinator answers Prefect UI forms.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from sqlmodel import Session

from flows.inputs.immersion import AttendanceForm, SelectionForm
from flows.mail import send_case_mail
from flows.waits import ask, wait_until
from models.core import clock
from models.core.audit import Actor
from models.core.calendar import add_business_days, at_local
from models.core.db import session_scope
from models.core.enums import CaseType
from models.core.errors import DomainError
from models.core.settings import get_settings
from models.core.waits import find_wait, next_generation
from models.immersion import domain as im
from models.immersion.rules import apply_coordinator_choice, parse_numbers
from models.immersion.states import STATUS_LABELS, ApplicationStatus, SessionStatus

S = SessionStatus
CASE = CaseType.SESSION
R = TypeVar("R")


def _run_id() -> str:
    run_id = flow_run.get_id()
    if run_id is None:
        raise RuntimeError("an immersion session runs as a flow run of its deployment")
    return str(run_id)


def _system() -> Actor:
    return Actor.system(_run_id())


def _coordinator() -> Actor:
    return Actor.prefect_ui(_run_id())


def _aware(moment: datetime) -> datetime:
    """Prefect UI datetimes may come without a zone: they are Paris wall-clock times."""
    return moment if moment.tzinfo else moment.replace(tzinfo=get_settings().tz)


def _with_row(row_id: int, action: Callable[[Session, im.ImmersionSession], R]) -> R:
    with session_scope() as session:
        return action(session, im.get_session(session, row_id))


STEPS: dict[SessionStatus, set[str]] = {
    S.CALL_OPEN: {"call-reminder", "call-close"},
    S.SELECTION: {"selection"},
    S.PLACEMENT: {"partners"},
    S.AGREEMENTS: {"partners"},
    S.PREPARATION: {"preparation-day", "preparation-attendance"},
    S.IMMERSION: {"immersion"},
    S.EVALUATION: {"evaluations"},
    S.RESTITUTION: {"restitution-day", "restitution-attendance"},
}


def _status(row_id: int) -> SessionStatus:
    """The session's status; the waits of phases already left are closed on the way."""

    def read(session: Session, row: im.ImmersionSession) -> SessionStatus:
        im.close_stale_waits(session=session, row=row, keep=STEPS.get(row.status, set()))
        return row.status

    return _with_row(row_id, read)


def _now() -> datetime:
    with session_scope() as session:
        return clock.now(session)


# -- tasks: each does its database work in one transaction, idempotently ------------------
@task(name="Créer ou reprendre la session", cache_policy=NO_CACHE, retries=2)
def setup_session(data: im.ImmersionSessionCreate, session_id: int, run_id: str) -> int:
    with session_scope() as session:
        actor = Actor.system(run_id)
        if session_id:
            row = im.get_session(session, session_id)
            im.attach_run(session=session, row=row, flow_run_id=run_id, actor=actor)
        else:
            row = im.create_session(session=session, data=data, flow_run_id=run_id, actor=actor)
        assert row.id is not None
        return row.id


@task(name="Envoyer l'appel à candidatures", cache_policy=NO_CACHE, retries=2)
def open_call(row_id: int) -> int:
    return _with_row(row_id, lambda s, row: im.open_call(session=s, row=row, actor=_system()))


@task(name="Relancer l'appel à candidatures", cache_policy=NO_CACHE, retries=2)
def remind_call(row_id: int) -> int:
    return _with_row(row_id, lambda s, row: im.remind_call(session=s, row=row))


@task(name="Clore l'appel", cache_policy=NO_CACHE, retries=2)
def close_call(row_id: int) -> None:
    _with_row(row_id, lambda s, row: im.start_selection(session=s, row=row, actor=_system()))


@task(name="Proposer la sélection", cache_policy=NO_CACHE)
def propose(row_id: int) -> tuple[str, dict[str, object], list[dict[str, Any]]]:
    """The proposal as a markdown description, the form's initial values and a table."""

    def build(session: Session, row: im.ImmersionSession) -> Any:
        decisions = im.selection_proposal(session, row)
        table = im.selection_table(session, decisions)
        kept = [d.number for d in decisions if d.outcome.value == "selected"]
        waiting = sorted(
            (d for d in decisions if d.outcome.value == "waitlisted"),
            key=lambda d: d.waitlist_rank or 0,
        )
        lines = [
            f"## Sélection — {row.title}",
            "",
            f"{len(decisions)} candidatures pour {row.capacity} places"
            + (f", au plus {row.max_per_structure} par structure" if row.max_per_structure else "")
            + ". Proposition : équilibre entre structures puis ordre d'arrivée.",
            "Validez tel quel, ou modifiez les numéros retenus et la liste d'attente.",
            "",
            "| n° | candidat·e | structure | décision | motif |",
            "|---|---|---|---|---|",
            *(
                f"| {r['n°']} | {r['candidat·e']} | {r['structure']} | {r['décision']} "
                f"| {r['motif']} |"
                for r in table
            ),
        ]
        initial = {
            "kept": ", ".join(map(str, kept)),
            "waitlist": ", ".join(str(d.number) for d in waiting),
        }
        return "\n".join(lines), initial, table

    result: tuple[str, dict[str, object], list[dict[str, Any]]] = _with_row(row_id, build)
    return result


@task(name="Suivre accueils, conventions et désistements", cache_policy=NO_CACHE, retries=2)
def sync_partners(row_id: int) -> datetime | None:
    """Offer freed places, give hosts to new participants, mail agreements and invitations."""

    def run(session: Session, row: im.ImmersionSession) -> datetime | None:
        actor = _system()
        deadline = im.manage_vacancies(session=session, row=row, actor=actor)
        im.ensure_placements(session=session, row=row, actor=actor)
        im.ensure_agreements(session=session, row=row, actor=actor)
        im.ensure_invitations(session=session, row=row)
        return deadline

    return _with_row(row_id, run)


@task(name="Passer à l'étape suivante", cache_policy=NO_CACHE, retries=2)
def advance(row_id: int, to: SessionStatus, reason: str = "") -> None:
    _with_row(
        row_id,
        lambda s, row: im.advance_to(session=s, row=row, to=to, actor=_system(), reason=reason),
    )


@task(name="Envoyer les jours d'immersion et les rappels", cache_policy=NO_CACHE, retries=2)
def immersion_notices(row_id: int) -> tuple[datetime | None, datetime]:
    def run(session: Session, row: im.ImmersionSession) -> tuple[datetime | None, datetime]:
        return im.immersion_notices(session=session, row=row), im.immersion_end(session, row)

    return _with_row(row_id, run)


@task(name="Clore les immersions", cache_policy=NO_CACHE, retries=2)
def finish_immersions(row_id: int) -> None:
    def run(session: Session, row: im.ImmersionSession) -> None:
        if row.status is S.IMMERSION:
            im.finish_immersions(session=session, row=row, actor=_system())
            im.advance_to(session=session, row=row, to=S.EVALUATION, actor=_system())

    _with_row(row_id, run)


@task(name="Demander les évaluations", cache_policy=NO_CACHE, retries=2)
def request_evaluations(row_id: int) -> int:
    def run(session: Session, row: im.ImmersionSession) -> int:
        sent = im.request_evaluations(session=session, row=row)
        return sent + im.ensure_restitution_invitations(session=session, row=row)

    return _with_row(row_id, run)


@task(name="Établir le bilan", cache_policy=NO_CACHE, retries=2)
def make_report(row_id: int) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    def run(session: Session, row: im.ImmersionSession) -> Any:
        data = im.store_report(session=session, row=row, actor=_system())
        im.advance_to(session=session, row=row, to=S.CLOSED, actor=_system())
        f = data.figures
        summary = {
            "candidatures": f.applications,
            "retenues": f.kept,
            "retraits": len(f.withdrawals),
            "immersions": f.immersions_done,
            "jours": f.days_total,
        }
        return im.report_markdown(data), data.participants, summary

    result: tuple[str, list[dict[str, Any]], dict[str, Any]] = _with_row(row_id, run)
    return result


def _progress(row_id: int) -> None:
    """A markdown artifact saying where the session stands and who is awaited."""
    with session_scope() as session:
        row = im.get_session(session, row_id)
        awaited = im.awaited(session, row)
        text = "\n".join(
            [
                f"## {row.reference} — {STATUS_LABELS[row.status]}",
                "",
                *(f"- en attente : {who}" for who in awaited),
            ]
        )
    create_markdown_artifact(
        key=f"session-{row_id}-etat", markdown=text, description="Où en est la session"
    )


# -- phases ---------------------------------------------------------------------------
def _until(
    row_id: int, condition: Callable[[Session], bool] | None = None
) -> Callable[[Session], bool]:
    """A wait's readiness: its own condition, or the session was cancelled meanwhile."""

    def ready(session: Session) -> bool:
        if im.get_session(session, row_id).status is S.CANCELLED:
            return True
        return condition(session) if condition else False

    return ready


def _call_phase(row_id: int) -> None:
    closes, reminder = _with_row(
        row_id, lambda _s, row: (row.call_closes_at, im.call_reminder_at(row))
    )
    if reminder < closes:
        wait_until(
            case_type=CASE,
            case_id=row_id,
            step="call-reminder",
            ready=_until(row_id),
            due_at=reminder,
            waiting_on="rappel avant la clôture de l'appel",
        )
        if _now() < closes:
            remind_call(row_id)
    wait_until(
        case_type=CASE,
        case_id=row_id,
        step="call-close",
        ready=_until(row_id),
        due_at=closes,
        waiting_on="candidatures (clôture de l'appel)",
    )
    close_call(row_id)


def _selection_phase(row_id: int) -> None:
    description, initial, table = propose(row_id)
    create_table_artifact(
        key=f"session-{row_id}-selection", table=table, description="Proposition de sélection"
    )
    create_markdown_artifact(key=f"session-{row_id}-selection-resume", markdown=description)

    def record(session: Session, answer: SelectionForm) -> None:
        row = im.get_session(session, row_id)
        if row.status is not S.SELECTION:
            return  # woken by a cancellation: nothing to record
        try:
            decisions = apply_coordinator_choice(
                im.selection_proposal(session, row),
                kept=parse_numbers(answer.kept),
                waitlist=parse_numbers(answer.waitlist),
                capacity=row.capacity,
            )
        except ValueError as error:
            # refused: ask again with a fresh key (the answered one is spent)
            wait = find_wait(session=session, case_type=CASE, case_id=row_id, step="selection")
            assert wait is not None
            next_generation(session=session, wait=wait)
            im.note_refused_form(
                session=session, row=row, step="selection", error=str(error), actor=_coordinator()
            )
            return
        im.record_selection(session=session, row=row, decisions=decisions, actor=_coordinator())

    error = _with_row(row_id, lambda s, row: im.last_refusal(s, row, "selection"))
    ask(
        case_type=CASE,
        case_id=row_id,
        step="selection",
        form=SelectionForm,
        initial=initial,
        description=(f"**Saisie refusée : {error}**\n\n" if error else "") + description,
        on_answer=record,
        waiting_on="la coordination (validation de la sélection)",
    )


def _partners_phase(row_id: int) -> None:
    """Placements and agreements: wait for hosts and signatures, handle withdrawals."""
    deadline = sync_partners(row_id)

    def done(session: Session) -> bool:
        row = im.get_session(session, row_id)
        if row.status is S.PLACEMENT:
            return im.placements_confirmed(session, row)
        return im.agreements_signed(session, row)

    def state(session: Session) -> tuple[SessionStatus, bool, datetime]:
        row = im.get_session(session, row_id)
        return row.status, done(session), row.preparation_at

    status, finished, preparation_at = _with_row(row_id, lambda s, _r: state(s))
    if finished or _now() >= preparation_at:
        reason = "" if finished else "journée de préparation : réponses manquantes"
        advance(row_id, S.AGREEMENTS if status is S.PLACEMENT else S.PREPARATION, reason)
        return
    due = min(deadline, preparation_at) if deadline else preparation_at

    def changed(session: Session) -> bool:
        row = im.get_session(session, row_id)
        return done(session) or im.next_offer_deadline(session, row) != deadline

    wait_until(
        case_type=CASE,
        case_id=row_id,
        step="partners",
        ready=_until(row_id, changed),
        due_at=due,
        waiting_on="structures d'accueil, signataires des conventions, liste d'attente",
    )


def _attendance(row_id: int, meeting: str, step: str, then: SessionStatus) -> None:
    numbers, names = _with_row(row_id, lambda s, row: im.participant_numbers(s, row))
    title = "journée de préparation" if meeting == "preparation" else "restitution"

    def record(session: Session, answer: AttendanceForm) -> None:
        row = im.get_session(session, row_id)
        if row.status is S.CANCELLED:
            return
        try:
            present = parse_numbers(answer.present)
            withdrawn = parse_numbers(answer.withdraw)
            im.record_attendance(
                session=session,
                row=row,
                meeting=meeting,  # type: ignore[arg-type]
                present_numbers=present,
                actor=_coordinator(),
            )
            for application in im.applications(session, row_id, ApplicationStatus.SELECTED):
                if application.number in withdrawn:
                    im.withdraw_application(
                        session=session,
                        application=application,
                        actor=_coordinator(),
                        reason=answer.withdraw_reason or "retrait décidé par la coordination",
                    )
        except (ValueError, DomainError) as error:
            wait = find_wait(session=session, case_type=CASE, case_id=row_id, step=step)
            assert wait is not None
            next_generation(session=session, wait=wait)
            im.note_refused_form(
                session=session, row=row, step=step, error=str(error), actor=_coordinator()
            )
            return
        im.advance_to(session=session, row=row, to=then, actor=_coordinator())

    error = _with_row(row_id, lambda s, row: im.last_refusal(s, row, step))
    table = "\n".join(f"| {n} | {name} |" for n, name in zip(numbers, names, strict=True))
    ask(
        case_type=CASE,
        case_id=row_id,
        step=step,
        form=AttendanceForm,
        initial={"present": ", ".join(map(str, numbers))},
        description=(f"**Saisie refusée : {error}**\n\n" if error else "")
        + f"## Présences — {title}\n\nCochez les présents en gardant leurs numéros.\n\n"
        "| n° | participant |\n|---|---|\n" + table,
        on_answer=record,
        waiting_on=f"la coordination (présences : {title})",
    )


def _preparation_phase(row_id: int) -> None:
    sync_partners(row_id)
    end = _with_row(row_id, lambda _s, row: row.preparation_end)
    wait_until(
        case_type=CASE,
        case_id=row_id,
        step="preparation-day",
        ready=_until(row_id),
        due_at=end,
        waiting_on="journée de préparation",
    )
    _attendance(row_id, "preparation", "preparation-attendance", S.IMMERSION)


def _immersion_phase(row_id: int) -> None:
    next_reminder, end = immersion_notices(row_id)
    if _now() >= end:
        finish_immersions(row_id)
        return
    due = min(next_reminder, end) if next_reminder else end
    wait_until(
        case_type=CASE,
        case_id=row_id,
        step="immersion",
        ready=_until(row_id),
        due_at=due,
        waiting_on="immersions en cours",
    )


def _evaluation_phase(row_id: int) -> None:
    request_evaluations(row_id)

    def complete(session: Session) -> bool:
        return not im.missing_evaluations(session, im.get_session(session, row_id))

    restitution_at = _with_row(row_id, lambda _s, row: row.restitution_at)
    finished = _with_row(row_id, lambda s, _r: complete(s))
    if finished or _now() >= restitution_at:
        advance(row_id, S.RESTITUTION, "" if finished else "restitution : évaluations manquantes")
        return
    wait_until(
        case_type=CASE,
        case_id=row_id,
        step="evaluations",
        ready=_until(row_id, complete),
        due_at=restitution_at,
        waiting_on="grilles d'observation et évaluations",
    )


def _restitution_phase(row_id: int) -> None:
    request_evaluations(row_id)  # late evaluations and invitations, if any
    end = _with_row(row_id, lambda _s, row: row.restitution_end)
    wait_until(
        case_type=CASE,
        case_id=row_id,
        step="restitution-day",
        ready=_until(row_id),
        due_at=end,
        waiting_on="restitution",
    )
    _attendance(row_id, "restitution", "restitution-attendance", S.REPORT)


def _report_phase(row_id: int) -> None:
    markdown, rows, _summary = make_report(row_id)
    create_markdown_artifact(
        key=f"session-{row_id}-bilan", markdown=markdown, description="Bilan de la session"
    )
    create_table_artifact(
        key=f"session-{row_id}-bilan-participants",
        table=rows,
        description="Participants de la session",
    )


def _draft_phase(row_id: int) -> None:
    open_call(row_id)


PHASES: dict[SessionStatus, Callable[[int], None]] = {
    S.DRAFT: _draft_phase,
    S.CALL_OPEN: _call_phase,
    S.SELECTION: _selection_phase,
    S.PLACEMENT: _partners_phase,
    S.AGREEMENTS: _partners_phase,
    S.PREPARATION: _preparation_phase,
    S.IMMERSION: _immersion_phase,
    S.EVALUATION: _evaluation_phase,
    S.RESTITUTION: _restitution_phase,
    S.REPORT: _report_phase,
}


@flow(
    name="immersion-session",
    flow_run_name="Session {title}",
    log_prints=True,
    persist_result=True,
)
def immersion_session(
    clsm: str,
    title: str,
    structures: list[str],
    call_closes_at: datetime,
    preparation_at: datetime,
    window_start: date,
    window_end: date,
    restitution_at: datetime,
    preparation_place: str = "",
    restitution_place: str = "",
    facilitator_name: str = "",
    facilitator_email: str = "",
    capacity: int = 16,
    max_per_structure: int = 0,
    host_capacity: int = 2,
    min_days: int = 1,
    max_days: int = 5,
    preparation_hours: float = 7.0,
    restitution_hours: float = 3.5,
    withdrawal_cutoff: datetime | None = None,
    offer_days: int = 3,
    session_id: int = 0,
) -> dict[str, Any]:
    """Session de stages croisés : appel, sélection, accueils, conventions, préparation,
    immersions, évaluations, restitution et bilan.

    Args:
        clsm: Identifiant court du CLSM (ex. « poitiers »).
        title: Titre de la session (ex. « Immersions 2022 — session 2 »).
        structures: Structures invitées : noms ou sigles, une par ligne (ex. CCAS, CHL).
        call_closes_at: Clôture de l'appel à candidatures (date et heure).
        preparation_at: Début de la journée de préparation (date et heure).
        window_start: Premier jour possible des immersions.
        window_end: Dernier jour possible des immersions.
        restitution_at: Début de la demi-journée de restitution (date et heure).
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
        withdrawal_cutoff: Date limite des remplacements (défaut : 2 jours ouvrés avant la
            préparation).
        offer_days: Délai de réponse à une place proposée, en jours.
        session_id: Laisser 0 (n° d'une session déjà préparée à reprendre).
    """
    logger = get_run_logger()
    prep = _aware(preparation_at)
    restitution = _aware(restitution_at)
    data = im.ImmersionSessionCreate(
        clsm_slug=clsm,
        title=title,
        structures=[s for line in structures for s in line.split(",") if s.strip()],
        capacity=capacity,
        max_per_structure=max_per_structure or None,
        host_capacity=host_capacity,
        call_opens_on=_now().astimezone(get_settings().tz).date(),
        call_closes_at=_aware(call_closes_at),
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
        withdrawal_cutoff=_aware(withdrawal_cutoff)
        if withdrawal_cutoff
        else at_local(
            add_business_days(prep.astimezone(get_settings().tz).date(), -2), 18, get_settings().tz
        ),
        offer_days=offer_days,
    )
    row_id = setup_session(data, session_id, _run_id())
    _tag_run(clsm)
    while True:
        status = _status(row_id)
        _progress(row_id)
        if status in (S.CLOSED, S.CANCELLED):
            logger.info("Session %s : %s", title, STATUS_LABELS[status])
            send_case_mail(CASE, row_id)
            return {"session_id": row_id, "status": status.value}
        PHASES[status](row_id)


def _tag_run(clsm: str) -> None:
    """Tags per CLSM, so that the Prefect UI can filter a CLSM's sessions."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    tags = sorted({*(flow_run.get_tags() or []), f"clsm:{clsm}", "immersion"})
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(_run_id()), tags=tags)
