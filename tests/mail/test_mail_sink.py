"""The local sink of `make up`: mails drained to it are readable with `clsm mail list/show`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.core import db
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.outbox import CalendarMethod, CalendarPart, Recipient, enqueue
from models.core.settings import get_settings
from notifications.send import drain
from notifications.sink import start_sink
from service.cli import app
from tests import factories
from tests.support.env import free_port


@pytest.mark.asyncio(loop_scope="session")
async def test_drained_mails_are_listed_and_shown_by_the_cli(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    sink_dir = tmp_path / "mail"
    monkeypatch.setenv("CLSM_SMTP_PORT", str(port))
    monkeypatch.setenv("CLSM_SINK_DIR", str(sink_dir))
    get_settings.cache_clear()
    with db.session_scope() as session:
        owner = factories.clsm(session, name="CLSM de Poitiers")
        org = factories.organisation(session, owner, "Ekidom")
        person = factories.contact(session, org, name="Léa Lambert", email="lea@ekidom.example")
        enqueue(
            session=session,
            scope=CaseScope(CaseType.MEETING, 1, owner.id, "Réunion de la cellule"),
            to=Recipient(person.email, person.name, person.id),
            template="meeting_invitation",
            context={"clsm_id": owner.id, "case_label": "Réunion de la cellule"},
            dedup_key="invitation",
            calendar=CalendarPart(
                uid="meeting-1@clsm.localhost",
                sequence=0,
                method=CalendarMethod.REQUEST,
                summary="Réunion de la cellule",
                start="2024-12-03T14:00:00+01:00",
                end="2024-12-03T16:00:00+01:00",
            ),
        )
    sink = start_sink(sink_dir, "127.0.0.1", port)
    try:
        assert (await drain()).sent == 1
    finally:
        sink.stop()

    runner = CliRunner()
    listing = runner.invoke(app, ["mail", "list"])
    assert listing.exit_code == 0, listing.output
    assert "lea@ekidom.example" in listing.output
    assert "Invitation : Réunion de la cellule — mardi 3 décembre 2024" in listing.output
    mail_id = listing.output.split()[0]

    shown = runner.invoke(app, ["mail", "show", mail_id])
    assert shown.exit_code == 0, shown.output
    assert "Subject: Invitation : Réunion de la cellule" in shown.output
    assert "Message-ID: <outbox-1-" in shown.output
    assert "Bonjour Léa Lambert," in shown.output
    assert "de 14 h à 16 h" in shown.output
    assert "[invitation agenda jointe]" in shown.output


def test_the_sink_page_keeps_a_link_whole_and_outside_its_parenthesis(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first link of a mail, written "(https://…)", used to end with ")": a 404."""
    from email.message import EmailMessage

    from fastapi.testclient import TestClient

    from service.main import create_app

    sink_dir = tmp_path / "mail"
    sink_dir.mkdir()
    monkeypatch.setenv("CLSM_SINK_DIR", str(sink_dir))
    get_settings.cache_clear()
    message = EmailMessage()
    message["Subject"] = "Votre réponse est attendue"
    message["To"] = "lea@ekidom.example"
    message.set_content(
        "Répondez (http://127.0.0.1:8000/r/Ab_c-1). Le guide : https://clsm.example/aide_(v2), "
        "ou https://clsm.example/faq.\n"
    )
    (sink_dir / "000001.eml").write_bytes(bytes(message))
    with TestClient(create_app()) as client:
        html = client.get("/dev/mails/1").text
    assert '<a href="http://127.0.0.1:8000/r/Ab_c-1">http://127.0.0.1:8000/r/Ab_c-1</a>).' in html
    assert '<a href="https://clsm.example/aide_(v2)">https://clsm.example/aide_(v2)</a>,' in html
    assert '<a href="https://clsm.example/faq">https://clsm.example/faq</a>.' in html
