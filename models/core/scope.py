"""What a step does to its case, written once for both processes: record, mail, link.

Every helper takes the case's `CaseScope` (type, id, CLSM, label), so a process never
repeats the plumbing of audit events, outbox rows, links and reminder plans.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor, AuditEvent, record_event
from models.core.kinds import CaseScope
from models.core.links import StepLink, issue_link
from models.core.mails import MailContext
from models.core.outbox import Attachment, CalendarPart, OutboxMessage, Recipient, enqueue
from models.core.people import Contact
from models.core.reminders import plan_reminders


def record(
    *,
    session: Session,
    scope: CaseScope,
    action: str,
    actor: Actor,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """One audit event on the case's chain, in the caller's transaction."""
    return record_event(
        session=session,
        case_type=scope.case_type,
        case_id=scope.case_id,
        action=action,
        actor=actor,
        payload=payload,
    )


def recipient(contact: Contact) -> Recipient:
    return Recipient(email=contact.email, name=contact.name, contact_id=contact.id)


def mail(
    *,
    session: Session,
    scope: CaseScope,
    to: Contact | Recipient,
    message: MailContext,
    dedup_key: str,
    calendar: CalendarPart | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> OutboxMessage:
    """Queue one typed mail of the case; the same dedup_key queues nothing new."""
    return enqueue(
        session=session,
        scope=scope,
        to=recipient(to) if isinstance(to, Contact) else to,
        template=message.template,
        context=message.as_context(),
        dedup_key=dedup_key,
        calendar=calendar,
        attachments=attachments,
    )


def link(
    *,
    session: Session,
    scope: CaseScope,
    contact_id: int,
    step: str,
    subject_id: int | None = None,
    multi_use: bool = False,
    until: datetime | None = None,
) -> StepLink:
    """A link of the case for one contact and one step (valid until `until` if given)."""
    return issue_link(
        session=session,
        contact_id=contact_id,
        case_type=scope.case_type,
        case_id=scope.case_id,
        step=step,
        subject_id=subject_id,
        multi_use=multi_use,
        valid_for=(until - clock.now(session)) if until else None,
    )


def awaited_link(
    *,
    session: Session,
    scope: CaseScope,
    contact_id: int,
    step: str,
    subject_id: int | None = None,
    deadline: datetime,
    step_label: str,
    schedule: str = "standard",
) -> StepLink:
    """A link whose answer is awaited: reminded before `deadline`, escalated after it
    (`models.core.reminders`, sent by tick; the plan stops once the link is used)."""
    issued = link(
        session=session, scope=scope, contact_id=contact_id, step=step, subject_id=subject_id
    )
    plan_reminders(
        session=session,
        scope=scope,
        link=issued,
        deadline=deadline,
        schedule=schedule,
        template_context={"case_label": scope.label, "step_label": step_label},
    )
    return issued
