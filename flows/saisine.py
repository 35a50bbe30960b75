"""The `saisine` flow: one run per saisine of the cell, from the intake to its closure.

A resumed run starts again from the top: the body reads the saisine's status from the app
database and runs only the next step; every step is idempotent (links, mails and events
are keyed by the case), so a replay sends no second mail. The coordinator answers forms in
the Prefect UI (`ask`); partners answer by link (`wait_until`, woken by the service); dates
(reminders, deadlines, follow-up, meeting day) are waited for with `due_at` (woken by tick).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from sqlmodel import Session

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
    orientation_form,
    orientation_kind,
    partners_form,
)
from flows.mail import send_case_mail
from flows.tags import tag_run
from flows.waits import answered_by, ask, suspend, wait_until
from models.core import clock
from models.core.audit import Actor, record_event
from models.core.calendar import add_business_days, at_local, local_date
from models.core.db import session_scope
from models.core.enums import CaseType
from models.core.errors import DomainError
from models.core.gateway import launch_actor
from models.core.outbox import Recipient, enqueue
from models.core.people import Contact, Organisation
from models.core.settings import get_settings
from models.core.waits import (
    COORDINATOR_STEP_PREFIX,
    Wait,
    WaitStatus,
    close_wait,
    next_generation,
    open_wait,
)
from models.saisine.common import (
    actions_of,
    close_saisine,
    consultations,
    current_follow_up,
    current_meeting,
    decision_of,
    escalate_to_level2,
    get_saisine,
    meeting_members,
    orientations,
    saisine_scope,
)
from models.saisine.decisions import (
    ACTIONS_WAIT_STEP,
    ActionPlan,
    actions_done,
    next_action_alarm,
    record_decision,
    remind_action_owners,
)
from models.saisine.follow_up import apply_follow_up, follow_up_wait_step, start_follow_up
from models.saisine.intake import SaisineIntake, open_saisine
from models.saisine.level1 import (
    answers_wait_steps,
    consult_partners,
    consultable_organisations,
    consultations_answered,
    escalate_silent_partners,
    record_orientation,
    remind_silent_partners,
)
from models.saisine.meetings import (
    back_to_level1,
    cancel_meeting,
    mark_meeting_held,
    meeting_wait_step,
    permanent_members,
    plan_meeting,
    planned_meetings,
    proposed_host,
    reschedule_meeting,
)
from models.saisine.states import STATUS_LABELS, ConsultationStatus, MeetingStatus, SaisineStatus
from models.saisine.tables import CellMeeting, Saisine

SAISINE = CaseType.SAISINE
FINAL = (SaisineStatus.CLOSED, SaisineStatus.URGENT_CLOSED)
FOLLOW_UP_REMINDER_DAYS = 5  # business days after the follow-up request

F = TypeVar("F", bound=OrientationForm | PartnersForm | MeetingForm | DecisionForm)


def _run_id() -> str:
    run_id = flow_run.get_id()
    if run_id is None:
        raise RuntimeError("the saisine flow runs from its deployment")
    return str(run_id)


def _run_name() -> str:
    reference = str(flow_run.get_parameters().get("reference") or "")
    return f"Saisine {reference}" if reference else "Saisine (nouvelle)"


def _tz() -> Any:
    return get_settings().tz


# -- steps (tasks: idempotent, each in one transaction) ---------------------------------------
def step(name: str) -> Callable[[Callable[..., Any]], Any]:
    return task(name=name, cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)


@step("Enregistrer la saisine")
def intake_step(intake: SaisineIntakeForm, reference: str, run_id: str) -> int:
    with session_scope() as session:
        saisine = open_saisine(
            session=session,
            intake=SaisineIntake(
                clsm_slug=intake.clsm,
                received_on=intake.received_on or local_date(clock.now(session), _tz()),
                channel=intake.channel,
                referring_structure=intake.referring_structure,
                referrer_name=intake.referrer_name,
                referrer_email=intake.referrer_email,
                initials=intake.initials,
                age_range=intake.age_range,
                commune=intake.commune,
                difficulty=intake.difficulty,
                consent_given=intake.consent_given,
                consent_note=intake.consent_note,
                urgent=intake.urgent,
            ),
            actor=launch_actor(session, run_id),
            flow_run_id=run_id,
            reference=reference,
        )
        assert saisine.id is not None
        return saisine.id


PERSONAL_FIELDS = ("initials", "commune", "difficulty", "consent_note")


@step("Nommer le run, retirer la description de ses paramètres")
def tidy_run(run_id: str, reference: str, intake: SaisineIntakeForm) -> None:
    """Name the run after the reference; keep the description out of Prefect's database.

    The description is stored in the app database at intake (where retention erases it);
    the run's parameters keep only what is not personal, which is enough for a replay
    (the intake step finds the saisine by its flow run).
    """
    from uuid import UUID

    from prefect.client.orchestration import get_client

    kept = intake.model_copy(update=dict.fromkeys(PERSONAL_FIELDS, "")).model_dump(mode="json")
    with get_client(sync_client=True) as client:
        client.update_flow_run(
            UUID(run_id),
            name=f"Saisine {reference}",
            parameters={"intake": kept, "reference": reference},
        )


@step("Relancer les partenaires silencieux")
def remind_partners(saisine_id: int) -> int:
    with session_scope() as session:
        return remind_silent_partners(session=session, saisine=get_saisine(session, saisine_id))


@step("Signaler les partenaires sans réponse à la coordination")
def escalate_partners(saisine_id: int) -> int:
    with session_scope() as session:
        return escalate_silent_partners(session=session, saisine=get_saisine(session, saisine_id))


@step("Demander le suivi à la personne qui a saisi")
def ask_follow_up(saisine_id: int) -> None:
    with session_scope() as session:
        start_follow_up(session=session, saisine=get_saisine(session, saisine_id))


@step("Signaler le suivi sans réponse à la coordination")
def alert_follow_up(saisine_id: int) -> None:
    with session_scope() as session:
        saisine = get_saisine(session, saisine_id)
        _alert(session, saisine, "follow-up", f"follow-up-r{saisine.round}-silent", [])


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


@step("Publier le résumé")
def publish_summary(saisine_id: int) -> str:
    """The run's markdown artifact: where the saisine stands (no description of the person)."""
    with session_scope() as session:
        saisine = get_saisine(session, saisine_id)
        summary = summary_markdown(session, saisine)
        key = re.sub(r"[^a-z0-9-]", "-", f"saisine-{saisine.clsm_id}-{saisine.reference}".lower())
        status = STATUS_LABELS[saisine.status]
    create_markdown_artifact(markdown=summary, key=key, description=f"Saisine — {status}")
    return status


@step("Clore les attentes")
def finish(saisine_id: int) -> str:
    with session_scope() as session:
        for wait in session.exec(
            _open_waits_query(saisine_id)  # a closed case waits for nothing any more
        ):
            close_wait(session=session, wait=wait)
    return str(publish_summary(saisine_id))


def _open_waits_query(saisine_id: int) -> Any:
    from sqlmodel import select

    return select(Wait).where(
        Wait.case_type == SAISINE.value, Wait.case_id == saisine_id, Wait.status == WaitStatus.OPEN
    )


def _alert(session: Session, saisine: Saisine, alert: str, dedup: str, names: list[str]) -> None:
    from models.core.people import Clsm

    clsm = session.get(Clsm, saisine.clsm_id)
    assert clsm is not None and saisine.id is not None
    enqueue(
        session=session,
        scope=saisine_scope(saisine),
        to=Recipient(email=clsm.coordinator_email, name=clsm.coordinator_name),
        template="saisine_coordinator_alert",
        context={
            "reference": saisine.reference,
            "alert": alert,
            "names": names,
            "run_url": get_settings().run_url(saisine.flow_run_id),
        },
        dedup_key=dedup,
    )


# -- what the coordinator reads in the Prefect UI (no description of the person) ---------------
def summary_markdown(session: Session, saisine: Saisine) -> str:
    tz = _tz()
    referrer = session.get(Organisation, saisine.referrer_organisation_id)
    lines = [
        f"### {saisine.label} — {STATUS_LABELS[saisine.status]}",
        "",
        f"- Reçue le {saisine.received_at.astimezone(tz):%d/%m/%Y} ({saisine.channel}), "
        f"par **{referrer.label if referrer else '?'}**",
        f"- Consentement : {'recueilli' if saisine.consent_given else 'non recueilli'}",
        "- La description de la situation se lit dans le service (pages des liens, historique).",
    ]
    rows = consultations(session, saisine)
    if rows:
        lines += ["", "| Tour | Structure | Statut | Connaît la situation | Proposition |"]
        lines += ["|---|---|---|---|---|"]
        for c in rows:
            org = session.get(Organisation, c.organisation_id)
            knows = "—" if c.knows_situation is None else ("oui" if c.knows_situation else "non")
            proposal = (c.proposal or "—").replace("\n", " ").replace("|", "/")
            lines.append(
                f"| {c.round} | {org.label if org else '?'} | {c.status.value} | {knows} "
                f"| {proposal} |"
            )
    for orientation in orientations(session, saisine):
        lines.append(f"\n**Orientation (tour {orientation.round})** : {orientation.text}")
    meeting = current_meeting(session, saisine)
    if meeting is not None:
        host = session.get(Organisation, meeting.host_organisation_id)
        lines.append(
            f"\n**Réunion de cellule** : {meeting.starts_at.astimezone(tz):%d/%m/%Y %H:%M}, "
            f"chez {host.label if host else '?'} ({meeting.status.value})"
        )
    decision = decision_of(session, saisine)
    if decision is not None:
        lines.append(f"\n**Décision** : {decision.text}")
        for action in actions_of(session, saisine):
            owner = session.get(Contact, action.owner_contact_id)
            lines.append(
                f"- {action.text} — {owner.name if owner else '?'}, "
                f"échéance {action.due_on:%d/%m/%Y} ({action.status.value})"
            )
    if saisine.close_reason:
        lines.append(f"\nMotif de clôture : {saisine.close_reason}")
    if saisine.last_form_error:
        lines.append(f"\n> **Réponse refusée : {saisine.last_form_error}** Merci de corriger.")
    return "\n".join(lines)


# -- coordinator forms ---------------------------------------------------------------------------
def _ask(
    saisine_id: int,
    what: str,
    form: type[F],
    initial: dict[str, Any],
    apply: Callable[[Session, Saisine, F, Actor], None],
) -> None:
    """One coordinator form; a refused answer (French reason) makes the next pass ask again."""
    with session_scope() as session:
        saisine = get_saisine(session, saisine_id)
        seq = saisine.form_seq
        description = summary_markdown(session, saisine)

    def on_answer(session: Session, answer: F, actor: Actor) -> None:
        saisine = get_saisine(session, saisine_id)
        if saisine.form_seq != seq:
            return  # already applied by an earlier pass
        saisine.form_seq += 1
        session.add(saisine)
        session.flush()
        try:
            with session.begin_nested():
                apply(session, saisine, answer, actor)
            saisine.last_form_error = ""
        except DomainError as refused:
            saisine.last_form_error = refused.message[:500]
            record_event(
                session=session,
                case_type=SAISINE,
                case_id=saisine_id,
                action="form.refused",
                actor=actor,
                payload={"form": what, "error": refused.message},
            )
        session.add(saisine)

    ask(
        case_type=SAISINE,
        case_id=saisine_id,
        step=f"{COORDINATOR_STEP_PREFIX}{seq}-{what}",
        form=form,
        description=description,
        initial=initial,
        on_answer=on_answer,
    )


def _labels(orgs: list[Organisation]) -> dict[str, int]:
    return {o.label: o.id for o in orgs if o.id is not None}


def ask_partners(saisine_id: int) -> None:
    with session_scope() as session:
        saisine = get_saisine(session, saisine_id)
        choices = _labels(consultable_organisations(session, saisine))

    def apply(session: Session, saisine: Saisine, answer: PartnersForm, actor: Actor) -> None:
        unknown = [p for p in answer.partners if p not in choices]
        if unknown:
            raise DomainError(f"Structures inconnues : {', '.join(unknown)}")
        consult_partners(
            session=session,
            saisine=saisine,
            organisation_ids=[choices[p] for p in answer.partners],
            actor=actor,
        )

    _ask(saisine_id, "partners", partners_form(list(choices)), {}, apply)


def ask_orientation(saisine_id: int) -> None:

    def apply(session: Session, saisine: Saisine, answer: OrientationForm, actor: Actor) -> None:
        kind = orientation_kind(answer.outcome)
        if answer.outcome == ESCALATE or kind is None:
            escalate_to_level2(
                session=session, saisine=saisine, actor=actor, reason="décision de la coordination"
            )
            return
        today = local_date(clock.now(session), _tz())
        record_orientation(
            session=session,
            saisine=saisine,
            kind=kind,
            who_acts=answer.who_acts,
            detail=answer.detail,
            follow_up_on=today + timedelta(days=answer.follow_up_days)
            if answer.follow_up_days
            else None,
            actor=actor,
        )

    _ask(saisine_id, "orientation", orientation_form(), {"follow_up_days": 30}, apply)


def _meeting_label(session: Session, meeting: CellMeeting) -> str:
    host = session.get(Organisation, meeting.host_organisation_id)
    return (
        f"Réunion du {meeting.starts_at.astimezone(_tz()):%d/%m/%Y %H:%M} "
        f"chez {host.label if host else '?'}"
    )


def ask_meeting(saisine_id: int) -> None:
    with session_scope() as session:
        saisine = get_saisine(session, saisine_id)
        meetings = {
            _meeting_label(session, m): m.id for m in planned_meetings(session, saisine.clsm_id)
        }
        hosts = _labels(permanent_members(session, saisine.clsm_id))
        host = proposed_host(session, saisine.clsm_id).label
        invitable = _labels(
            [o for o in consultable_organisations(session, saisine) if not o.permanent_member]
        )
        today = local_date(clock.now(session), _tz())
        proposed = at_local(add_business_days(today, 10), 14, _tz()).replace(tzinfo=None)
    ordered_hosts = [host, *[h for h in hosts if h != host]]

    def apply(session: Session, saisine: Saisine, answer: MeetingForm, actor: Actor) -> None:
        if answer.meeting == BACK_TO_LEVEL1:
            back_to_level1(
                session=session,
                saisine=saisine,
                reason="retour aux échanges bilatéraux",
                actor=actor,
            )
            return
        existing = None
        if answer.meeting != NEW_MEETING:
            existing = session.get(CellMeeting, meetings.get(answer.meeting, -1))
            if existing is None:
                raise DomainError("Réunion introuvable : choisissez-en une autre.")
        starts_at = answer.starts_at
        if starts_at is not None and starts_at.tzinfo is None:
            starts_at = starts_at.replace(tzinfo=_tz())
        plan_meeting(
            session=session,
            saisine=saisine,
            starts_at=starts_at,
            host_organisation_id=hosts.get(answer.host),
            invited_ids=[invitable[i] for i in answer.invited if i in invitable],
            actor=actor,
            meeting=existing,
        )

    _ask(
        saisine_id,
        "meeting",
        meeting_form(list(meetings), ordered_hosts, list(invitable)),
        {"starts_at": proposed.isoformat(), "host": host},
        apply,
    )


def ask_decision(saisine_id: int, meeting_id: int) -> None:
    with session_scope() as session:
        meeting = session.get(CellMeeting, meeting_id)
        assert meeting is not None
        owners: dict[str, int] = {}
        for member in meeting_members(session, meeting):
            contact = session.get(Contact, member.contact_id)
            org = session.get(Organisation, member.organisation_id)
            if contact is not None and contact.id is not None:
                owners[f"{contact.name} ({org.label if org else '?'})"] = contact.id

    def apply(session: Session, saisine: Saisine, answer: DecisionForm, actor: Actor) -> None:
        fresh = session.get(CellMeeting, meeting_id)
        assert fresh is not None
        if not answer.meeting_held:
            cancel_meeting(
                session=session, meeting=fresh, reason="la réunion n'a pas eu lieu", actor=actor
            )
            return
        plans: list[ActionPlan] = []
        for line in answer.actions:
            if not line.text.strip():
                continue
            if line.due_on is None or line.owner not in owners:
                raise DomainError(
                    f"Action « {line.text} » : indiquez son ou sa responsable et son échéance."
                )
            plans.append(ActionPlan(line.text, owners[line.owner], line.due_on))
        mark_meeting_held(session=session, meeting=fresh, actor=actor)
        record_decision(
            session=session,
            saisine=saisine,
            meeting=fresh,
            text=answer.text,
            actions=plans,
            actor=actor,
        )

    _ask(saisine_id, f"decision-m{meeting_id}", decision_form(list(owners)), {}, apply)


# -- one pass per status ------------------------------------------------------------------
def _read(saisine_id: int, read: Callable[[Session, Saisine], Any]) -> Any:
    with session_scope() as session:
        return read(session, get_saisine(session, saisine_id))


def level1(saisine_id: int) -> None:
    round_, asked = _read(saisine_id, lambda s, v: (v.round, consultations(s, v, v.round)))
    if not asked:
        ask_partners(saisine_id)
        return

    def answered(session: Session) -> bool:
        return consultations_answered(session, get_saisine(session, saisine_id))

    remind_step, answers_step = answers_wait_steps(round_)
    waiting_on = "les partenaires consultés"
    if any(c.status is ConsultationStatus.ASKED for c in asked):
        remind_at = min(c.remind_at for c in asked)
        deadline = max(c.deadline for c in asked)
        if (
            wait_until(
                case_type=SAISINE,
                case_id=saisine_id,
                step=remind_step,
                ready=answered,
                due_at=remind_at,
                waiting_on=waiting_on,
            )
            == "due"
        ):
            remind_partners(saisine_id)
        if (
            wait_until(
                case_type=SAISINE,
                case_id=saisine_id,
                step=answers_step,
                ready=answered,
                due_at=deadline,
                waiting_on=waiting_on,
            )
            == "due"
        ):
            escalate_partners(saisine_id)
    ask_orientation(saisine_id)


def oriented(saisine_id: int) -> None:
    follow_up = _read(saisine_id, lambda s, v: current_follow_up(s, v))
    if follow_up is None:
        close_step(saisine_id, "orientation proposée")
        return
    wait_until(
        case_type=SAISINE,
        case_id=saisine_id,
        step=f"followup-r{follow_up.round}-date",
        ready=lambda _s: False,
        due_at=at_local(follow_up.due_on, 9, _tz()),
        waiting_on="la date du suivi",
    )
    ask_follow_up(saisine_id)


def follow_up(saisine_id: int) -> None:
    current = _read(saisine_id, lambda s, v: current_follow_up(s, v))
    assert current is not None

    def answered(session: Session) -> bool:
        fresh = current_follow_up(session, get_saisine(session, saisine_id))
        return fresh is not None and fresh.answered_at is not None

    step_name = follow_up_wait_step(current.round)
    remind_at = at_local(add_business_days(current.due_on, FOLLOW_UP_REMINDER_DAYS), 9, _tz())
    waiting_on = "la personne qui a saisi la cellule"
    if (
        wait_until(
            case_type=SAISINE,
            case_id=saisine_id,
            step=step_name,
            ready=answered,
            due_at=remind_at,
            waiting_on=waiting_on,
        )
        == "due"
    ):
        alert_follow_up(saisine_id)
        wait_until(
            case_type=SAISINE,
            case_id=saisine_id,
            step=step_name,
            ready=answered,
            waiting_on=waiting_on,
        )
    follow_up_answered(saisine_id)


def level2(saisine_id: int) -> None:
    meeting = _read(saisine_id, lambda s, v: current_meeting(s, v))
    if meeting is None:
        ask_meeting(saisine_id)
        return
    assert meeting.id is not None
    with session_scope() as session:
        now = clock.now(session)
    if meeting.status is MeetingStatus.PLANNED and now < meeting.starts_at:
        planned_at = meeting.starts_at

        def changed(session: Session) -> bool:
            fresh = session.get(CellMeeting, meeting.id)
            return (
                fresh is None
                or fresh.status is not MeetingStatus.PLANNED
                or (fresh.starts_at != planned_at)
            )

        watch_meeting(saisine_id, meeting, changed)
        return
    ask_decision(saisine_id, meeting.id)


W = TypeVar("W", bound=MeetingWatchForm | ActionsWatchForm)


def _watch(
    saisine_id: int,
    *,
    step_name: str,
    due_at: datetime | None,
    ready: Callable[[Session], bool],
    waiting_on: str,
    form: type[W],
    hint: str,
    apply: Callable[[Session, W, Actor], None],
) -> None:
    """Like `wait_until`, but the suspended run shows the coordinator a form.

    Tick's {"reason": "due"} and the service's {"reason": "answer"} are valid inputs of the
    form too (every field has a default); whatever woke the run, the next pass re-reads the
    case. The coordinator's answer is applied with the key spent in one transaction.
    """
    with session_scope() as session:
        wait = open_wait(
            session=session,
            case_type=SAISINE,
            case_id=saisine_id,
            step=step_name,
            flow_run_id=_run_id(),
            due_at=due_at,
            waiting_on=waiting_on,
        )
        if ready(session) or (due_at is not None and clock.now(session) >= due_at):
            close_wait(session=session, wait=wait)
            return
        description = summary_markdown(session, get_saisine(session, saisine_id))
    prefilled = form.with_initial_data(description=f"{description}\n\n{hint}")
    answer = suspend(wait, prefilled)
    with session_scope() as session:
        actor = answered_by(session, wait)
        try:
            with session.begin_nested():
                apply(session, cast(W, answer), actor)
        except DomainError as refused:
            get_saisine(session, saisine_id).last_form_error = refused.message[:500]
            record_event(
                session=session,
                case_type=SAISINE,
                case_id=saisine_id,
                action="form.refused",
                actor=actor,
                payload={"form": step_name, "error": refused.message},
            )
        # the key is spent (and our own wake-up mark with it): the next wait gets a new key
        stored = session.get(Wait, wait.id)
        assert stored is not None
        next_generation(session=session, wait=stored)


def watch_meeting(
    saisine_id: int, meeting: CellMeeting, changed: Callable[[Session], bool]
) -> None:
    """Wait for the meeting day; meanwhile the coordinator may cancel or move it."""

    def apply(session: Session, answer: MeetingWatchForm, actor: Actor) -> None:
        fresh = session.get(CellMeeting, meeting.id)
        assert fresh is not None
        if answer.action == CANCEL and fresh.status is MeetingStatus.PLANNED:
            cancel_meeting(
                session=session, meeting=fresh, reason=answer.motive or "annulée", actor=actor
            )
        elif answer.action == MOVE:
            starts_at = answer.new_starts_at
            if starts_at is None:
                raise DomainError("Indiquez la nouvelle date de la réunion.")
            if starts_at.tzinfo is None:
                starts_at = starts_at.replace(tzinfo=_tz())
            reschedule_meeting(session=session, meeting=fresh, starts_at=starts_at, actor=actor)

    _watch(
        saisine_id,
        step_name=meeting_wait_step(meeting),
        due_at=meeting.starts_at,
        ready=changed,
        waiting_on="la date de la réunion de cellule",
        form=MeetingWatchForm,
        hint="La reprise se fait d'elle-même le jour de la réunion. Pour annuler ou déplacer "
        "la réunion, choisissez-le ci-dessous.",
        apply=apply,
    )


def decided(saisine_id: int) -> None:
    """Wait for the actions (owners reminded, coordinator alerted); close when all are done,
    or when the coordinator closes with a reason from the run's form."""

    def done(session: Session) -> bool:
        return actions_done(session, get_saisine(session, saisine_id))

    if _read(saisine_id, lambda s, v: actions_done(s, v)):
        close_step(saisine_id, "")
        return
    remind_owners(saisine_id)  # whatever reminder or alert is due now (each sent once)

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
        step_name=ACTIONS_WAIT_STEP,
        due_at=_read(saisine_id, lambda s, v: next_action_alarm(s, v)),
        ready=done,
        waiting_on="les responsables des actions",
        form=ActionsWatchForm,
        hint="La saisine se clôt d'elle-même quand chaque action est notée réalisée. Pour la "
        "clore avant, cochez la case et donnez le motif.",
        apply=apply,
    )


PASSES: dict[SaisineStatus, Callable[[int], None]] = {
    SaisineStatus.LEVEL1: level1,
    SaisineStatus.ORIENTED: oriented,
    SaisineStatus.FOLLOW_UP: follow_up,
    SaisineStatus.LEVEL2: level2,
    SaisineStatus.DECIDED: decided,
}


@flow(
    name="saisine",
    flow_run_name=_run_name,
    log_prints=True,
    persist_result=True,
    description="Saisine de la cellule de concertation : niveau 1, orientation, suivi, "
    "niveau 2 (réunion de cellule), décision et actions.",
)
def saisine(intake: SaisineIntakeForm, reference: str = "") -> str:
    """Carry one saisine from its intake to its closure (each pass: one step or a wait)."""
    run_id = _run_id()
    saisine_id = intake_step(intake, reference, run_id)
    current = _read(saisine_id, lambda _s, v: v.reference)
    tag_run(run_id, intake.clsm, "saisine")
    if flow_run.get_name() != f"Saisine {current}" or any(
        getattr(intake, name) for name in PERSONAL_FIELDS
    ):
        tidy_run(run_id, current, intake)
    logger = get_run_logger()
    if _read(saisine_id, lambda _s, v: v.status) not in FINAL:
        publish_summary(saisine_id)  # where the case stands, at each resumption
    for _ in range(200):  # every pass moves the case on or suspends the run
        status = _read(saisine_id, lambda _s, v: v.status)
        if status in FINAL:
            outcome = str(finish(saisine_id))
            send_case_mail(SAISINE, saisine_id)
            return outcome
        logger.info("Saisine %s : %s", current, STATUS_LABELS[status])
        PASSES[status](saisine_id)
    raise RuntimeError(f"saisine {current}: no progress after 200 passes")


__all__ = ["saisine"]
