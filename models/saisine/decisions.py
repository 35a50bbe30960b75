"""The cell's decision after a held meeting, and its actions: each owner gets a link to
say the action is done, a reminder before its due date; the coordinator hears of late
ones. The saisine closes when every action is done (`common.close_saisine`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

from pydantic import BaseModel, Field
from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.status import change_status
from models.saisine.common import (
    EXAMPLE_REFERENCE,
    SaisineMail,
    actions_of,
    alert_coordinator,
    contact,
    event,
    get_saisine,
    link_to,
    mail,
    meeting_event,
    meeting_members,
    open_wait_step,
    org_label,
    subject_of,
    tell_outcome,
    touch,
)
from models.saisine.plan import Next, Task, action_moments
from models.saisine.rules import check_decision_allowed
from models.saisine.states import (
    ActionStatus,
    MeetingStatus,
    SaisineStatus,
    Step,
    WaitName,
    wait_step,
)
from models.saisine.tables import CellMeeting, Decision, DecisionAction, Saisine

ACTIONS_WAIT_STEP = wait_step(WaitName.ACTIONS)


def next_when_decided(session: Session, saisine: Saisine) -> Next:
    """Closed when every action is done; meanwhile owners reminded, late ones reported."""
    if actions_done(session, saisine):
        return Next(task=Task.CLOSE)
    return Next.until(
        WaitName.ACTIONS, due_at=next_action_alarm(session, saisine), task=Task.REMIND_OWNERS
    )


def decision_owners(session: Session, meeting: CellMeeting) -> dict[str, int]:
    """Who may own an action: the meeting's members, by "name (structure)"."""
    owners: dict[str, int] = {}
    for member in meeting_members(session, meeting):
        owner = contact(session, member.contact_id)
        assert owner.id is not None
        owners[f"{owner.name} ({org_label(session, member.organisation_id)})"] = owner.id
    return owners


@dataclass(frozen=True)
class ActionPlan:
    text: str
    owner_contact_id: int
    due_on: date


def mark_meeting_held(*, session: Session, meeting: CellMeeting, actor: Actor) -> None:
    if meeting.status is MeetingStatus.HELD:
        return
    if meeting.starts_at > clock.now(session):
        raise DomainError("La réunion n'a pas encore eu lieu.")
    change_status(session=session, entity=meeting, to=MeetingStatus.HELD, actor=actor)
    meeting_event(session, meeting, "meeting.held", actor, {})


def decide(
    *,
    session: Session,
    saisine: Saisine,
    meeting: CellMeeting,
    text: str,
    actions: list[tuple[str, str, date | None]],
    actor: Actor,
) -> Decision:
    """The decision form's answer: the meeting was held; each action line is (text, owner
    as `decision_owners` names them, due date); empty lines are skipped."""
    owners = decision_owners(session, meeting)
    plans: list[ActionPlan] = []
    for line, owner, due_on in actions:
        if not line.strip():
            continue
        if due_on is None or owner not in owners:
            raise DomainError(
                f"Action « {line} » : indiquez son ou sa responsable et son échéance."
            )
        plans.append(ActionPlan(line, owners[owner], due_on))
    mark_meeting_held(session=session, meeting=meeting, actor=actor)
    return record_decision(
        session=session, saisine=saisine, meeting=meeting, text=text, actions=plans, actor=actor
    )


class ActionMail(SaisineMail):
    """To an action's owner: the action to carry out by its due date (or a reminder)."""

    template: ClassVar[str] = "saisine_action"
    link_id: int
    due_on: str  # dd/mm/yyyy
    reminder: bool

    @classmethod
    def example(cls) -> ActionMail:
        return cls(reference=EXAMPLE_REFERENCE, link_id=1, due_on="30/04/2026", reminder=False)


def _tell_owner(
    session: Session, saisine: Saisine, action: DecisionAction, *, reminder: bool
) -> None:
    link = link_to(session, saisine, action.owner_contact_id, Step.ACTION, action.id)
    assert link.id is not None
    mail(
        session,
        saisine,
        to=contact(session, action.owner_contact_id),
        message=ActionMail(
            reference=saisine.reference,
            link_id=link.id,
            due_on=f"{action.due_on:%d/%m/%Y}",
            reminder=reminder,
        ),
        dedup_key=f"action-{action.id}{'-reminder' if reminder else ''}",
    )


def record_decision(
    *,
    session: Session,
    saisine: Saisine,
    meeting: CellMeeting,
    text: str,
    actions: list[ActionPlan],
    actor: Actor,
) -> Decision:
    """The cell's decision after a held meeting; each action's owner gets a closing link."""
    check_decision_allowed(saisine.status, meeting.status)
    if not text.strip():
        raise DomainError("Le texte de la décision est requis.")
    assert saisine.id is not None and meeting.id is not None
    moment = clock.now(session)
    decision = Decision(
        saisine_id=saisine.id, meeting_id=meeting.id, text=text.strip(), decided_at=moment
    )
    session.add(decision)
    session.flush()
    assert decision.id is not None
    for plan in actions:
        if not plan.text.strip():
            continue
        action = DecisionAction(
            decision_id=decision.id,
            saisine_id=saisine.id,
            text=plan.text.strip(),
            owner_contact_id=plan.owner_contact_id,
            due_on=plan.due_on,
        )
        session.add(action)
        session.flush()
        _tell_owner(session, saisine, action, reminder=False)
    change_status(
        session=session,
        entity=saisine,
        to=SaisineStatus.DECIDED,
        actor=actor,
        details={
            "decision_id": decision.id,
            "meeting_id": meeting.id,
            "text": decision.text,
            "actions": [
                {
                    "text": a.text,
                    "owner_contact_id": a.owner_contact_id,
                    "due_on": a.due_on.isoformat(),
                }
                for a in actions_of(session, saisine)
            ],
        },
    )
    members = [m.contact_id for m in meeting_members(session, meeting)]
    tell_outcome(session, saisine, "decision", decision.id, members)
    touch(session, saisine)
    return decision


def close_action(
    *, session: Session, action: DecisionAction, note: str, actor: Actor, link_id: int | None
) -> None:
    change_status(
        session=session,
        entity=action,
        to=ActionStatus.DONE,
        actor=actor,
        details={"note": note.strip()},
    )
    action.done_at = clock.now(session)
    action.closing_note = note.strip()
    action.closed_by_link_id = link_id
    session.add(action)
    session.flush()


def next_action_alarm(session: Session, saisine: Saisine) -> datetime | None:
    pending: list[datetime] = []
    for action in actions_of(session, saisine):
        if action.status is not ActionStatus.OPEN:
            continue
        remind, alert = action_moments(action)
        if action.reminded_at is None:
            pending.append(remind)
        elif action.escalated_at is None:
            pending.append(alert)
    return min(pending) if pending else None


def remind_action_owners(*, session: Session, saisine: Saisine) -> int:
    """Reminders due to owners, alerts due to the coordinator (each once)."""
    moment = clock.now(session)
    sent = 0
    for action in actions_of(session, saisine):
        if action.status is not ActionStatus.OPEN:
            continue
        remind, alert = action_moments(action)
        if action.reminded_at is None and moment >= remind:
            _tell_owner(session, saisine, action, reminder=True)
            action.reminded_at = moment
            event(session, saisine, "action.reminded", Actor.system(), {"action_id": action.id})
            sent += 1
        if action.reminded_at is not None and action.escalated_at is None and moment >= alert:
            alert_coordinator(
                session,
                saisine,
                alert="action",
                names=[contact(session, action.owner_contact_id).name],
                dedup_key=f"action-{action.id}-overdue",
            )
            action.escalated_at = moment
            event(session, saisine, "action.overdue", Actor.system(), {"action_id": action.id})
            sent += 1
        session.add(action)
    session.flush()
    return sent


def actions_done(session: Session, saisine: Saisine) -> bool:
    return all(a.status is not ActionStatus.OPEN for a in actions_of(session, saisine))


# -- the owner's page ---------------------------------------------------------------------------
class ActionClosure(BaseModel):
    note: str = Field(default="", max_length=2000, title="Ce qui a été fait")


def _page(session: Session, link: StepLink) -> StepPage:
    action = subject_of(session, DecisionAction, link)
    saisine = get_saisine(session, link.case_id)
    return StepPage(
        title="Action décidée par la cellule de concertation",
        case_label=saisine.label,
        paragraphs=["Quand l'action est réalisée, indiquez-le ci-dessous."],
        details=[("Action", action.text), ("Échéance", f"{action.due_on:%d/%m/%Y}")],
    )


def _record(session: Session, link: StepLink, answer: ActionClosure, actor: Actor) -> str:
    action = subject_of(session, DecisionAction, link)
    close_action(session=session, action=action, note=answer.note, actor=actor, link_id=link.id)
    return "Merci, l'action est notée comme réalisée."


def _wait(session: Session, link: StepLink) -> str | None:
    return open_wait_step(session, get_saisine(session, link.case_id), ACTIONS_WAIT_STEP)


ACTION_STEP = StepKind(
    name=Step.ACTION,
    form=ActionClosure,
    page=_page,
    record=_record,
    wait_step=_wait,
    submit_label="Action réalisée",
    after_sending="Après l'envoi, l'action est notée réalisée et la coordination du CLSM en "
    "est informée ; la saisine se clôt quand toutes les actions décidées sont réalisées. Ce "
    "lien ne sert qu'une fois.",
)
MAILS = (ActionMail,)
