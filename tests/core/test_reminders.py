"""Reminders and escalation: business-day schedules, stop on answer, mails through SMTP."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from models.core import clock, db
from models.core.audit import case_events
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.links import StepLink, consume, issue_link, link_url
from models.core.outbox import OutboxMessage
from models.core.people import Clsm, Contact
from models.core.reminders import (
    STANDARD,
    BusinessDaysAfter,
    BusinessDaysBefore,
    ReminderPlan,
    Schedule,
    plan_reminders,
    send_due_reminders,
    stop_reminders,
)
from notifications.send import drain
from tests import factories
from tests.support.smtp import SmtpServer

PARIS = ZoneInfo("Europe/Paris")


def _local(moment: datetime) -> tuple[date, int]:
    local = moment.astimezone(PARIS)
    return local.date(), local.hour


def test_standard_schedule_skips_the_weekend_and_11_november() -> None:
    # Wednesday 13 November 2024, 18:00; Monday 11 November is a public holiday.
    deadline = datetime(2024, 11, 13, 18, 0, tzinfo=PARIS)
    first, second = STANDARD.reminder_times(deadline, PARIS)
    assert _local(first) == (date(2024, 11, 5), 9)  # Tue 5: 5 business days before
    assert _local(second) == (date(2024, 11, 8), 9)  # Fri 8, not Mon 11 (holiday)
    escalation = STANDARD.escalation_time(deadline, PARIS)
    assert escalation is not None and _local(escalation) == (date(2024, 11, 14), 9)


def test_escalation_after_a_friday_deadline_waits_past_the_holiday() -> None:
    deadline = datetime(2024, 11, 8, 12, 0, tzinfo=PARIS)  # Friday before 11 November
    escalation = STANDARD.escalation_time(deadline, PARIS)
    assert escalation is not None and _local(escalation) == (date(2024, 11, 12), 9)
    schedule = Schedule(
        "test", reminders=(BusinessDaysBefore(1),), escalate_after=BusinessDaysAfter(2)
    )
    monday_deadline = datetime(2024, 11, 12, 12, 0, tzinfo=PARIS)  # Tuesday
    [reminder] = schedule.reminder_times(monday_deadline, PARIS)
    assert _local(reminder) == (date(2024, 11, 8), 9)  # Friday: Monday 11 is a holiday
    late = schedule.escalation_time(monday_deadline, PARIS)
    assert late is not None and _local(late) == (date(2024, 11, 14), 9)


def _setup(deadline: datetime) -> tuple[Clsm, Contact, int]:
    """A CLSM, a contact and a step link with a standard plan; the clock at 1 November."""
    with db.session_scope() as session:
        clock.set_offset(
            session=session,
            delta=datetime(2024, 11, 1, 10, 0, tzinfo=PARIS) - datetime.now(UTC),
        )
        owner = factories.clsm(session)
        org = factories.organisation(session, owner, "CCAS de Poitiers")
        person = factories.contact(session, org, name="Sophie Petit")
        assert person.id is not None
        link = issue_link(
            session=session,
            contact_id=person.id,
            case_type=CaseType.SESSION,
            case_id=4,
            step="accueil",
        )
        plan_reminders(
            session=session,
            scope=CaseScope(
                CaseType.SESSION, link.case_id, owner.id, "Session « Immersions 2024 »"
            ),
            link=link,
            deadline=deadline,
            schedule="standard",
            template_context={
                "clsm_id": owner.id,
                "case_label": "Session « Immersions 2024 »",
                "step_label": "confirmer l'accueil",
            },
        )
        assert link.id is not None
        return owner, person, link.id


def _at(moment: datetime) -> int:
    """Set the installation's clock to moment and run the reminders pass."""
    with db.session_scope() as session:
        clock.set_offset(session=session, delta=moment - datetime.now(UTC))
        return send_due_reminders(session)


def _queued() -> list[tuple[str, str]]:
    with Session(db.get_engine()) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        return [(r.template, r.recipient_email) for r in rows]


def test_reminders_then_escalation_at_their_business_days(db_url: str) -> None:
    deadline = datetime(2024, 11, 13, 18, 0, tzinfo=PARIS)
    owner, person, _link_id = _setup(deadline)

    assert _at(datetime(2024, 11, 5, 8, 59, tzinfo=PARIS)) == 0
    assert _at(datetime(2024, 11, 5, 9, 0, tzinfo=PARIS)) == 1
    assert _at(datetime(2024, 11, 5, 15, 0, tzinfo=PARIS)) == 0  # once only
    assert _at(datetime(2024, 11, 7, 9, 0, tzinfo=PARIS)) == 0
    assert _at(datetime(2024, 11, 8, 9, 0, tzinfo=PARIS)) == 1
    assert _at(datetime(2024, 11, 11, 9, 0, tzinfo=PARIS)) == 0  # holiday, nothing due
    assert _at(datetime(2024, 11, 13, 20, 0, tzinfo=PARIS)) == 0  # deadline passed
    assert _at(datetime(2024, 11, 14, 9, 0, tzinfo=PARIS)) == 1  # escalation
    assert _at(datetime(2024, 11, 20, 9, 0, tzinfo=PARIS)) == 0  # plan over
    assert _queued() == [
        ("reminder", person.email),
        ("reminder", person.email),
        ("escalation", owner.coordinator_email),
    ]
    with Session(db.get_engine()) as session:
        assert [e.action for e in case_events(session, "session", 4)] == ["step.escalated"]
        reminder = session.exec(select(OutboxMessage)).first()
        assert reminder is not None and reminder.context["link_id"] == _link_id


def test_no_reminder_after_the_answer(db_url: str) -> None:
    deadline = datetime(2024, 11, 13, 18, 0, tzinfo=PARIS)
    _owner, _person, link_id = _setup(deadline)
    assert _at(datetime(2024, 11, 5, 9, 0, tzinfo=PARIS)) == 1
    with db.session_scope() as session:
        link = session.get(StepLink, link_id)
        assert link is not None
        consume(session=session, link=link)

    for moment in (
        datetime(2024, 11, 8, 9, 0, tzinfo=PARIS),
        datetime(2024, 11, 14, 9, 0, tzinfo=PARIS),
    ):
        assert _at(moment) == 0
    assert [template for template, _ in _queued()] == ["reminder"]
    with Session(db.get_engine()) as session:
        plan = session.exec(select(ReminderPlan)).one()
        assert plan.stop_reason == "answered" and plan.escalated_at is None


def test_stopped_plan_sends_nothing_and_late_start_skips_past_reminders(db_url: str) -> None:
    deadline = datetime(2024, 11, 6, 18, 0, tzinfo=PARIS)  # 2 business days after planning
    _owner, _person, link_id = _setup(deadline)
    with Session(db.get_engine()) as session:
        plan = session.exec(select(ReminderPlan)).one()
        assert plan.next_index == 1  # the "5 business days before" moment had passed
    assert _at(datetime(2024, 11, 4, 9, 0, tzinfo=PARIS)) == 1  # Mon 4: 2 days before
    with db.session_scope() as session:
        assert stop_reminders(session, link_id, "cancelled")
        assert not stop_reminders(session, link_id)
    assert _at(datetime(2024, 11, 8, 9, 0, tzinfo=PARIS)) == 0  # no escalation either


@pytest.mark.asyncio(loop_scope="session")
async def test_reminder_mail_reuses_the_step_link(db_url: str, smtp_server: SmtpServer) -> None:
    deadline = datetime(2024, 11, 13, 18, 0, tzinfo=PARIS)
    _owner, person, link_id = _setup(deadline)
    _at(datetime(2024, 11, 5, 9, 0, tzinfo=PARIS))

    report = await drain()

    assert report.sent == 1
    [mail] = smtp_server.messages
    assert mail.recipients == [person.email]
    assert (
        mail.message["Subject"] == "Rappel : confirmer l'accueil avant le mercredi 13 novembre 2024"
    )
    with Session(db.get_engine()) as session:
        link = session.get(StepLink, link_id)
        assert link is not None
        assert f"Répondre ({link_url(link)})" in mail.text()
