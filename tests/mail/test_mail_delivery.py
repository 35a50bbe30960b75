"""Delivery of the outbox to a real SMTP server (aiosmtpd on localhost)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import icalendar
import pytest
from sqlmodel import Session, select

from models.core import clock, db
from models.core.audit import case_events
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.links import issue_link
from models.core.outbox import (
    CalendarMethod,
    CalendarPart,
    OutboxMessage,
    OutboxStatus,
    Recipient,
    enqueue,
)
from models.core.people import Clsm, Contact
from models.core.settings import get_settings
from notifications import send
from notifications.send import drain
from tests import factories
from tests.support.smtp import SmtpServer, point_settings_at, self_signed_certificate

pytestmark = pytest.mark.asyncio(loop_scope="session")

PARIS_START = "2024-11-12T09:30:00+01:00"
PARIS_END = "2024-11-12T11:30:00+01:00"


def _people(name: str = "Élodie Lefèvre") -> tuple[Clsm, Contact]:
    with db.session_scope() as session:
        owner = factories.clsm(session, name="CLSM de Châtellerault")
        org = factories.organisation(session, owner, "Centre hospitalier Henri Laborit")
        person = factories.contact(session, org, name=name, email="elodie@chl.example")
    return owner, person


def _remind(owner: Clsm, person: Contact, dedup: str = "rappel", case_id: int = 1) -> int:
    """Queue a reminder mail with a real step link; returns the outbox id."""
    assert person.id is not None
    with db.session_scope() as session:
        link = issue_link(
            session=session,
            contact_id=person.id,
            case_type=CaseType.SAISINE,
            case_id=case_id,
            step="avis",
        )
        row = enqueue(
            session=session,
            scope=CaseScope(CaseType.SAISINE, case_id, owner.id, "Saisine 2024-07"),
            to=Recipient(person.email, person.name, person.id),
            template="reminder",
            context={
                "clsm_id": owner.id,
                "link_id": link.id,
                "case_label": "Saisine 2024-07",
                "step_label": "donner votre avis sur la réunion",
                "deadline": "2024-11-13T18:00:00+01:00",
            },
            dedup_key=dedup,
        )
        assert row.id is not None
        return row.id


def _meeting(owner: Clsm, person: Contact, sequence: int, method: CalendarMethod) -> int:
    with db.session_scope() as session:
        row = enqueue(
            session=session,
            scope=CaseScope(CaseType.MEETING, 7, owner.id, "Réunion de la cellule"),
            to=Recipient(person.email, person.name, person.id),
            template=(
                "meeting_invitation" if method is CalendarMethod.REQUEST else "meeting_cancelled"
            ),
            context={"clsm_id": owner.id, "case_label": "Réunion de la cellule"},
            dedup_key=f"meeting-7-{method.value}-{sequence}",
            calendar=CalendarPart(
                uid="meeting-7@clsm.localhost",
                sequence=sequence,
                method=method,
                summary="Réunion de la cellule de concertation",
                start=PARIS_START,
                end=PARIS_END,
                location="CCAS de Poitiers",
            ),
        )
        assert row.id is not None
        return row.id


def _row(outbox_id: int) -> OutboxMessage:
    with Session(db.get_engine()) as session:
        row = session.get(OutboxMessage, outbox_id)
        assert row is not None
        return row


def _actions(case_type: str, case_id: int) -> list[str]:
    with Session(db.get_engine()) as session:
        return [e.action for e in case_events(session, case_type, case_id)]


def _advance(delta: timedelta) -> None:
    with db.session_scope() as session:
        clock.advance(session=session, delta=delta)


async def test_mail_arrives_with_both_parts_accents_and_headers(
    db_url: str, smtp_server: SmtpServer
) -> None:
    owner, person = _people()
    outbox_id = _remind(owner, person)

    report = await drain()

    assert report.sent == 1 and report.failed == 0
    [mail] = smtp_server.messages
    message = mail.message
    assert mail.recipients == ["elodie@chl.example"]
    assert message["Subject"] == (
        "Rappel : donner votre avis sur la réunion avant le mercredi 13 novembre 2024"
    )
    assert message["To"].addresses[0].display_name == "Élodie Lefèvre"
    assert message["From"].addresses[0].display_name == "CLSM de Châtellerault"
    assert message["From"].addresses[0].addr_spec == "no-reply@clsm.localhost"
    assert message["Reply-To"].addresses[0].addr_spec == owner.coordinator_email
    assert message["Message-ID"] == _row(outbox_id).message_id
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message.get_content_type() == "multipart/alternative"
    text, html = mail.text(), mail.html()
    assert "Bonjour Élodie Lefèvre," in text
    assert "CLSM de Châtellerault" in text and "CLSM de Châtellerault" in html
    assert "Répondre (http://127.0.0.1:8765/r/" in text
    assert 'href="http://127.0.0.1:8765/r/' in html
    assert "style=" in html and "<style" not in html  # CSS inlined
    assert _row(outbox_id).status is OutboxStatus.SENT
    with Session(db.get_engine()) as session:
        [event] = case_events(session, "saisine", 1)
    assert event.action == "mail.sent"
    assert event.payload == {
        "template": "reminder",
        "outbox_id": outbox_id,
        "contact_id": person.id,
        "message_id": message["Message-ID"],
        "attempts": 1,
    }


async def test_invitation_then_cancellation_carry_calendar_parts(
    db_url: str, smtp_server: SmtpServer
) -> None:
    owner, person = _people()
    _meeting(owner, person, 0, CalendarMethod.REQUEST)
    await drain()
    _meeting(owner, person, 1, CalendarMethod.CANCEL)
    await drain()

    invitation, cancellation = smtp_server.messages
    events = []
    for mail, method in ((invitation, "REQUEST"), (cancellation, "CANCEL")):
        part = mail.part("text/calendar")
        assert part is not None and part.get_param("method") == method
        calendar = icalendar.Calendar.from_ical(mail.calendar())
        assert calendar["METHOD"] == method
        [event] = calendar.walk("VEVENT")
        events.append(event)
        attachments = [p.get_filename() for p in mail.message.iter_attachments()]
        assert attachments == ["invitation.ics"]
    request, cancel = events
    assert str(request["UID"]) == str(cancel["UID"]) == "meeting-7@clsm.localhost"
    assert int(cancel["SEQUENCE"]) > int(request["SEQUENCE"])
    assert str(cancel["STATUS"]) == "CANCELLED"
    start = request.decoded("DTSTART")
    assert str(start.tzinfo) == "Europe/Paris"
    assert (start.hour, start.minute) == (9, 30)
    assert start == datetime(2024, 11, 12, 8, 30, tzinfo=UTC)
    assert request.decoded("DTEND") == datetime(2024, 11, 12, 10, 30, tzinfo=UTC)
    assert str(request["ORGANIZER"]) == f"mailto:{owner.coordinator_email}"
    assert str(request["ATTENDEE"]) == "mailto:elodie@chl.example"
    assert invitation.message["Subject"].startswith("Invitation : Réunion de la cellule")
    assert cancellation.message["Subject"].startswith("Annulé : Réunion de la cellule")
    assert "mardi 12 novembre 2024" in invitation.text()
    assert "de 9 h 30 à 11 h 30" in invitation.text()


async def test_temporary_refusal_is_retried_and_delivered_once(
    db_url: str, smtp_server: SmtpServer
) -> None:
    owner, person = _people()
    outbox_id = _remind(owner, person)
    smtp_server.answer("421 4.3.2 Service indisponible, réessayez")

    first = await drain()
    assert (first.sent, first.retried) == (0, 1)
    row = _row(outbox_id)
    assert row.status is OutboxStatus.PENDING and row.attempts == 1
    assert row.last_error.startswith("421")
    again = await drain()  # not yet due: backoff
    assert again.processed == 0

    _advance(timedelta(minutes=2))
    second = await drain()
    assert second.sent == 1
    assert smtp_server.data_attempts == 2
    assert len(smtp_server.messages) == 1
    assert smtp_server.messages[0].message_id == row.message_id
    assert _row(outbox_id).status is OutboxStatus.SENT
    assert (await drain()).processed == 0
    assert _actions("saisine", 1) == ["mail.sent"]


async def test_permanent_refusal_fails_tells_the_coordinator_and_stops(
    db_url: str, smtp_server: SmtpServer
) -> None:
    owner, person = _people()
    outbox_id = _remind(owner, person)
    smtp_server.refuse("elodie@chl.example", "550 5.1.1 Adresse inconnue")

    report = await drain()

    assert report.failed == 1 and report.sent == 1  # the coordinator's mail
    row = _row(outbox_id)
    assert row.status is OutboxStatus.FAILED and row.attempts == 1
    assert row.last_error == "550 5.1.1 Adresse inconnue"
    [alert] = smtp_server.messages
    assert alert.recipients == [owner.coordinator_email]
    assert alert.message["Subject"] == "Échec d'envoi d'un e-mail — Saisine 2024-07"
    assert "elodie@chl.example" in alert.text()
    assert "550 5.1.1 Adresse inconnue" in alert.text()
    assert _actions("saisine", 1) == ["mail.failed", "mail.sent"]

    _advance(timedelta(days=3))
    assert (await drain()).processed == 0  # no retry loop
    assert smtp_server.data_attempts == 1


async def test_crash_between_send_and_mark_resends_with_the_same_message_id(
    db_url: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, person = _people()
    outbox_id = _remind(owner, person)

    def crash(_outbox_id: int) -> None:
        raise RuntimeError("processus tué")

    with monkeypatch.context() as patch:
        patch.setattr(send, "mark_sent", crash)
        with pytest.raises(RuntimeError):
            await drain()
    assert len(smtp_server.messages) == 1
    assert _row(outbox_id).status is OutboxStatus.SENDING
    assert (await drain()).processed == 0  # its claim is still running

    _advance(timedelta(minutes=11))  # the claim's lease ran out
    report = await drain()
    assert report.sent == 1 and report.recovered == 1
    first, second = smtp_server.messages
    assert first.message_id == second.message_id == _row(outbox_id).message_id
    assert _row(outbox_id).status is OutboxStatus.SENT
    assert _actions("saisine", 1) == ["mail.sent"]


async def test_rolled_back_change_sends_nothing(db_url: str, smtp_server: SmtpServer) -> None:
    owner, person = _people()
    with pytest.raises(RuntimeError), db.session_scope() as session:
        enqueue(
            session=session,
            scope=CaseScope(CaseType.SAISINE, 3, owner.id, "Dossier de test"),
            to=Recipient(person.email, person.name, person.id),
            template="escalation",
            context={"clsm_id": owner.id},
            dedup_key="annulé",
        )
        raise RuntimeError("the change fails after queueing its mail")

    with Session(db.get_engine()) as session:
        assert session.exec(select(OutboxMessage)).all() == []
    assert (await drain()).processed == 0
    assert smtp_server.messages == []


async def test_connections_are_reused_and_bounded(
    db_url: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLSM_SMTP_CONCURRENCY", "2")
    get_settings.cache_clear()
    owner, person = _people()
    # three chunks of 20 (concurrency × 10): the connections are kept from one to the next
    ids = [_remind(owner, person, dedup=f"rappel-{n}", case_id=n) for n in range(1, 46)]

    report = await drain()

    assert report.sent == 45
    assert 1 <= smtp_server.connections <= 2
    assert sorted(m.message_id for m in smtp_server.messages) == sorted(
        _row(i).message_id for i in ids
    )


async def test_unreachable_server_backs_off(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = SmtpServer()  # not started yet: connection refused
    point_settings_at(monkeypatch, server)
    owner, person = _people()
    ids = [_remind(owner, person, dedup=f"r{n}", case_id=n) for n in (1, 2, 3)]

    report = await drain()

    assert report.unreachable and report.retried == 3 and report.sent == 0
    for outbox_id in ids:
        row = _row(outbox_id)
        assert row.status is OutboxStatus.PENDING and row.attempts == 1

    with server:
        _advance(timedelta(minutes=2))
        assert (await drain()).sent == 3
        assert len(server.messages) == 3


async def test_starttls_and_authentication_from_settings(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_certificate(tmp_path / "tls")
    with SmtpServer(starttls=(cert, key), auth=("clsm", "mot-de-passe")) as server:
        point_settings_at(monkeypatch, server)
        monkeypatch.setenv("CLSM_SMTP_SECURITY", "starttls")
        monkeypatch.setenv("CLSM_SMTP_CA_FILE", str(cert))
        monkeypatch.setenv("CLSM_SMTP_USERNAME", "clsm")
        monkeypatch.setenv("CLSM_SMTP_PASSWORD", "faux")
        get_settings.cache_clear()
        owner, person = _people()
        outbox_id = _remind(owner, person)

        refused = await drain()  # wrong password: the server, not the mail, is at fault
        assert refused.retried == 1 and refused.failed == 0
        assert "SMTPAuthenticationError" in _row(outbox_id).last_error

        monkeypatch.setenv("CLSM_SMTP_PASSWORD", "mot-de-passe")
        get_settings.cache_clear()
        _advance(timedelta(minutes=2))
        assert (await drain()).sent == 1
        assert server.logins == ["clsm"]
        assert len(server.messages) == 1


@pytest.mark.postgres
async def test_concurrent_drains_send_each_row_once(
    any_db_url: str, smtp_server: SmtpServer
) -> None:
    owner, person = _people()
    ids = [_remind(owner, person, dedup=f"c{n}", case_id=n) for n in range(1, 13)]

    reports = await asyncio.gather(drain(limit=5), drain(limit=5), drain(limit=5))

    assert sum(r.sent for r in reports) == 12
    assert sorted(m.message_id for m in smtp_server.messages) == sorted(
        _row(i).message_id for i in ids
    )
    assert all(_row(i).status is OutboxStatus.SENT for i in ids)


async def test_a_row_that_cannot_be_rendered_fails_and_is_reported(
    db_url: str, smtp_server: SmtpServer
) -> None:
    owner, person = _people()
    with db.session_scope() as session:
        row = enqueue(
            session=session,
            scope=CaseScope(CaseType.SAISINE, 5, owner.id, "Saisine 2024-09"),
            to=Recipient(person.email, person.name, person.id),
            template="reminder",
            context={"clsm_id": owner.id, "case_label": "Saisine 2024-09"},  # step_label...
            dedup_key="incomplet",
        )
        outbox_id = row.id
    assert outbox_id is not None

    report = await drain()

    assert report.failed == 1 and report.sent == 1
    failed = _row(outbox_id)
    assert failed.status is OutboxStatus.FAILED
    assert failed.last_error.startswith("rendu impossible : UndefinedError")
    [alert] = smtp_server.messages
    assert alert.recipients == [owner.coordinator_email]
    assert "Saisine 2024-09" in alert.message["Subject"]


async def test_hostile_names_and_addresses_cannot_write_headers(
    db_url: str, smtp_server: SmtpServer
) -> None:
    owner, person = _people(name="Élodie\r\nBcc: espion@example.org")
    good = _remind(owner, person)
    bad = _remind(owner, person, dedup="autre")
    with db.session_scope() as session:
        row = session.get(OutboxMessage, bad)
        assert row is not None
        row.recipient_email = "elodie@chl.example\r\nBcc: espion@example.org"
        session.add(row)

    report = await drain()

    assert report.sent == 2 and report.failed == 1  # the good row, and the coordinator's alert
    delivered = [m for m in smtp_server.messages if m.recipients == ["elodie@chl.example"]]
    assert len(delivered) == 1 and _row(good).status is OutboxStatus.SENT
    [mail] = delivered
    assert mail.message["Bcc"] is None
    assert mail.message["To"].addresses[0].display_name == "Élodie Bcc: espion@example.org"
    assert all("espion" not in r for m in smtp_server.messages for r in m.recipients)
    assert _row(bad).status is OutboxStatus.FAILED
    assert _row(bad).last_error.startswith("rendu impossible : ValueError: adresse e-mail invalide")


async def test_an_internationalised_domain_is_delivered(
    db_url: str, smtp_server: SmtpServer
) -> None:
    owner, person = _people()
    with db.session_scope() as session:
        stored = session.get(Contact, person.id)
        assert stored is not None
        stored.email = "elodie@département.example"
        session.add(stored)
        session.flush()
        session.expunge(stored)
    outbox_id = _remind(owner, stored)

    report = await drain()

    assert report.sent == 1 and _row(outbox_id).status is OutboxStatus.SENT
    [mail] = smtp_server.messages
    assert mail.recipients == ["elodie@xn--dpartement-b7a.example"]
    assert mail.message["To"].addresses[0].addr_spec == "elodie@xn--dpartement-b7a.example"
