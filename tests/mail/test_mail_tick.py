"""`tick` through a real Prefect server and worker: reminders, outbox, failures in the log."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from models.core import clock, db
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.links import issue_link
from models.core.outbox import OutboxMessage, OutboxStatus, Recipient, enqueue
from models.core.reminders import plan_reminders
from tests import factories
from tests.support.prefect_stack import PrefectStack, run, run_env, wait_for_state
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]

PARIS = ZoneInfo("Europe/Paris")


async def _run_logs(run_id: object, needle: str, timeout: float = 20) -> list[str]:
    """The run's log lines, polled until one contains needle (logs are shipped in batches)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    lines: list[str] = []
    async with get_client() as client:
        while time.monotonic() < deadline:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
            )
            lines = [log.message for log in logs]
            if any(needle in line for line in lines):
                break
            await asyncio.sleep(0.5)
    return lines


async def test_tick_sends_reminders_and_reports_refused_mail(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer
) -> None:
    with db.session_scope() as session:
        clock.set_offset(
            session=session, delta=datetime(2024, 11, 4, 10, 0, tzinfo=PARIS) - datetime.now(UTC)
        )
        owner = factories.clsm(session)
        org = factories.organisation(session, owner, "UDAF de la Vienne")
        person = factories.contact(session, org, name="Marc Girard")
        gone = factories.contact(session, org, name="Ancien agent", email="parti@udaf.example")
        assert person.id is not None and gone.id is not None
        link = issue_link(
            session=session,
            contact_id=person.id,
            case_type=CaseType.SESSION,
            case_id=9,
            step="convention",
        )
        plan_reminders(
            session=session,
            scope=CaseScope(
                CaseType.SESSION, link.case_id, owner.id, "Session « Immersions 2024 »"
            ),
            link=link,
            deadline=datetime(2024, 11, 13, 18, 0, tzinfo=PARIS),
            template_context={
                "clsm_id": owner.id,
                "case_label": "Session « Immersions 2024 »",
                "step_label": "signer la convention de stage",
            },
        )
        enqueue(
            session=session,
            scope=CaseScope(CaseType.SESSION, 9, owner.id, "Session « Immersions 2024 »"),
            to=Recipient(gone.email, gone.name, gone.id),
            template="escalation",
            context={
                "clsm_id": owner.id,
                "case_label": "Session « Immersions 2024 »",
                "step_label": "test",
                "deadline": "2024-11-13T18:00:00+01:00",
                "contact_name": "x",
                "contact_email": "x@example.org",
                "reminders_sent": 0,
            },
            dedup_key="refused",
        )
        clock.advance(session=session, delta=timedelta(days=1))  # first reminder due
    smtp_server.refuse(gone.email)

    run_id = await run("tick/tick", {}, run_env(db_url, CLSM_SMTP_PORT=str(smtp_server.port)))
    await wait_for_state(run_id, "COMPLETED")

    recipients = sorted(m.recipients[0] for m in smtp_server.messages)
    assert recipients == sorted([person.email, owner.coordinator_email])
    with Session(db.get_engine()) as session:
        statuses = {r.recipient_email: r.status for r in session.exec(select(OutboxMessage))}
    assert statuses == {
        person.email: OutboxStatus.SENT,
        gone.email: OutboxStatus.FAILED,
        owner.coordinator_email: OutboxStatus.SENT,
    }
    lines = await _run_logs(run_id, "non remis")
    assert any("parti@udaf.example" in line and "550" in line for line in lines), lines
