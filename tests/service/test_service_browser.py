"""A real Chromium: a partner answers from the link of a mail, an auditor reads the history."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from sqlmodel import Session

from models.catalogue import CASE_KINDS, STEP_KINDS
from models.core import db
from models.core.audit import case_events
from models.core.enums import CaseType
from notifications.sink import list_mails, start_sink
from tests.support.env import free_port
from tests.support.service_kit import (
    PASSWORD,
    PROBE_STEP,
    STEP,
    TEST_CASES,
    ServiceProcess,
    World,
    build_world,
    new_link,
)

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setitem(STEP_KINDS, STEP, PROBE_STEP)
    monkeypatch.setitem(CASE_KINDS, CaseType.SESSION, TEST_CASES)
    with db.session_scope() as session:
        return build_world(session)


def _mail_the_link(sink_port: int, to: str, url: str) -> None:
    message = EmailMessage()
    message["From"] = "CLSM <no-reply@clsm.localhost>"
    message["To"] = to
    message["Subject"] = "Dossier de test n°101 : votre réponse est attendue"
    message.set_content(f"Bonjour,\n\nRépondez en suivant ce lien personnel :\n{url}\n\nMerci.")
    asyncio.run(aiosmtplib.send(message, hostname="127.0.0.1", port=sink_port))


def test_partner_answers_from_the_mail_and_auditor_reads_the_history(
    db_url: str, world: World, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    sink_dir = tmp_path / "mail"
    sink_port = free_port()
    sink = start_sink(sink_dir, "127.0.0.1", sink_port)
    with db.session_scope() as session:
        token = new_link(session, world)
    try:
        with ServiceProcess(db_url, CLSM_SINK_DIR=str(sink_dir)) as service:
            _mail_the_link(sink_port, world.contact.email, f"{service.url}/r/{token}")
            received = list_mails(sink_dir)
            assert len(received) == 1
            link = re.search(r"http://\S+/r/\S+", received[0].text())
            assert link is not None
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                page = browser.new_page()

                # the partner opens the mail in the local sink and follows its link
                page.goto(f"{service.url}/dev/mails")
                page.get_by_role("link", name=re.compile("votre réponse est attendue")).click()
                page.get_by_role("link", name=link.group(0)).click()
                expect(page.get_by_role("heading", name="Étape de test")).to_be_visible()
                page.get_by_label("Nombre de places").fill("25")
                page.get_by_role("group", name="Participation").get_by_label("oui").check()
                page.get_by_label("Je confirme ma disponibilité").check()
                page.get_by_label("Commentaire").fill("Deux bureaux disponibles")
                page.get_by_role("button", name="Envoyer ma réponse").click()

                expect(page.get_by_text("Le formulaire contient 1 erreur")).to_be_visible()
                expect(page.locator("#places-erreur")).to_have_text(
                    "La valeur doit être inférieure ou égale à 20."
                )
                expect(page.get_by_label("Commentaire")).to_have_value("Deux bureaux disponibles")
                expect(page.get_by_label("Je confirme ma disponibilité")).to_be_checked()
                page.get_by_label("Nombre de places").fill("3")
                page.get_by_role("button", name="Envoyer ma réponse").click()
                expect(
                    page.get_by_text("Merci, votre réponse (3 place(s)) est enregistrée.")
                ).to_be_visible()

                # an auditor logs in and reads the case's history
                page.goto(f"{service.url}/cases/session/{world.case_a}/history")
                expect(page).to_have_url(re.compile(r"/login\?next="))
                page.get_by_label("Adresse électronique").fill(world.auditor.email)
                page.get_by_label("Mot de passe").fill(PASSWORD)
                page.get_by_role("button", name="Se connecter").click()
                expect(page.get_by_text("Chaîne d'audit intègre")).to_be_visible()
                answer = page.get_by_role("row").filter(has_text="probe.ready")
                expect(answer).to_contain_text("Camille Partenaire")
                expect(answer).to_contain_text("lien")
                expect(answer).to_contain_text("Deux bureaux disponibles")
                browser.close()
    finally:
        sink.stop()
    with Session(db.get_engine()) as session:
        reads = [
            e
            for e in case_events(session, CaseType.SESSION.value, world.case_a)
            if e.action == "history.read"
        ]
    assert [(e.actor_label, e.channel) for e in reads] == [(world.auditor.name, "service")]


def test_the_api_documentation_renders_from_the_service_alone(db_url: str) -> None:
    """/docs works with no network: every asset comes from the service, no CSP violation."""
    from tests.support.browser import chromium

    with ServiceProcess(db_url) as service, chromium() as browser:
        page = browser.new_page()
        outside: list[str] = []
        problems: list[str] = []
        page.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith(service.url) else None,
        )
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        response = page.goto(f"{service.url}/docs")
        assert response is not None and response.status == 200
        csp = response.headers["content-security-policy"]
        assert "http" not in csp and "'unsafe-inline'" not in csp.split("script-src")[1]
        page.get_by_text("Enregistrer la réponse d'une étape").first.wait_for(timeout=20_000)
        assert page.locator(".opblock").count() >= 10  # the operations of the schema
        assert outside == [] and problems == []
