"""The coordinator's pages in Chromium, with the keyboard alone: log in by typing, reach the
case list, a session's case page, its dashboard, history and report, the yearly report and
the directory; every page passes axe-core (no serious or critical violation)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta

import pytest
from playwright.sync_api import Page
from sqlmodel import select

from models.core import clock, db
from models.core.audit import case_events
from models.core.calendar import INSIST
from models.core.people import Clsm, User
from models.immersion.common import get_session
from tests.service.session_world import SessionWorld, build_session, close_session
from tests.support.browser import Person, assert_accessible
from tests.support.immersion import PARIS
from tests.support.service_kit import PASSWORD, ServiceProcess

pytestmark = pytest.mark.browser


@pytest.fixture
def world(db_url: str) -> SessionWorld:
    with db.session_scope() as session:
        return build_session(session)


@pytest.fixture
def service(db_url: str, world: SessionWorld) -> Iterator[ServiceProcess]:
    with ServiceProcess(db_url, factory="service.main:create_app") as running:
        yield running


def _follow(person: Person, name: str) -> None:
    """Tab to a link and press Enter, as a person without a mouse does."""
    link = person.page.get_by_role("link", name=name, exact=True).first
    person.tab_to(link)
    with person.page.expect_navigation():
        person.page.keyboard.press("Enter")
    assert_accessible(person.page)


def _log_in(page: Page, service: ServiceProcess, email: str) -> Person:
    page.goto(f"{service.url}/login")
    assert_accessible(page)
    person = Person(page)
    person.type("Adresse électronique", email)
    person.type("Mot de passe", PASSWORD)
    person.submit("Se connecter")
    assert_accessible(page)
    return person


def test_a_coordinator_goes_through_every_page_with_the_keyboard(
    service: ServiceProcess, world: SessionWorld, page: Page
) -> None:
    # a wrong password first: the refusal is accessible too, then the right one
    page.goto(f"{service.url}/login")
    person = Person(page)
    person.type("Adresse électronique", world.coordinator)
    person.type("Mot de passe", "pas le bon")
    person.submit("Se connecter")
    assert_accessible(page)
    person = _log_in(page, service, world.coordinator)
    page.goto(f"{service.url}/cases")
    assert_accessible(page)
    page.goto(f"{service.url}/cases/session/{world.session_id}")
    assert "Tableau de bord" in page.inner_text("main"), page.inner_text("body")[:600]
    assert_accessible(page)
    assert re.search(rf"/cases/session/{world.session_id}$", page.url)
    _follow(person, "Tableau de bord de la session")
    text = page.inner_text("main")
    assert "En retard" in text and "Liste d'attente" in text
    late_rows = page.locator("tr.late")
    assert late_rows.count() == 1
    # the wide table scrolls with the keyboard: its region takes the focus
    person.tab_to(page.get_by_role("region", name=re.compile("^Participants")))
    _follow(person, "Historique")
    _follow(person, "Bilan des saisines")
    _follow(person, "Annuaire")
    with db.session_scope() as session:
        clsm = session.get(Clsm, world.clsm_id)
        assert clsm is not None
        slug = clsm.slug
    for path in ("contacts", "structures", "conventions", "cell", "orientations", "totals"):
        page.goto(f"{service.url}/directory/{slug}/{path}")
        assert page.url.endswith(path), page.url
        assert_accessible(page)
    page.goto(f"{service.url}/directory/{slug}/contacts")
    contact = page.locator("main table a").first
    person.tab_to(contact)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/contacts/" in page.url
    assert_accessible(page)


def test_a_closed_session_dashboard_in_the_browser_offers_nothing_to_change(
    service: ServiceProcess, world: SessionWorld, page: Page
) -> None:
    with db.session_scope() as session:
        close_session(session, world.session_id)
    _log_in(page, service, world.coordinator)
    page.goto(f"{service.url}/cases/session/{world.session_id}/dashboard")
    assert_accessible(page)
    assert "lecture seule" in page.inner_text("main")
    assert page.locator("main form, main button").count() == 0
    page.goto(f"{service.url}/cases/session/{world.session_id}")
    assert page.get_by_role("button", name=re.compile("Déplacer|Annuler")).count() == 0


MEETING = "la journée de préparation"


def test_a_meeting_moved_to_a_saturday_is_refused_then_kept_by_ticking_the_box(
    service: ServiceProcess, world: SessionWorld, page: Page
) -> None:
    with db.session_scope() as session:
        today = clock.now(session).astimezone(PARIS).date()
    saturday = today + timedelta(days=14 + (5 - today.weekday()) % 7)
    start, end = (datetime.combine(saturday, time(h)) for h in (9, 17))
    person = _log_in(page, service, world.coordinator)
    page.goto(f"{service.url}/cases/session/{world.session_id}")
    form = page.locator("form", has=page.get_by_role("group", name=f"Déplacer {MEETING}"))
    person.type(f"Début de {MEETING}", f"{start:%d/%m/%Y %H:%M}")
    person.type(f"Fin de {MEETING}", f"{end:%d/%m/%Y} 17h")
    person.type(f"Lieu de {MEETING}", "Salle polyvalente, Châtellerault")
    person.tab_to(form.get_by_role("button"))
    with page.expect_navigation():
        page.keyboard.press("Enter")

    # refused in French beside the form, nothing lost: correct by ticking the box
    alert = page.get_by_role("alert")
    assert "Déplacement refusé" in alert.inner_text() and "week-end" in alert.inner_text()
    assert_accessible(page)
    assert person.value(f"Début de {MEETING}") == f"{start:%d/%m/%Y %H:%M}"
    assert person.value(f"Fin de {MEETING}") == f"{end:%d/%m/%Y} 17h"
    assert person.value(f"Lieu de {MEETING}") == "Salle polyvalente, Châtellerault"
    with db.session_scope() as session:
        before = get_session(session, world.session_id).preparation_at.astimezone(PARIS)
    assert before.replace(tzinfo=None) != start  # nothing changed
    insist = form.get_by_label(INSIST)
    person.tab_to(insist)
    page.keyboard.press("Space")
    assert insist.is_checked()
    person.tab_to(form.get_by_role("button"))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_role("alert").count() == 0
    assert re.search(rf"/cases/session/{world.session_id}$", page.url)
    with db.session_scope() as session:
        row = get_session(session, world.session_id)
        assert row.preparation_at.astimezone(PARIS).replace(tzinfo=None) == start
        assert row.preparation_place == "Salle polyvalente, Châtellerault"
        events = case_events(session, "session", world.session_id)
        moved = [e for e in events if e.action == "meeting.moved"]
        coordinator = session.exec(select(User).where(User.email == world.coordinator)).one()
    assert len(moved) == 1  # the refused attempt left nothing
    assert moved[0].actor_ref == f"user:{coordinator.id}"
    assert moved[0].actor_label == coordinator.name
