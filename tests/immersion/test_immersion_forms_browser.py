"""The coordinator's immersion forms in the Prefect UI, used as a person would in Chromium.

The demo session (24 applications for 16 places, five binômes proposed from crossed wishes)
waits on its selection form. Its coordinator logs in at the service, opens the form through
the gateway and edits it: one proposed binôme changed, in its select, into two people of the
same structure, a binôme added, a comment typed. The run refuses it and asks again with the
French reason on top and everything she chose or typed still there; she removes the wrong
line and submits. The test reads the screen, then the database: the selection and the
declared binômes recorded, nothing of the refused answer, her name on every decision.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest
from playwright.sync_api import Browser, Locator, Page
from sqlmodel import select

from models.core import db
from models.core.audit import case_events
from models.immersion.common import applications, get_session
from models.immersion.states import ApplicationStatus, SessionStatus
from models.immersion.tables import ImmersionSession
from tests.saisine.test_saisine_forms_browser import Coordinator, prop, text_of
from tests.support.browser import open_prefect_ui
from tests.support.env import TMP
from tests.support.prefect_stack import PrefectStack, run_env
from tests.support.service_kit import ServiceProcess

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

COORDINATOR = "Hélène Garnier (coordination)"
AMELIE, BRUNO = "n° 1 — Amélie Garnier (CCAS)", "n° 2 — Bruno Chevalier (CHL)"
DAVID, EMMA = "n° 4 — David Faure (CHL)", "n° 5 — Emma Blanc (UDAF)"
GAELLE, HELENE = "n° 7 — Gaëlle Perrin (Ekidom)", "n° 8 — Hélène Morel (CHL)"
PAULINE = "n° 16 — Pauline Lemoine (UDAF)"
COMMENT = "Binômes revus avec l'équipe d'animation ; Emma et Gaëlle se connaissent déjà."


# -- the "Binômes" list of the form: one line of two selects per binôme ------------------------
def pair_lines(form: Page) -> Locator:
    return prop(form, "Binômes").locator(".p-draggable-list__item")


def person(line: Locator, label: str) -> Locator:
    """The select "Personne" or "En binôme avec" of one binôme line."""
    field = line.locator(".schema-form-property").filter(
        has=line.page.get_by_text(label, exact=True)
    )
    return field.locator("select").first


def shown(line: Locator) -> tuple[str, str]:
    return person(line, "Personne").input_value(), person(line, "En binôme avec").input_value()


def choose(line: Locator, first: str, second: str) -> None:
    person(line, "Personne").select_option(label=first)
    person(line, "En binôme avec").select_option(label=second)


def remove(line: Locator) -> None:
    """The line's bin button (the first button beside the line; the second opens its menu)."""
    line.locator(".schema-form-property-array-item__control > button").first.click()


# -- the database ---------------------------------------------------------------------------
def pairs_recorded(row_id: int) -> dict[int, int]:
    with db.session_scope() as session:
        return {
            a.number: next(b.number for b in applications(session, row_id) if b.id == pair)
            for a in applications(session, row_id)
            if (pair := a.pair_application_id) is not None
        }


def status_of(row_id: int) -> SessionStatus:
    with db.session_scope() as session:
        return get_session(session, row_id).status


def _answer_the_selection(page: Page, me: Coordinator, row_id: int) -> None:
    form = me.form()
    lines = pair_lines(form)
    assert lines.count() == 5  # the binômes proposed from crossed wishes, one line each
    assert shown(lines.nth(0)) == (AMELIE, HELENE)
    assert shown(lines.nth(1)) == (DAVID, PAULINE)
    # David's binôme changed to Bruno (both CHL), a binôme added, a comment typed
    person(lines.nth(1), "En binôme avec").select_option(label=BRUNO)
    prop(form, "Binômes").get_by_role("button", name="Add item").click()
    assert lines.count() == 6
    choose(lines.nth(5), EMMA, GAELLE)
    text_of(form, "Commentaire (facultatif)").click()
    page.keyboard.type(COMMENT)
    me.send("binôme d'une même structure")

    # refused: asked again with the French reason on top, every choice and the comment kept
    form = me.form()
    assert me.refusal() == (
        f"Saisie refusée : binômes refusés : binôme « {DAVID} » et « {BRUNO} » : "
        "ils viennent de la même structure"
    )
    lines = pair_lines(form)
    assert lines.count() == 6
    assert shown(lines.nth(0)) == (AMELIE, HELENE)
    assert shown(lines.nth(1)) == (DAVID, BRUNO)
    assert shown(lines.nth(5)) == (EMMA, GAELLE)
    assert text_of(form, "Commentaire (facultatif)").input_value() == COMMENT
    assert status_of(row_id) is SessionStatus.SELECTION
    assert pairs_recorded(row_id) == {}  # nothing of the refused answer was kept

    # corrected: the wrong line removed, the rest submitted as it stands
    remove(lines.nth(1))
    assert lines.count() == 5
    assert [shown(lines.nth(i))[0] for i in (0, 4)] == [AMELIE, EMMA]
    me.send("sélection")


def test_the_coordinator_corrects_a_refused_selection_in_the_browser(
    prefect_stack: PrefectStack, db_url: str, browser: Browser
) -> None:
    from service.demo import DEMO_PASSWORD, load_demo, load_immersion_demo

    load_demo()
    with ThreadPoolExecutor(1) as pool:  # (its own event loop: Playwright's runs in this thread)
        pool.submit(load_immersion_demo, run_env(db_url)).result()
    with db.session_scope() as session:
        row = session.exec(select(ImmersionSession)).one()
        assert row.flow_run_id is not None and row.id is not None
        run_id, row_id = UUID(row.flow_run_id), row.id
    with ServiceProcess(db_url) as service:
        page = open_prefect_ui(
            browser,
            service.url,
            "coordination@clsm-poitiers.example",
            f"/runs/flow-run/{run_id}",
            DEMO_PASSWORD,
            locale="fr-FR",
        )
        me = Coordinator(page, run_id)
        try:
            _answer_the_selection(page, me, row_id)
        except BaseException:
            page.screenshot(path=str(TMP / "immersion-forms-failure.png"), full_page=True)
            raise
        page.close()

    deadline = time.monotonic() + 120
    while status_of(row_id) is SessionStatus.SELECTION and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status_of(row_id) is SessionStatus.PLACEMENT
    with db.session_scope() as session:
        statuses = [a.status for a in applications(session, row_id)]
        events = case_events(session, "session", row_id)
    assert statuses.count(ApplicationStatus.SELECTED) == 16
    assert statuses.count(ApplicationStatus.WAITLISTED) == 8
    # the four proposed binômes kept, Emma and Gaëlle's added, David and Pauline's removed
    assert pairs_recorded(row_id) == {
        a: b for x, y in ((1, 8), (3, 24), (6, 12), (9, 18), (5, 7)) for a, b in ((x, y), (y, x))
    }
    by_action = {e.action: e for e in events if e.channel == "prefect-ui"}
    assert by_action["form.refused"].actor_label == COORDINATOR
    assert "même structure" in by_action["form.refused"].payload["error"]
    declared = by_action["pairs.declared"]
    assert declared.actor_label == COORDINATOR
    assert sorted(declared.payload["pairs"]) == sorted(
        ["n° 1 et n° 8", "n° 3 et n° 24", "n° 6 et n° 12", "n° 9 et n° 18", "n° 5 et n° 7"]
    )
    decided = [e for e in events if e.channel == "prefect-ui"]
    assert {e.actor_label for e in decided} == {COORDINATOR}  # every decision names her
