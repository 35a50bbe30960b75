"""What comes next for a session: the one question each phase of its flow run asks.

Each `*_next` function does, in the caller's transaction, whatever the phase can do now
(idempotently: a replay sends nothing twice) and answers with what the run waits for next:
a `Pause` (a date, or an answer recorded by the service), a coordinator's question
(`SelectionQuestion`, `PlacementQuestion`, `AttendanceQuestion`), or None (ask again: the
session moved on).
The flow (`flows/immersion.py`) only turns these answers into Prefect waits and artifacts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from models.core import clock
from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.french import de
from models.core.waits import (
    Wait,
    WaitStatus,
    close_wait,
    next_generation,
    open_waits,
)
from models.immersion.agreements import ensure_agreements, unsigned_parties
from models.immersion.call import remind_call, start_selection
from models.immersion.changes import withdraw_application
from models.immersion.common import (
    advance_to,
    applications,
    contact,
    organisation,
    participant,
    participants,
    placements,
)
from models.immersion.evaluations import missing_evaluations, request_evaluations
from models.immersion.meetings import (
    ensure_invitations,
    ensure_restitution_invitations,
    finish_immersions,
    immersion_end,
    immersion_notices,
    record_attendance,
)
from models.immersion.placements import (
    declare_pairs,
    ensure_placements,
    placements_confirmed,
    proposed_pairs,
)
from models.immersion.plan import call_reminder_at, when
from models.immersion.report import report_markdown, store_report
from models.immersion.review import PlacementQuestion, mark_reviewed, placement_question
from models.immersion.rules import apply_coordinator_choice
from models.immersion.selection import (
    application_label,
    manage_vacancies,
    next_offer_deadline,
    numbers_of,
    record_selection,
    selection_proposal,
    selection_table,
)
from models.immersion.states import (
    ATTENDANCE_WAITS,
    MEETING_LABELS,
    PHASE_WAITS,
    STATUS_LABELS,
    WAIT_LABELS,
    ApplicationStatus,
    Meeting,
    PlacementStatus,
    SessionStatus,
    WaitName,
)
from models.immersion.tables import CASE, ImmersionSession

S = SessionStatus


# -- answers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Pause:
    """Wait until `due_at`, or until `woken` holds (an answer was recorded), then ask again."""

    wait: WaitName
    due_at: datetime
    offer_deadline: datetime | None = None
    """Partners: the earliest open offer's deadline when the pause began (a change wakes)."""

    @property
    def waiting_on(self) -> str:
        return WAIT_LABELS[self.wait]


@dataclass(frozen=True)
class SelectionQuestion:
    """The proposal the coordinator approves or edits (Prefect UI form)."""

    description: str  # markdown
    initial: dict[str, object]
    table: list[dict[str, str | int]]
    choices: list[str]  # the applications' labels, offered in the form's lists


@dataclass(frozen=True)
class AttendanceQuestion:
    """Who came to a meeting (Prefect UI form)."""

    meeting: Meeting
    wait: WaitName
    description: str  # markdown
    initial: dict[str, object]
    choices: list[str]  # the participants' labels

    @property
    def waiting_on(self) -> str:
        return WAIT_LABELS[self.wait]


@dataclass(frozen=True)
class Report:
    """The closing report, as the run shows it (markdown, and one row per participant)."""

    markdown: str
    participants: list[dict[str, str | int]]


# -- the phases' questions --------------------------------------------------------------
def current_status(session: Session, row: ImmersionSession) -> SessionStatus:
    """The session's status; the waits of phases already left are closed on the way."""
    keep = PHASE_WAITS.get(row.status, frozenset())
    for wait in open_waits(session, CASE):
        if wait.case_id == row.id and wait.step not in keep:
            next_generation(session=session, wait=wait)
            close_wait(session=session, wait=wait)
    return row.status


def call_next(*, session: Session, row: ImmersionSession, actor: Actor) -> Pause | None:
    """The call: its reminder, then its closing (the session moves to selection)."""
    now = clock.now(session)
    reminder = call_reminder_at(row)
    reminded = reminder < row.call_closes_at
    if reminded and now < reminder:
        return Pause(WaitName.CALL_REMINDER, reminder)
    if now < row.call_closes_at:
        if reminded:
            remind_call(session=session, row=row)
        return Pause(WaitName.CALL_CLOSE, row.call_closes_at)
    start_selection(session=session, row=row, actor=actor)
    return None


def selection_question(*, session: Session, row: ImmersionSession) -> SelectionQuestion:
    assert row.id is not None
    decisions = selection_proposal(session, row)
    table = selection_table(session, decisions)
    offered = applications(session, row.id, ApplicationStatus.SUBMITTED)
    labels = {a.number: application_label(session, a) for a in offered}
    kept = [labels[d.number] for d in decisions if d.outcome.value == "selected"]
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
        "Validez tel quel, ou modifiez les candidatures retenues et la liste d'attente.",
        "",
        "| n° | candidat·e | structure | décision | motif |",
        "|---|---|---|---|---|",
        *(
            f"| {r['n°']} | {r['candidat·e']} | {r['structure']} | {r['décision']} | {r['motif']} |"
            for r in table
        ),
    ]
    chosen = [d.application_id for d in decisions if d.outcome.value == "selected"]
    pairs = proposed_pairs(session, row, [a for a in offered if a.id in chosen])
    lines += ["", "### Binômes proposés (vœux croisés)", ""]
    lines += [
        f"- {labels[a.number]} et {labels[b.number]} : chacun accueilli par la structure de l'autre"
        for a, b in pairs
    ] or ["- aucun : ajoutez-en si vous le souhaitez"]
    return SelectionQuestion(
        description="\n".join(lines),
        initial={
            "kept": kept,
            "waitlist": [labels[d.number] for d in waiting],
            "pairs": [{"first": labels[a.number], "second": labels[b.number]} for a, b in pairs],
        },
        table=table,
        choices=list(labels.values()),
    )


def answer_selection(
    *,
    session: Session,
    row: ImmersionSession,
    kept: Sequence[str],
    waitlist: Sequence[str],
    actor: Actor,
    pairs: Sequence[tuple[str, str]] = (),
    comment: str = "",
) -> None:
    """Record the coordinator's selection, binômes (pairs of labels) and comment, or refuse them
    (`DomainError`, in French): the flow's form (`flows.waits.ask`) is then asked again
    with the reason."""
    if row.status is not S.SELECTION:
        return  # woken by a cancellation: nothing to record
    assert row.id is not None
    offered = applications(session, row.id, ApplicationStatus.SUBMITTED)
    try:
        decisions = apply_coordinator_choice(
            selection_proposal(session, row),
            kept=numbers_of(kept, offered, session),
            waitlist=numbers_of(waitlist, offered, session),
            capacity=row.capacity,
        )
    except ValueError as error:
        raise DomainError(str(error)) from error
    by_label = {application_label(session, a): a for a in offered}
    lines = [(first, second) for first, second in pairs if first or second]
    unknown = [label for line in lines for label in line if label not in by_label]
    if unknown:
        raise DomainError(
            "binômes : choisissez les deux personnes parmi les candidatures ("
            + " ; ".join(label or "case vide" for label in unknown)
            + ")"
        )
    chosen = {d.application_id for d in decisions if d.outcome.value == "selected"}
    declare_pairs(
        session=session,
        row=row,
        kept=[a for a in offered if a.id in chosen],
        pairs=[(by_label[first], by_label[second]) for first, second in lines],
        labels={a.id or 0: label for label, a in by_label.items()},
        actor=actor,
    )
    record_selection(session=session, row=row, decisions=decisions, actor=actor, comment=comment)


def sync_partners(*, session: Session, row: ImmersionSession, actor: Actor) -> datetime | None:
    """Offer freed places, give hosts to new participants, mail agreements and invitations.

    Idempotent; run on every pass of the placement phases and after a partner's answer.
    Returns the earliest open offer's deadline, if any.
    """
    deadline = manage_vacancies(session=session, row=row, actor=actor)
    ensure_placements(session=session, row=row, actor=actor)
    ensure_agreements(session=session, row=row, actor=actor)
    ensure_invitations(session=session, row=row)
    return deadline


def agreements_signed(session: Session, row: ImmersionSession) -> bool:
    assert row.id is not None
    return placements_confirmed(session, row) and not placements(
        session, row.id, PlacementStatus.CONFIRMED
    )


def _partners_done(session: Session, row: ImmersionSession) -> bool:
    if row.status is S.PLACEMENT:
        return placements_confirmed(session, row)
    return agreements_signed(session, row)


def placement_next(
    *, session: Session, row: ImmersionSession, actor: Actor
) -> Pause | PlacementQuestion | None:
    """Placements: first the coordinator's review of the proposed hosts (no host request
    goes out before it), then the hosts' answers."""
    if row.placements_reviewed_at is None:
        sync_partners(session=session, row=row, actor=actor)  # freed places offered meanwhile
        question = placement_question(session, row)
        if question is not None:
            return question
        mark_reviewed(session=session, row=row, actor=actor)  # nobody to place
    return partners_next(session=session, row=row, actor=actor)


def partners_next(*, session: Session, row: ImmersionSession, actor: Actor) -> Pause | None:
    """Placements and agreements: hosts and signatures awaited until the preparation day."""
    deadline = sync_partners(session=session, row=row, actor=actor)
    finished = _partners_done(session, row)
    if finished or clock.now(session) >= row.preparation_at:
        reason = "" if finished else "journée de préparation : réponses manquantes"
        then = S.AGREEMENTS if row.status is S.PLACEMENT else S.PREPARATION
        advance_to(session=session, row=row, to=then, actor=actor, reason=reason)
        return None
    due = min(deadline, row.preparation_at) if deadline else row.preparation_at
    return Pause(WaitName.PARTNERS, due, offer_deadline=deadline)


def preparation_next(
    *, session: Session, row: ImmersionSession, actor: Actor
) -> Pause | AttendanceQuestion:
    """Late invitations until the preparation day; after it, who came."""
    sync_partners(session=session, row=row, actor=actor)
    if clock.now(session) < row.preparation_end:
        return Pause(WaitName.PREPARATION_DAY, row.preparation_end)
    return _attendance_question(session, row, "preparation")


def immersion_next(*, session: Session, row: ImmersionSession, actor: Actor) -> Pause | None:
    """Days and reminders until the last immersion day; then the placements are done."""
    next_reminder = immersion_notices(session=session, row=row)
    end = immersion_end(session, row)
    if clock.now(session) >= end:
        finish_immersions(session=session, row=row, actor=actor)
        advance_to(session=session, row=row, to=S.EVALUATION, actor=actor)
        return None
    return Pause(WaitName.IMMERSION, min(next_reminder, end) if next_reminder else end)


def _request_evaluations(session: Session, row: ImmersionSession) -> None:
    request_evaluations(session=session, row=row)
    ensure_restitution_invitations(session=session, row=row)


def evaluation_next(*, session: Session, row: ImmersionSession, actor: Actor) -> Pause | None:
    """Evaluations awaited until the restitution."""
    _request_evaluations(session, row)
    complete = not missing_evaluations(session, row)
    if complete or clock.now(session) >= row.restitution_at:
        reason = "" if complete else "restitution : évaluations manquantes"
        advance_to(session=session, row=row, to=S.RESTITUTION, actor=actor, reason=reason)
        return None
    return Pause(WaitName.EVALUATIONS, row.restitution_at)


def restitution_next(*, session: Session, row: ImmersionSession) -> Pause | AttendanceQuestion:
    """Late evaluations and invitations until the restitution; after it, who came."""
    _request_evaluations(session, row)
    if clock.now(session) < row.restitution_end:
        return Pause(WaitName.RESTITUTION_DAY, row.restitution_end)
    return _attendance_question(session, row, "restitution")


def _attendance_question(
    session: Session, row: ImmersionSession, meeting: Meeting
) -> AttendanceQuestion:
    labels = [application_label(session, a) for a in participants(session, row)]
    withdrawal = (
        "Retirez de la liste les absents. Vous pouvez aussi retirer de la session un "
        "participant (sa place est proposée à la liste d'attente) en indiquant le motif."
        if meeting == "preparation"
        else "Retirez de la liste les absents."
    )
    return AttendanceQuestion(
        meeting=meeting,
        wait=ATTENDANCE_WAITS[meeting],
        description=f"## Présences — {MEETING_LABELS[meeting]}\n\n"
        f"Tous les participants sont proposés présents. {withdrawal}",
        initial={"present": labels},
        choices=labels,
    )


def answer_attendance(
    *,
    session: Session,
    row: ImmersionSession,
    meeting: Meeting,
    present: Sequence[str],
    withdrawn: Sequence[str] = (),
    withdraw_reason: str = "",
    actor: Actor,
) -> None:
    """Record who came (and who the coordinator withdraws), then move on; a refused answer
    raises `DomainError` (nothing of it is kept: `flows.waits.ask` asks again)."""
    if row.status is S.CANCELLED:
        return
    assert row.id is not None
    people = participants(session, row)
    present_numbers = numbers_of(present, people, session)
    leaving = numbers_of(withdrawn, people, session)
    if leaving and meeting != "preparation":
        raise DomainError("un participant ne peut être retiré qu'à la journée de préparation")
    both = [label for label in withdrawn if label in present]
    if both:
        raise DomainError(
            "un participant retiré de la session ne peut pas être noté présent : "
            + " ; ".join(both)
            + ". Retirez-le de la liste des présents, ou ne le retirez pas de la session."
        )
    record_attendance(
        session=session, row=row, meeting=meeting, present_numbers=present_numbers, actor=actor
    )
    for application in applications(session, row.id, ApplicationStatus.SELECTED):
        if application.number in leaving:
            withdraw_application(
                session=session,
                application=application,
                actor=actor,
                reason=withdraw_reason or "retrait décidé par la coordination",
            )
    then = S.IMMERSION if meeting == "preparation" else S.REPORT
    advance_to(session=session, row=row, to=then, actor=actor)


def report(*, session: Session, row: ImmersionSession, actor: Actor) -> Report:
    """Freeze the report and close the session."""
    data = store_report(session=session, row=row, actor=actor)
    advance_to(session=session, row=row, to=S.CLOSED, actor=actor)
    return Report(markdown=report_markdown(data), participants=data.participants)


def woken(session: Session, row: ImmersionSession, pause: Pause) -> bool:
    """Whether a pause is over before its date: an awaited answer came, or a cancellation."""
    if row.status is S.CANCELLED:
        return True
    if pause.wait is WaitName.PARTNERS:
        changed = next_offer_deadline(session, row) != pause.offer_deadline
        return _partners_done(session, row) or changed
    if pause.wait is WaitName.EVALUATIONS:
        return not missing_evaluations(session, row)
    return False


# -- where the session stands -----------------------------------------------------------
def awaited(session: Session, row: ImmersionSession) -> list[str]:
    """Who the session waits for now (French, for the run's progress artifact)."""
    assert row.id is not None
    people: list[str] = []
    if row.status is S.CALL_OPEN:
        people.append(f"candidatures jusqu'au {when(row.call_closes_at)}")
    for placement in placements(session, row.id, PlacementStatus.PROPOSED):
        host = organisation(session, placement.host_organisation_id).label
        people.append(
            f"{host} : confirmation de l'accueil {de(participant(session, placement).name)}"
        )
    for placement in placements(session, row.id, PlacementStatus.CONFIRMED):
        people.extend(
            f"{name} : signature de la convention" for name in unsigned_parties(session, placement)
        )
    for application in applications(session, row.id, ApplicationStatus.OFFERED):
        people.append(
            f"{contact(session, application.contact_id).name} : réponse à la place proposée"
        )
    if row.status is S.EVALUATION:
        for placement, author in missing_evaluations(session, row):
            who = "stagiaire" if author == "participant" else "tuteur"
            people.append(f"évaluation ({who}) : {participant(session, placement).name}")
    wait = session.exec(
        select(Wait).where(
            Wait.case_type == CASE.value, Wait.case_id == row.id, Wait.status == WaitStatus.OPEN
        )
    ).first()
    if wait is not None and wait.waiting_on and not people:
        people.append(wait.waiting_on)
    return people


def progress_markdown(session: Session, row: ImmersionSession) -> str:
    """Where the session stands and who is awaited (the run's progress artifact)."""
    return "\n".join(
        [
            f"## {row.reference} — {STATUS_LABELS[row.status]}",
            "",
            *(f"- en attente : {who}" for who in awaited(session, row)),
        ]
    )
