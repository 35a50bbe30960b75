"""Reminders and escalation for awaited answers, on declarative schedules in business days.

A domain step that mails a link to a partner calls `plan_reminders` in the same transaction:
one `ReminderPlan` row per awaited answer (one step link). `send_due_reminders` (run by
`tick`) queues the reminders whose time has come and, after the deadline, one escalation
mail to the CLSM's coordinator. A plan stops as soon as its link is used (the answer came),
or when the domain calls `stop_reminders`.

Times: every reminder and escalation falls at `Schedule.hour` (local time, Europe/Paris by
default) on a business day (no weekend, no French public holiday), counted from the local
date of the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, col, select

from models.core import clock
from models.core.audit import Actor, record_event
from models.core.base import UTCDateTime
from models.core.calendar import add_business_days, at_local, local_date
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.links import StepLink
from models.core.outbox import Recipient, enqueue, resolve_clsm
from models.core.people import Contact
from models.core.settings import get_settings


@dataclass(frozen=True)
class BusinessDaysBefore:
    """N business days before the deadline's date."""

    days: int


@dataclass(frozen=True)
class BusinessDaysAfter:
    """N business days after the deadline's date."""

    days: int


@dataclass(frozen=True)
class Schedule:
    """When to remind a partner and when to tell the coordinator, relative to a deadline."""

    name: str
    reminders: tuple[BusinessDaysBefore, ...] = ()
    escalate_after: BusinessDaysAfter | None = None
    hour: int = 9

    def reminder_times(self, deadline: datetime, tz: ZoneInfo) -> list[datetime]:
        """Moments of the reminders, earliest first."""
        day = local_date(deadline, tz)
        moments = [at_local(add_business_days(day, -r.days), self.hour, tz) for r in self.reminders]
        return sorted(moments)

    def escalation_time(self, deadline: datetime, tz: ZoneInfo) -> datetime | None:
        if self.escalate_after is None:
            return None
        day = add_business_days(local_date(deadline, tz), self.escalate_after.days)
        return at_local(day, self.hour, tz)


STANDARD = Schedule(
    name="standard",
    reminders=(BusinessDaysBefore(5), BusinessDaysBefore(2)),
    escalate_after=BusinessDaysAfter(1),
)
SHORT = Schedule(
    name="short", reminders=(BusinessDaysBefore(1),), escalate_after=BusinessDaysAfter(1)
)
REMIND_ONLY = Schedule(name="remind-only", reminders=(BusinessDaysBefore(2),), escalate_after=None)
SCHEDULES: dict[str, Schedule] = {s.name: s for s in (STANDARD, SHORT, REMIND_ONLY)}


class ReminderPlan(SQLModel, table=True):
    """What has been sent for one awaited answer (one step link)."""

    __tablename__ = "reminder_plan"

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="step_link.id", unique=True, index=True)
    contact_id: int = Field(foreign_key="contact.id")
    case_type: str = Field(max_length=20)
    case_id: int = Field(index=True)
    clsm_id: int | None = Field(default=None, foreign_key="clsm.id")
    case_label: str = Field(default="", max_length=200)
    deadline: datetime = Field(sa_type=UTCDateTime)
    schedule: str = Field(max_length=40)
    reminder_template: str = Field(default="reminder", max_length=80)
    escalation_template: str = Field(default="escalation", max_length=80)
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    next_index: int = 0
    reminders_sent: int = 0
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    stop_reason: str = Field(default="", max_length=40)
    created_at: datetime = Field(sa_type=UTCDateTime)


def plan_reminders(
    *,
    session: Session,
    scope: CaseScope,
    link: StepLink,
    deadline: datetime,
    schedule: str = "standard",
    template_context: dict[str, Any],
    reminder_template: str = "reminder",
    escalation_template: str = "escalation",
) -> ReminderPlan:
    """Plan the reminders of one awaited answer, in the caller's transaction; idempotent per link.

    `template_context` is what the reminder and escalation templates need besides what is
    added here (`link_id`, `deadline`): for the generic templates, `case_label` and
    `step_label` (French, e.g. "confirmer vos disponibilités"). Reminders already past at
    planning time are skipped.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown reminder schedule {schedule!r}")
    if deadline.tzinfo is None:
        raise ValueError("naive deadline refused: use an aware datetime")
    assert link.id is not None
    existing = session.exec(select(ReminderPlan).where(ReminderPlan.link_id == link.id)).first()
    if existing is not None:
        return existing
    moment = clock.now(session)
    times = SCHEDULES[schedule].reminder_times(deadline, get_settings().tz)
    plan = ReminderPlan(
        link_id=link.id,
        contact_id=link.contact_id,
        case_type=link.case_type,
        case_id=link.case_id,
        clsm_id=scope.clsm_id,
        case_label=scope.label,
        deadline=deadline,
        schedule=schedule,
        reminder_template=reminder_template,
        escalation_template=escalation_template,
        context=dict(template_context),
        next_index=sum(1 for t in times if t <= moment),
        created_at=moment,
    )
    session.add(plan)
    session.flush()
    return plan


def stop_reminders(session: Session, link_id: int, reason: str = "stopped") -> bool:
    """Stop the plan of this link (answered elsewhere, step cancelled); False if none was open."""
    plan = session.exec(
        select(ReminderPlan).where(
            ReminderPlan.link_id == link_id, col(ReminderPlan.stopped_at).is_(None)
        )
    ).first()
    if plan is None:
        return False
    plan.stopped_at = clock.now(session)
    plan.stop_reason = reason
    session.add(plan)
    return True


def stop_case_reminders(
    session: Session, case_type: CaseType, case_id: int, reason: str = "case-closed"
) -> int:
    """Stop every open plan of a case (case closed or cancelled); returns how many."""
    plans = session.exec(
        select(ReminderPlan).where(
            ReminderPlan.case_type == case_type.value,
            ReminderPlan.case_id == case_id,
            col(ReminderPlan.stopped_at).is_(None),
        )
    ).all()
    for plan in plans:
        assert plan.id is not None
        stop_reminders(session, plan.link_id, reason)
    return len(plans)


def _scope(plan: ReminderPlan) -> CaseScope:
    assert plan.clsm_id is not None
    return CaseScope(CaseType(plan.case_type), plan.case_id, plan.clsm_id, plan.case_label)


def _remind(session: Session, plan: ReminderPlan, contact: Contact, index: int) -> None:
    enqueue(
        session=session,
        scope=_scope(plan),
        to=Recipient(email=contact.email, name=contact.name, contact_id=contact.id),
        template=plan.reminder_template,
        context={
            **plan.context,
            "link_id": plan.link_id,
            "deadline": plan.deadline.isoformat(),
            "reminder_number": index + 1,
        },
        dedup_key=f"reminder-{plan.id}-{index}",
    )
    plan.reminders_sent += 1


def _escalate(session: Session, plan: ReminderPlan, contact: Contact, moment: datetime) -> bool:
    """Stop the plan; queue the escalation mail to the coordinator if there is one."""
    clsm = resolve_clsm(session=session, clsm_id=plan.clsm_id)
    plan.escalated_at = moment
    plan.stopped_at = moment
    if clsm is None or not clsm.coordinator_email:
        plan.stop_reason = "no-coordinator"
        return False
    plan.stop_reason = "escalated"
    enqueue(
        session=session,
        scope=_scope(plan),
        to=Recipient(email=clsm.coordinator_email, name=clsm.coordinator_name),
        template=plan.escalation_template,
        context={
            **plan.context,
            "deadline": plan.deadline.isoformat(),
            "contact_name": contact.name,
            "contact_email": contact.email,
            "reminders_sent": plan.reminders_sent,
        },
        dedup_key=f"escalation-{plan.id}",
    )
    record_event(
        session=session,
        case_type=CaseType(plan.case_type),
        case_id=plan.case_id,
        action="step.escalated",
        actor=Actor.system("reminders"),
        payload={"link_id": plan.link_id, "contact_id": plan.contact_id, "plan_id": plan.id},
    )
    return True


def send_due_reminders(session: Session) -> int:
    """Queue due reminders and escalations (tick); returns how many mails were queued.

    A plan whose link was used stops without sending. If several reminders fell due while
    nothing ran, only the latest is sent; no reminder is sent once the deadline has passed
    or the link has expired (the escalation still comes).
    """
    moment = clock.now(session)
    tz = get_settings().tz
    queued = 0
    plans = session.exec(
        select(ReminderPlan, StepLink, Contact)
        .join(StepLink, col(StepLink.id) == col(ReminderPlan.link_id))
        .join(Contact, col(Contact.id) == col(ReminderPlan.contact_id))
        .where(col(ReminderPlan.stopped_at).is_(None))
        .order_by(col(ReminderPlan.id))
    ).all()
    for plan, link, contact in plans:
        if link.used_at is not None:
            plan.stopped_at, plan.stop_reason = moment, "answered"
            session.add(plan)
            continue
        schedule = SCHEDULES[plan.schedule]
        times = schedule.reminder_times(plan.deadline, tz)
        due = [i for i, t in enumerate(times) if i >= plan.next_index and t <= moment]
        # no reminder once the deadline passed or with a link that no longer opens
        if due and moment < plan.deadline and moment < link.expires_at:
            _remind(session, plan, contact, due[-1])
            queued += 1
        if due:
            plan.next_index = due[-1] + 1
        escalation = schedule.escalation_time(plan.deadline, tz)
        if escalation is not None and moment >= escalation:
            queued += _escalate(session, plan, contact, moment)
        elif escalation is None and moment >= plan.deadline:
            plan.stopped_at, plan.stop_reason = moment, "deadline-passed"
        session.add(plan)
    session.flush()
    return queued
