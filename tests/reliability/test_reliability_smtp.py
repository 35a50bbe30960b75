"""SMTP down for a while: every queued mail is delivered exactly once after recovery, and the
coordinator sees the delay on the case page meanwhile."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.core import clock, db
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.links import issue_link
from models.core.outbox import OutboxMessage, OutboxStatus, Recipient, enqueue
from models.core.settings import get_settings
from notifications.send import drain
from service.main import create_app
from tests.service.test_service_access import login
from tests.support.figures import record, scale
from tests.support.service_kit import World, build_world, register_kinds
from tests.support.smtp import SmtpServer, point_settings_at

pytestmark = pytest.mark.reliability


def _queue(world: World, count: int) -> None:
    assert world.contact.id is not None and world.clsm_a.id is not None
    with db.session_scope() as session:
        deadline = clock.now(session) + timedelta(days=7)
        for n in range(count):
            link = issue_link(
                session=session,
                contact_id=world.contact.id,
                case_type=CaseType.SESSION,
                case_id=world.case_a,
                step="test",
            )
            enqueue(
                session=session,
                scope=CaseScope(CaseType.SESSION, world.case_a, world.clsm_a.id, "Dossier de test"),
                to=Recipient(f"partenaire{n}@exemple.org", f"Partenaire {n}", world.contact.id),
                template="reminder",
                context={
                    "clsm_id": world.clsm_a.id,
                    "case_label": "Dossier de test",
                    "step_label": "répondre à l'étape",
                    "deadline": deadline.isoformat(),
                    "reminder_number": 1,
                    "link_id": link.id,
                },
                dedup_key=f"reminder-{n}",
            )


def test_smtp_down_then_back(any_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    register_kinds(monkeypatch)
    count = scale(200, 12)
    with db.session_scope() as session:
        world = build_world(session)
    _queue(world, count)
    server = SmtpServer()
    point_settings_at(monkeypatch, server)  # settings point at the port; nothing listens yet
    outage_drains = 0
    for _ in range(3):  # three ticks during the outage
        report = asyncio.run(drain())
        assert report.sent == 0 and report.unreachable
        outage_drains += 1
        with db.session_scope() as session:
            clock.advance(session=session, delta=timedelta(minutes=30))

    with TestClient(create_app()) as client:
        login(client, world.coordinator)
        page = client.get(f"/cases/session/{world.case_a}")
        assert page.status_code == 200
        assert "E-mails en attente d'envoi" in page.text
    with Session(db.get_engine()) as session:
        waiting = session.exec(select(OutboxMessage)).all()
        # nothing lost, nothing given up; the drain stops at the first refused connection
        assert all(m.status is OutboxStatus.PENDING for m in waiting)
        assert waiting[0].attempts >= 1 and waiting[0].last_error

    with server:  # the SMTP server comes back on the same port
        with db.session_scope() as session:
            clock.advance(session=session, delta=timedelta(hours=6))  # past every backoff
        delivered = 0
        for _ in range(10):
            report = asyncio.run(drain())
            delivered += report.sent
            if delivered >= count:
                break
        asyncio.run(drain())  # one more tick sends nothing twice
        ids = Counter(m.message_id for m in server.messages)
        recipients = Counter(tuple(m.recipients) for m in server.messages)
    get_settings.cache_clear()
    with Session(db.get_engine()) as session:
        statuses = Counter(m.status for m in session.exec(select(OutboxMessage)).all())
    record(
        "smtp_down",
        dialect=any_db_url.split(":")[0],
        queued=count,
        drains_during_outage=outage_drains,
        delivered=len(server.messages),
        duplicates_by_message_id=sum(n - 1 for n in ids.values()),
        duplicates_by_recipient=sum(n - 1 for n in recipients.values()),
    )
    assert len(server.messages) == count
    assert max(ids.values()) == 1 and max(recipients.values()) == 1
    assert statuses == {OutboxStatus.SENT: count}
