"""A coordinator keeps the network directory in a real Chromium, typing as a person does:
create a structure, edit it while a colleague's older page is still open (409), deactivate
it; every form control of the directory pages has a label."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from models.core import db
from models.core import directory as d
from models.core.audit import case_events
from models.core.enums import CaseType
from tests.support.browser import chromium
from tests.support.service_kit import PASSWORD, ServiceProcess, World, build_world

pytestmark = pytest.mark.browser

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.type !== 'hidden')
  .filter(el => el.tagName === 'BUTTON'
      ? !el.textContent.trim()
      : !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML)"""


@pytest.fixture
def world(db_url: str) -> World:
    with db.session_scope() as session:
        return build_world(session)


def test_a_coordinator_creates_edits_and_deactivates_a_structure(db_url: str, world: World) -> None:
    from playwright.sync_api import Page, expect

    checked: list[str] = []

    def labelled(page: Page) -> None:
        assert page.evaluate(UNLABELLED) == [], page.url
        assert page.locator("h1").count() == 1
        assert page.locator("html").get_attribute("lang") == "fr"
        checked.append(page.url)

    with ServiceProcess(db_url) as service, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{service.url}/directory")
        page.get_by_label("Adresse électronique").fill(world.coordinator.email)
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        expect(page.get_by_role("heading", name=f"Annuaire — {world.clsm_a.name}")).to_be_visible()
        labelled(page)

        page.get_by_role("link", name="Nouvelle structure").click()
        labelled(page)
        page.get_by_label("Nom de la structure").fill("Un chez Soi d'Abord")
        page.get_by_label("Autres noms (alias)").fill("UCSD\nUn Chez-Soi Niort")
        page.get_by_label("Catégorie").select_option(label="association")
        page.get_by_label("Membre permanent de la cellule").check()
        page.get_by_label("Rang dans la rotation des réunions").fill("0")
        page.get_by_role("button", name="Créer la structure").click()
        expect(page.get_by_text("Le formulaire contient 1 erreur")).to_be_visible()
        expect(page.locator("#rotation_order-erreur")).to_have_text(
            "La valeur doit être supérieure ou égale à 1."
        )
        expect(page.get_by_label("Nom de la structure")).to_have_value("Un chez Soi d'Abord")
        labelled(page)
        page.get_by_label("Rang dans la rotation des réunions").fill("1")
        page.get_by_role("button", name="Créer la structure").click()
        expect(page.get_by_role("status")).to_have_text("Enregistré.")
        edit_url = page.url.split("?")[0]

        # a colleague opened the same structure before the change below
        colleague = browser.new_page()
        colleague.context.add_cookies(page.context.cookies())
        colleague.goto(edit_url)

        page.get_by_label("Adresse").fill("12 rue de la Gare, 79000 Niort")
        page.get_by_role("button", name="Enregistrer les modifications").click()
        expect(page.get_by_role("status")).to_have_text("Modifications enregistrées.")

        colleague.get_by_label("Adresse").fill("Ailleurs")
        colleague.get_by_role("button", name="Enregistrer les modifications").click()
        expect(colleague.get_by_role("heading", name="Opération impossible")).to_be_visible()
        expect(
            colleague.get_by_text("a été modifié entre-temps par quelqu'un d'autre")
        ).to_be_visible()

        page.reload()
        expect(page.get_by_label("Adresse")).to_have_value("12 rue de la Gare, 79000 Niort")
        labelled(page)
        page.get_by_role("button", name="Désactiver la structure").click()
        expect(page.get_by_role("status")).to_contain_text("Structure désactivée")
        expect(page.get_by_role("button", name="Réactiver la structure")).to_be_visible()

        page.get_by_role("link", name="Structures").click()
        page.get_by_label("Rechercher une structure (nom, nom court ou alias)").fill("ucsd")
        page.get_by_role("button", name="Rechercher").click()
        row = page.get_by_role("row").filter(has_text="Un chez Soi d'Abord")
        expect(row).to_contain_text("désactivée")
        for name in (
            "Contacts",
            "Conventions",
            "Cellule",
            "Orientations",
            "Années passées",
            "Importer",
        ):
            page.get_by_role("navigation", name="Annuaire du CLSM").get_by_role(
                "link", name=name
            ).click()
            labelled(page)
        page.get_by_role("navigation", name="Annuaire du CLSM").get_by_role(
            "link", name="Orientations"
        ).click()
        page.get_by_label("Libellé de l'orientation").fill("Orientation vers le DAC-PTA")
        page.get_by_role("button", name="Ajouter").click()
        page.get_by_label("Nouveau libellé pour « Orientation vers le DAC-PTA »").fill(
            "Orientation vers le DAC"
        )
        page.get_by_role("button", name="Renommer").click()
        expect(page.get_by_role("row").filter(has_text="Orientation vers le DAC")).to_contain_text(
            "proposée"
        )
        labelled(page)
    assert len(checked) >= 9
    assert world.clsm_a.id is not None
    with Session(db.get_engine()) as session:
        actions = [
            (e.action, e.actor_label)
            for e in case_events(session, CaseType.CLSM.value, world.clsm_a.id)
        ]
        structure = d.match_structure(
            session=session,
            clsm_id=world.clsm_a.id,
            name="Un Chez-Soi Niort",
            include_inactive=True,
        ).found
    assert structure is not None and not structure.active
    assert structure.address == "12 rue de la Gare, 79000 Niort"
    who = world.coordinator.name
    assert actions == [
        ("directory.structure.created", who),
        ("directory.structure.updated", who),
        ("directory.structure.deactivated", who),
        ("directory.orientation.created", who),
        ("directory.orientation.renamed", who),
    ]
