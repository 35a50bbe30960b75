"""The saisine's pages typed with the keyboard in Chromium: the coordinator types the
description (refused, then corrected: what was typed is kept), partners answer the
consultation (an empty answer refused, the link still usable), and the coordinator reads
the saisine's page; every page passes axe-core."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.sync_api import Page
from sqlmodel import Session, select

from models.core import db
from models.core.audit import Actor
from models.core.enums import CaseType, Channel, Role
from models.core.links import link_token
from models.saisine.common import consultations
from models.saisine.intake import open_saisine
from models.saisine.level1 import CONSULTATION_STEP, consult_partners
from models.saisine.states import SaisineStatus
from models.saisine.tables import Saisine
from tests import factories
from tests.support.browser import Person, assert_accessible, labelled
from tests.support.saisine import build_cell, intake, link_of
from tests.support.service_kit import PASSWORD, ServiceProcess

pytestmark = pytest.mark.browser

COORD = Actor.user(1, "Inès Moreau (coordination)", Channel.PREFECT_UI)
DIFFICULTY = (
    "Locataire isolée, impayés depuis six mois ; elle refuse les visites et le voisinage "
    "signale des cris la nuit. Sa fille, inquiète, a appelé le bailleur à deux reprises."
)
NOTE = "La personne ne répond ni au téléphone ni aux courriers."


@pytest.fixture
def service(db_url: str) -> Iterator[ServiceProcess]:
    with ServiceProcess(db_url) as running:
        yield running


def test_the_saisine_typed_by_the_coordinator_then_answered_by_partners(
    db_url: str, service: ServiceProcess, page: Page
) -> None:
    with db.session_scope() as session:
        cell = build_cell(session)
        coordinator = factories.user(session, cell.clsm, Role.COORDINATOR, PASSWORD)
        saisine = open_saisine(
            session=session,
            intake=replace(intake(), description=None),
            actor=COORD,
            flow_run_id="00000000-0000-4000-8000-000000000002",
        )
        # (no run waits here: waking one is the HTTP test's and the Prefect test's part)
        assert saisine.id is not None
        saisine_id = saisine.id

    # the alert mail's link: the login first, then the description page
    page.goto(f"{service.url}/saisines/{saisine_id}/description")
    person = Person(page)
    person.type("Adresse électronique", coordinator.email)
    person.type("Mot de passe", PASSWORD)
    person.submit("Se connecter")
    assert re.search(rf"/saisines/{saisine_id}/description$", page.url), page.url
    assert_accessible(page)
    consent = "La personne a consenti à ce que sa situation soit évoquée"
    assert not page.get_by_label(consent).is_checked()  # nothing preset
    person.type("Initiales de la personne concernée", "m.d.")
    age = page.get_by_label(labelled("Tranche d'âge"))
    person.tab_to(age)
    page.keyboard.type("61")  # a select list, chosen by typing its first characters
    assert age.input_value() == "61-75 ans"
    person.type("Commune", "Châtellerault")
    person.type("Difficulté rencontrée", DIFFICULTY)
    person.submit("Enregistrer la description")
    # no consent and no reason: refused, the reason beside the field, the text kept
    assert "La description n'a pas pu être enregistrée" in page.inner_text("main")
    reason = "Sinon, pourquoi le consentement n'a pu être recueilli"
    assert "indiquez pourquoi" in person.error_of(reason)
    assert person.value("Difficulté rencontrée") == DIFFICULTY
    assert person.value("Commune") == "Châtellerault"
    assert_accessible(page)
    person.type(reason, NOTE)
    person.submit("Enregistrer la description")
    assert re.search(rf"/saisines/{saisine_id}$", page.url), page.url
    main = page.inner_text("main")
    assert "M.D." in main and "Châtellerault" in main and NOTE in main
    assert_accessible(page)

    with db.session_scope() as session:
        saisine = session.get(Saisine, saisine_id)
        assert saisine is not None and saisine.status is SaisineStatus.LEVEL1
        consult_partners(
            session=session,
            saisine=saisine,
            organisation_ids=[cell.org_id("CCAS"), cell.org_id("CHL")],
            actor=COORD,
        )
        ccas = link_of(
            session,
            CaseType.SAISINE,
            saisine_id,
            CONSULTATION_STEP.name,
            cell.contacts["CCAS"].id or 0,
        )
        chl = link_of(
            session,
            CaseType.SAISINE,
            saisine_id,
            CONSULTATION_STEP.name,
            cell.contacts["CHL"].id or 0,
        )

    # a partner sends the consultation empty: refused, the link still answers
    page.goto(f"{service.url}/r/{link_token(ccas)}")
    assert "Châtellerault" in page.inner_text("main")  # the description, on the page only
    assert "propose une orientation" in page.inner_text("main")  # what happens next
    assert_accessible(page)
    person = Person(page)
    question = "Connaissez-vous cette situation ?"
    person.submit("Envoyer ma réponse")
    assert person.group_error(question) == "Choisissez une réponse."
    assert_accessible(page)
    page.goto(f"{service.url}/r/{link_token(ccas)}")  # still usable
    person.choose(question, "oui")
    person.type("Ce que votre structure peut proposer", "Visite conjointe possible jeudi à 14 h.")
    person.submit("Envoyer ma réponse")
    assert "Merci" in page.inner_text("main")
    assert_accessible(page)
    page.goto(f"{service.url}/r/{link_token(chl)}")
    person.choose(question, "non")
    person.submit("Envoyer ma réponse")
    assert "Merci" in page.inner_text("main")

    # the coordinator's page: the answers, and nobody awaited any more for the consultation
    page.goto(f"{service.url}/saisines/{saisine_id}")
    main = page.inner_text("main")
    assert "Visite conjointe possible jeudi à 14 h." in main
    assert "Référent CHL" in main and "répondue" in main
    assert "réponse à la consultation" not in main
    assert_accessible(page)
    with Session(db.get_engine()) as session:
        saisine = session.exec(select(Saisine).where(Saisine.id == saisine_id)).one()
        answers = sorted(c.knows_situation for c in consultations(session, saisine))
    assert answers == [False, True]
