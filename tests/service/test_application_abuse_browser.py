"""A coordinator, in Chromium with the keyboard, goes from the session's case page to its
page of abusive applications, sees a refused burst, flags an application by typing a reason
and purges it; every page passes axe-core."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page
from sqlmodel import select

from models.core import db
from models.core.links import find_link
from models.immersion.abuse import record_refused
from models.immersion.states import ApplicationStatus
from models.immersion.tables import Application
from tests.service.abuse_world import AbuseWorld, application, build_abuse_world
from tests.service.session_world import answer
from tests.support.browser import Person, assert_accessible
from tests.support.service_kit import PASSWORD, ServiceProcess

pytestmark = pytest.mark.browser


@pytest.fixture
def world(db_url: str) -> AbuseWorld:
    with db.session_scope() as session:
        built = build_abuse_world(session)
        call = find_link(session, built.calls["ccas.example"])
        assert call is not None and call.id is not None
        for n in (1, 2):
            answer(session, call.id, application(n))
        session.commit()
        for _ in range(3):  # a burst refused by the limits, from one sender
            record_refused(session=session, link=call, address="203.0.113.7")
    return built


@pytest.fixture
def service(db_url: str, world: AbuseWorld) -> Iterator[ServiceProcess]:
    with ServiceProcess(db_url, factory="service.main:create_app") as running:
        yield running


def _statuses(session_id: int) -> dict[int, ApplicationStatus]:
    with db.session_scope() as session:
        rows = session.exec(select(Application).where(Application.session_id == session_id))
        return {a.number: a.status for a in rows}


def test_a_coordinator_flags_and_purges_an_abusive_application(
    service: ServiceProcess, world: AbuseWorld, page: Page
) -> None:
    page.goto(f"{service.url}/login")
    person = Person(page)
    person.type("Adresse électronique", world.coordinator)
    person.type("Mot de passe", PASSWORD)
    person.submit("Se connecter")
    page.goto(f"{service.url}/cases/session/{world.session_id}")
    link = page.get_by_role("link", name="Candidatures abusives", exact=True)
    person.tab_to(link)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/cases/session/{world.session_id}/abuse")
    assert_accessible(page)
    text = page.inner_text("main")
    assert "3 candidatures refusées" in text and "Aucune candidature signalée" in text
    assert "203.0.113.7" not in page.content()  # only the keyed hash of the address
    person.type("Motif du signalement (n°2)", "Publicité pour un site d'arnaque")
    person.submit("Signaler la candidature n°2 comme abusive")
    assert_accessible(page)
    flagged = page.get_by_role("table", name="1 candidature signalée")
    assert "Publicité pour un site d'arnaque" in flagged.inner_text()
    assert "victime2@ailleurs.example" in flagged.inner_text()
    person.submit("Effacer la candidature n°2")
    assert_accessible(page)
    flagged = page.get_by_role("table", name="1 candidature signalée")
    assert "effacée (abus)" in flagged.inner_text() and "Personne effacée" in flagged.inner_text()
    assert "victime2@ailleurs.example" not in page.content()
    assert page.get_by_role("button", name="Effacer la candidature n°2").count() == 0
    assert _statuses(world.session_id) == {
        1: ApplicationStatus.SUBMITTED,
        2: ApplicationStatus.PURGED,
    }
    # the history names the coordinator who purged it
    for action, label in (
        ("application.purged", "candidature abusive effacée"),
        ("personal-data.erased", "effacement des données personnelles"),
    ):
        page.goto(f"{service.url}/cases/session/{world.session_id}/history?action={action}")
        history = page.inner_text("main")
        assert label in history and world.coordinator_name in history, history[-600:]
