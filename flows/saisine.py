"""The `saisine` flow: one run per saisine of the cell, from the intake to its closure.

A resumed run starts again from the top: each pass reads the saisine's status, asks its
phase's question of the models (`PHASES`), runs the task the answer names, then at most one
wait: a coordinator form in the Prefect UI (`FORMS`), or partners' answers and a due time
(`wait_until`, woken by the service and by tick). Every task is idempotent (links, mails and
events are keyed by the case), so a replay sends no second mail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from sqlmodel import Session, select

from flows.artifacts import show_markdown
from flows.inputs.fields import at_paris, check_open_day, wall_clock
from flows.inputs.saisine import (
    BACK_TO_LEVEL1,
    CANCEL,
    ESCALATE,
    MOVE,
    NEW_MEETING,
    ActionsWatchForm,
    DecisionForm,
    MeetingForm,
    MeetingWatchForm,
    OrientationForm,
    PartnersForm,
    SaisineIntakeForm,
    decision_form,
    meeting_form,
    meeting_watch_form,
    orientation_form,
    partners_form,
)
from flows.mail import send_case_mail
from flows.run import run_id
from flows.tags import tag_run
from flows.waits import REFUSED, answered_by, ask, prefilled, suspend, wait_until
from models.core import clock
from models.core.audit import Actor, record_event
from models.core.calendar import local_date
from models.core.db import session_scope
from models.core.errors import DomainError
from models.core.gateway import launch_actor
from models.core.settings import get_settings
from models.core.waits import (
    COORDINATOR_STEP_PREFIX,
    Wait,
    WaitStatus,
    close_wait,
    next_generation,
    open_wait,
    refuse_answer,
)
from models.saisine.common import (
    close_saisine,
    escalate_to_level2,
    get_saisine,
)
from models.saisine.decisions import (
    decide,
    decision_owners,
    next_when_decided,
    remind_action_owners,
)
from models.saisine.follow_up import (
    alert_silent_referrer,
    apply_follow_up,
    next_in_follow_up,
    next_when_oriented,
    start_follow_up,
)
from models.saisine.intake import ask_description, next_when_received, open_saisine
from models.saisine.level1 import (
    choose_partners,
    escalate_silent_partners,
    next_in_level1,
    orientation_choices,
    partner_choices,
    record_orientation,
    remind_silent_partners,
)
from models.saisine.meetings import (
    back_to_level1,
    cancel_meeting,
    meeting_choices,
    next_in_level2,
    put_on_meeting,
    reschedule_meeting,
)
from models.saisine.plan import Next, Task
from models.saisine.states import (
    STATUS_LABELS,
    WAITING_ON,
    MeetingStatus,
    SaisineStatus,
    WaitName,
)
from models.saisine.summary import summary_markdown
from models.saisine.tables import SAISINE, CellMeeting, Saisine

FINAL = (SaisineStatus.CLOSED, SaisineStatus.URGENT_CLOSED)
MAX_FOLLOW_UP_DAYS = 365
ACTION_DAYS = 30  # the due date the decision form proposes for each action
MAX_PASSES = 200  # every pass moves the case on or suspends the run

PHASES: dict[SaisineStatus, Callable[[Session, Saisine], Next]] = {
    SaisineStatus.RECEIVED: next_when_received,
    SaisineStatus.LEVEL1: next_in_level1,
    SaisineStatus.ORIENTED: next_when_oriented,
    SaisineStatus.FOLLOW_UP: next_in_follow_up,
    SaisineStatus.LEVEL2: next_in_level2,
    SaisineStatus.DECIDED: next_when_decided,
}
"""Each phase's question: what the run does next (a task, then at most one wait)."""

F = TypeVar("F", bound=OrientationForm | PartnersForm | MeetingForm | DecisionForm)
W = TypeVar("W", bound=MeetingWatchForm | ActionsWatchForm)


def _run_name() -> str:
    reference = str(flow_run.get_parameters().get("reference") or "")
    return f"Saisine {reference}" if reference else "Saisine (nouvelle)"


def _read(saisine_id: int, read: Callable[[Session, Saisine], Any]) -> Any:
    with session_scope() as session:
        return read(session, get_saisine(session, saisine_id))


# -- tasks (idempotent, each in one transaction) ----------------------------------------------
def step(name: str) -> Callable[[Callable[..., Any]], Any]:
    return task(name=name, cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)


@step("Enregistrer la saisine")
def intake_step(intake: SaisineIntakeForm, reference: str, current_run: str) -> int:
    with session_scope() as session:
        today = local_date(clock.now(session), get_settings().tz)
        saisine = open_saisine(
            session=session,
            intake=intake.as_intake(today),
            actor=launch_actor(session, current_run),
            flow_run_id=current_run,
            reference=reference,
        )
        assert saisine.id is not None
        return saisine.id


@step("Nommer le run")
def name_run(run_id: str, reference: str) -> None:
    """Name the run after the saisine's reference (its parameters hold nothing personal)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(run_id), name=f"Saisine {reference}")


@step("Demander la description à la coordination")
def ask_for_description(saisine_id: int) -> None:
    """Mail the coordinator the service page where the description is typed."""
    with session_scope() as session:
        ask_description(session=session, saisine=get_saisine(session, saisine_id))


@step("Relancer les partenaires silencieux")
def remind_partners(saisine_id: int) -> int:
    with session_scope() as session:
        return remind_silent_partners(session=session, saisine=get_saisine(session, saisine_id))


@step("Signaler les partenaires sans réponse à la coordination")
def report_partners(saisine_id: int) -> int:
    with session_scope() as session:
        return escalate_silent_partners(session=session, saisine=get_saisine(session, saisine_id))


@step("Demander le suivi à la personne qui a saisi")
def ask_follow_up(saisine_id: int) -> None:
    with session_scope() as session:
        start_follow_up(session=session, saisine=get_saisine(session, saisine_id))


@step("Signaler le suivi sans réponse à la coordination")
def alert_follow_up(saisine_id: int) -> None:
    with session_scope() as session:
        alert_silent_referrer(session=session, saisine=get_saisine(session, saisine_id))


@step("Appliquer la réponse au suivi")
def follow_up_answered(saisine_id: int) -> None:
    with session_scope() as session:
        apply_follow_up(session=session, saisine=get_saisine(session, saisine_id))


@step("Relancer les responsables d'actions")
def remind_owners(saisine_id: int) -> int:
    with session_scope() as session:
        return remind_action_owners(session=session, saisine=get_saisine(session, saisine_id))


@step("Clore la saisine")
def close_step(saisine_id: int, reason: str) -> None:
    with session_scope() as session:
        saisine = get_saisine(session, saisine_id)
        if saisine.status not in FINAL:
            close_saisine(session=session, saisine=saisine, reason=reason, actor=Actor.system())


TASKS: dict[Task, Callable[[int, Next], Any]] = {
    Task.ASK_DESCRIPTION: lambda saisine_id, _next: ask_for_description(saisine_id),
    Task.REMIND_PARTNERS: lambda saisine_id, _next: remind_partners(saisine_id),
    Task.REPORT_SILENT_PARTNERS: lambda saisine_id, _next: report_partners(saisine_id),
    Task.START_FOLLOW_UP: lambda saisine_id, _next: ask_follow_up(saisine_id),
    Task.ALERT_FOLLOW_UP: lambda saisine_id, _next: alert_follow_up(saisine_id),
    Task.APPLY_FOLLOW_UP: lambda saisine_id, _next: follow_up_answered(saisine_id),
    Task.REMIND_OWNERS: lambda saisine_id, _next: remind_owners(saisine_id),
    Task.CLOSE: lambda saisine_id, next_: close_step(saisine_id, next_.close_reason),
}
"""The tasks a phase's answer may name (each idempotent, in one transaction)."""


@step("Publier le résumé")
def publish_summary(saisine_id: int) -> str:
    """The run's markdown artifact: where the saisine stands (no description of the person)."""
    with session_scope() as session:
        saisine = get_saisine(session, saisine_id)
        summary = summary_markdown(session, saisine)
        key = re.sub(r"[^a-z0-9-]", "-", f"saisine-{saisine.clsm_id}-{saisine.reference}".lower())
        status = STATUS_LABELS[saisine.status]
    show_markdown(key=key, markdown=summary, description=f"Saisine — {status}")
    return status


@step("Clore les attentes")
def finish(saisine_id: int) -> str:
    with session_scope() as session:  # a closed case waits for nothing any more
        for wait in session.exec(
            select(Wait).where(
                Wait.case_type == SAISINE.value,
                Wait.case_id == saisine_id,
                Wait.status == WaitStatus.OPEN,
            )
        ):
            close_wait(session=session, wait=wait)
    return str(publish_summary(saisine_id))


# -- coordinator forms ---------------------------------------------------------------------------
def _ask(
    saisine_id: int,
    next_: Next,
    form: type[F],
    initial: dict[str, Any],
    apply: Callable[[Session, Saisine, F, Actor], None],
) -> None:
    """One coordinator form (`flows.waits.ask` asks again while the rules refuse the answer).

    Each form answered raises the saisine's `form_seq`: a form asked again in a later round
    has a fresh wait key, not the answer of the earlier round.
    """
    with session_scope() as session:
        saisine = get_saisine(session, saisine_id)
        seq = saisine.form_seq
        description = summary_markdown(session, saisine)

    def on_answer(session: Session, answer: F, actor: Actor) -> None:
        saisine = get_saisine(session, saisine_id)
        apply(session, saisine, answer, actor)
        saisine.form_seq += 1
        session.add(saisine)

    ask(
        case_type=SAISINE,
        case_id=saisine_id,
        step=f"{COORDINATOR_STEP_PREFIX}{seq}-{next_.step}",
        form=form,
        description=description,
        initial=initial,
        on_answer=on_answer,
    )


def ask_partners(saisine_id: int, next_: Next) -> None:
    choices = _read(saisine_id, partner_choices)

    def apply(session: Session, saisine: Saisine, answer: PartnersForm, actor: Actor) -> None:
        choose_partners(session=session, saisine=saisine, labels=answer.partners, actor=actor)

    _ask(saisine_id, next_, partners_form(list(choices)), {}, apply)


def ask_orientation(saisine_id: int, next_: Next) -> None:
    choices = _read(saisine_id, orientation_choices)

    def apply(session: Session, saisine: Saisine, answer: OrientationForm, actor: Actor) -> None:
        if answer.outcome == ESCALATE:
            escalate_to_level2(
                session=session, saisine=saisine, actor=actor, reason="décision de la coordination"
            )
            return
        kind = choices.get(answer.outcome)
        if kind is None:
            raise DomainError(f"Orientation inconnue : « {answer.outcome} ».")
        if not answer.who_acts.strip():
            raise DomainError("Indiquez qui agit (la ou les structures).")
        days = answer.follow_up_days
        if not 0 <= days <= MAX_FOLLOW_UP_DAYS:
            raise DomainError(
                f"Le suivi se fait dans 0 à {MAX_FOLLOW_UP_DAYS} jours ({days} demandés)."
            )
        today = local_date(clock.now(session), get_settings().tz)
        record_orientation(
            session=session,
            saisine=saisine,
            kind=kind,
            who_acts=answer.who_acts,
            detail=answer.detail,
            follow_up_on=today + timedelta(days=days) if days else None,
            actor=actor,
            label=answer.outcome,
        )

    _ask(saisine_id, next_, orientation_form(list(choices)), {"follow_up_days": 30}, apply)


def ask_meeting(saisine_id: int, next_: Next) -> None:
    choices = _read(saisine_id, meeting_choices)

    def apply(session: Session, saisine: Saisine, answer: MeetingForm, actor: Actor) -> None:
        if answer.meeting == BACK_TO_LEVEL1:
            reason = "retour aux échanges bilatéraux"
            back_to_level1(session=session, saisine=saisine, reason=reason, actor=actor)
            return
        starts_at = None
        if answer.meeting == NEW_MEETING:
            check_open_day(answer.day, insist=answer.insist)
            starts_at = at_paris(answer.day, answer.at)
        put_on_meeting(
            session=session,
            saisine=saisine,
            meeting=None if answer.meeting == NEW_MEETING else answer.meeting,
            starts_at=starts_at,
            host=answer.host,
            invited=answer.invited,
            actor=actor,
        )

    hosts = list(choices.hosts)
    day, at = wall_clock(choices.proposed_start)
    form = meeting_form(list(choices.meetings), hosts, list(choices.invitable))
    _ask(saisine_id, next_, form, {"day": day, "at": at, "host": hosts[0]}, apply)


def ask_decision(saisine_id: int, next_: Next) -> None:
    with session_scope() as session:
        meeting = session.get(CellMeeting, next_.meeting_id)
        assert meeting is not None
        owners = decision_owners(session, meeting)
        today = local_date(clock.now(session), get_settings().tz)

    def apply(session: Session, saisine: Saisine, answer: DecisionForm, actor: Actor) -> None:
        meeting = session.get(CellMeeting, next_.meeting_id)
        assert meeting is not None
        if not answer.meeting_held:
            reason = "la réunion n'a pas eu lieu"
            cancel_meeting(session=session, meeting=meeting, reason=reason, actor=actor)
            return
        decide(
            session=session,
            saisine=saisine,
            meeting=meeting,
            text=answer.text,
            actions=[(a.text, a.owner, a.due_on) for a in answer.actions],
            actor=actor,
        )

    due_on = today + timedelta(days=ACTION_DAYS)
    _ask(saisine_id, next_, decision_form(list(owners), due_on), {}, apply)


# -- waits that show the coordinator a form -----------------------------------------------------
def _watch(
    saisine_id: int,
    next_: Next,
    *,
    form: type[W],
    hint: str,
    apply: Callable[[Session, W, Actor], None],
    initial: dict[str, object] | None = None,
) -> None:
    """Like `wait_until`, but the suspended run shows the coordinator a form.

    Tick's {"reason": "due"} and the service's {"reason": "answer"} are valid inputs of the
    form too (every field has a default); whatever woke the run, the next pass re-reads the
    case. The coordinator's answer is applied with the key spent in one transaction; a
    refused one is audited and shown again, with its reason, at the next pass.
    """
    assert next_.wait is not None
    phase = PHASES[_read(saisine_id, lambda _s, v: v.status)]
    with session_scope() as session:
        wait = open_wait(
            session=session,
            case_type=SAISINE,
            case_id=saisine_id,
            step=next_.step,
            flow_run_id=run_id(),
            due_at=next_.due_at,
            waiting_on=WAITING_ON[next_.wait],
        )
        saisine = get_saisine(session, saisine_id)
        due = next_.due_at is not None and clock.now(session) >= next_.due_at
        if due or phase(session, saisine) != next_:
            close_wait(session=session, wait=wait)
            return
        heading = REFUSED.format(reason=wait.refused_reason) if wait.refused_reason else ""
        description = f"{heading}{summary_markdown(session, saisine)}\n\n{hint}"
    shown = prefilled(form, description, {**(initial or {}), **(wait.refused_answer or {})})
    answer = suspend(wait, shown)
    with session_scope() as session:
        stored = session.get(Wait, wait.id)
        assert stored is not None
        actor = answered_by(session, stored)
        try:
            with session.begin_nested():
                apply(session, answer, actor)
        except (DomainError, ValueError) as refused:
            reason = refused.message if isinstance(refused, DomainError) else str(refused)
            typed = answer.model_dump(mode="json", include=set(form.model_fields))
            refuse_answer(session=session, wait=stored, reason=reason, answer=typed)
            record_event(
                session=session,
                case_type=SAISINE,
                case_id=saisine_id,
                action="form.refused",
                actor=actor,
                payload={"step": next_.step, "error": reason},
            )
            return
        # the key is spent (and our own wake-up mark with it): the next wait gets a new key
        next_generation(session=session, wait=stored)
        stored.refused_reason, stored.refused_answer = "", None


def watch_meeting(saisine_id: int, next_: Next) -> None:
    """Wait for the meeting day; meanwhile the coordinator may cancel or move it."""

    def apply(session: Session, answer: MeetingWatchForm, actor: Actor) -> None:
        fresh = session.get(CellMeeting, next_.meeting_id)
        assert fresh is not None
        if answer.action == CANCEL and fresh.status is MeetingStatus.PLANNED:
            cancel_meeting(
                session=session, meeting=fresh, reason=answer.motive or "annulée", actor=actor
            )
        elif answer.action == MOVE:
            check_open_day(answer.new_day, insist=answer.insist)
            starts_at = at_paris(answer.new_day, answer.new_at)
            reschedule_meeting(session=session, meeting=fresh, starts_at=starts_at, actor=actor)

    with session_scope() as session:
        meeting = session.get(CellMeeting, next_.meeting_id)
        assert meeting is not None
        day, at = wall_clock(meeting.starts_at)
    _watch(
        saisine_id,
        next_,
        form=meeting_watch_form(),
        initial={"new_day": day, "new_at": at},
        hint="La reprise se fait d'elle-même le jour de la réunion. Pour annuler ou déplacer "
        "la réunion, choisissez-le ci-dessous.",
        apply=apply,
    )


def watch_actions(saisine_id: int, next_: Next) -> None:
    """Wait for the actions (owners reminded, coordinator alerted); the coordinator may close
    the saisine from the run's form, with a reason."""

    def apply(session: Session, answer: ActionsWatchForm, actor: Actor) -> None:
        if answer.close:
            close_saisine(
                session=session,
                saisine=get_saisine(session, saisine_id),
                reason=answer.close_reason,
                actor=actor,
            )

    _watch(
        saisine_id,
        next_,
        form=ActionsWatchForm,
        hint="La saisine se clôt d'elle-même quand chaque action est notée réalisée. Pour la "
        "clore avant, cochez la case et donnez le motif.",
        apply=apply,
    )


FORMS: dict[WaitName, Callable[[int, Next], None]] = {
    WaitName.PARTNERS: ask_partners,
    WaitName.ORIENTATION: ask_orientation,
    WaitName.MEETING: ask_meeting,
    WaitName.DECISION: ask_decision,
    WaitName.MEETING_DAY: watch_meeting,
    WaitName.ACTIONS: watch_actions,
}
"""Waits that show the coordinator a form; every other wait is for partners or a date."""


def _wait(saisine_id: int, next_: Next) -> None:
    """The one wait of a pass; it ends when the phase's answer changes or the due time comes."""
    assert next_.wait is not None
    if next_.wait in FORMS:
        FORMS[next_.wait](saisine_id, next_)
        return
    phase = PHASES[_read(saisine_id, lambda _s, v: v.status)]
    wait_until(
        case_type=SAISINE,
        case_id=saisine_id,
        step=next_.step,
        ready=lambda session: phase(session, get_saisine(session, saisine_id)) != next_,
        due_at=next_.due_at,
        waiting_on=WAITING_ON[next_.wait],
    )


@flow(
    name="saisine",
    flow_run_name=_run_name,
    log_prints=True,
    persist_result=True,
    description="Saisine de la cellule de concertation : niveau 1, orientation, suivi, "
    "niveau 2 (réunion de cellule), décision et actions.",
)
def saisine(intake: SaisineIntakeForm, reference: str = "") -> str:
    """Carry one saisine from its intake to its closure (each pass: a task, then one wait).

    Its parameters are ids and labels only: the description of the situation is typed on
    the service's page, and the run waits for it (nothing personal reaches Prefect).
    """
    current_run = run_id()
    saisine_id = intake_step(intake, reference, current_run)
    current = _read(saisine_id, lambda _s, v: v.reference)
    tag_run(current_run, intake.clsm, "saisine")
    if flow_run.get_name() != f"Saisine {current}":
        name_run(current_run, current)
    logger = get_run_logger()
    if _read(saisine_id, lambda _s, v: v.status) not in FINAL:
        publish_summary(saisine_id)  # where the case stands, at each resumption
    for _ in range(MAX_PASSES):
        status = _read(saisine_id, lambda _s, v: v.status)
        if status in FINAL:
            outcome = str(finish(saisine_id))
            send_case_mail(SAISINE, saisine_id)
            return outcome
        next_ = _read(saisine_id, PHASES[status])
        logger.info("Saisine %s : %s", current, STATUS_LABELS[status])
        if next_.task is not None:
            TASKS[next_.task](saisine_id, next_)
        if next_.wait is not None:
            _wait(saisine_id, next_)
    raise RuntimeError(f"saisine {current}: no progress after {MAX_PASSES} passes")


__all__ = ["saisine"]
