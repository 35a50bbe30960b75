"""The coordinator's saisine forms in the Prefect UI, used as a person would in a real browser.

One saisine, through the coordinator's first forms of the saisine flow: the partners to
consult (none refused, then two picked in the multiselect) and the orientation (400 days of
follow-up refused, the typed text kept, then the select changed to escalate to level 2).
The coordinator clicks, types and picks in the browser; the test reads the screen, the
database and the mail that reaches the partners' inbox. (The later forms, meeting to
closure, are on branch saisine-forms-browser-next: not yet passing.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Locator, Page
from sqlmodel import Session, select

from models.core import clock, db
from models.core.links import StepLink
from models.saisine.common import orientations
from models.saisine.states import SaisineStatus, Step
from tests.immersion.test_prefect_ui import _sync
from tests.saisine.test_saisine_flow import (
    answer_as_the_service,
    describe_as_the_coordinator,
    intake_parameters,
    moved_on,
    setup_cell,
    the_saisine,
)
from tests.support.browser import account, open_prefect_ui
from tests.support.env import TMP
from tests.support.prefect_stack import (
    PrefectStack,
    form_schema,
    run,
    run_env,
    state_of,
    wait_for_state,
)
from tests.support.service_kit import ServiceProcess
from tests.support.smtp import ReceivedMail, SmtpServer

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 12, 7, 9, 0, tzinfo=PARIS)  # a Monday
WHO_ACTS = "Équipe mobile psychiatrie-précarité (EMPP) et CCAS de Poitiers"
DETAIL = (
    "Visite conjointe à domicile proposée après l'échange avec le bailleur ; la personne "
    "accepte d'être rencontrée à la Maison des solidarités, en présence de sa sœur. " * 3
).strip()


def _advance_to(moment: datetime) -> None:
    with db.session_scope() as session:
        clock.set_offset(session=session, delta=moment - datetime.now(UTC))


# -- the Prefect UI's schema form, as a person uses it ------------------------------------------
def _label(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}( \(Optional\))?\s*$")


def prop(scope: Page | Locator, label: str) -> Locator:
    """The form's property whose label reads `label` (the innermost one)."""
    return scope.locator(".schema-form-property").filter(has=scope.get_by_text(_label(label))).last


def pick(page: Page, scope: Page | Locator, label: str, *options: str) -> None:
    """Choose in the select of `label`: a single select is the browser's own <select>; a
    multiselect is Prefect's list, opened and clicked option by option (then Escape)."""
    native = prop(scope, label).locator("select")
    if len(options) == 1 and native.count():
        native.first.select_option(label=options[0])
        return
    # (seen on screen: the multiselect reads "0 selected"; its control is not a p-select-button)
    prop(scope, label).locator(
        ".p-select-button__control, [role=combobox], .p-select"
    ).first.click()
    for option in options:
        # the custom list's option (a single select also holds a hidden native <option>)
        page.get_by_role("option", name=option, exact=True).filter(visible=True).first.click()
    if len(options) != 1 or prop(scope, label).locator(".p-tag, .p-tag-wrapper").count():
        page.keyboard.press("Escape")


def text_of(scope: Page | Locator, label: str) -> Locator:
    return prop(scope, label).locator("textarea, input").first


def open_form(page: Page, run_id: UUID) -> None:
    """The run's page, the Resume button, the form once there."""
    page.goto(re.sub(r"/runs/flow-run/.*", f"/runs/flow-run/{run_id}", page.url))
    page.get_by_role("button", name=re.compile("Resume", re.I)).first.click(timeout=90_000)
    page.locator(".schema-form-property").first.wait_for(timeout=60_000)


def submit(page: Page, left: Callable[[], bool], name: str) -> None:
    """Submit, then wait until the run left its pause (a lost click is clicked again)."""
    button = page.get_by_role("button", name=re.compile("^Submit$", re.I)).last
    for _attempt in range(3):
        if button.is_visible():
            button.click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if left():
                return
            page.wait_for_timeout(500)
    page.screenshot(path=str(TMP / f"saisine-form-{name}.png"))
    shown = " ".join(page.inner_text("body").split())[:800]
    raise AssertionError(f"{name}: the run stayed paused; page: {shown}")


class Coordinator:
    """The coordinator's browser on one run, answering its forms one after the other."""

    def __init__(self, page: Page, run_id: UUID) -> None:
        self.page = page
        self.run_id = run_id
        self.paused = _sync(wait_for_state(run_id, "PAUSED"))

    def form(self) -> Page:
        open_form(self.page, self.run_id)
        return self.page

    def send(self, name: str, *states: str) -> None:
        paused = self.paused
        submit(self.page, lambda: _sync(state_of(self.run_id)).id != paused.id, name)
        self.paused = _sync(moved_on(self.run_id, paused, *(states or ("PAUSED",))))

    def until_form(self, field: str) -> None:
        """Wait until the run shows the form that has `field` (partners' answers, a tick)."""
        deadline = time.monotonic() + 240
        while field not in _sync(form_schema(self.run_id, timeout=120)).get("properties", {}):
            assert time.monotonic() < deadline, f"no form with {field}"
            time.sleep(1)
        self.paused = _sync(state_of(self.run_id))

    def refusal(self) -> str:
        """The French reason the form shows on top after a refused answer."""
        heading = self.page.get_by_text(re.compile("^Saisie refusée"))
        heading.first.wait_for(timeout=30_000)
        return " ".join(heading.first.inner_text().split())


def inbox(server: SmtpServer, to: str, count: int, within: float = 120) -> list[ReceivedMail]:
    deadline = time.monotonic() + within
    while len(server.to(to)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{to}: {count} mail(s) expected, got {len(server.to(to))}")
        time.sleep(0.2)
    return server.to(to)


def _carry(page: Page, me: Coordinator, smtp_server: SmtpServer) -> None:
    """Every coordinator form of one saisine, from the partners to the closure."""
    run_id = me.run_id

    # the partners: a multiselect of the structures with a valid convention; none is refused
    form = me.form()
    assert "(Optional)" not in prop(form, "Structures à consulter (convention valide)").inner_text()
    me.send("aucun partenaire")
    form = me.form()
    assert me.refusal() == "Saisie refusée : Choisissez au moins une structure à consulter."
    pick(page, form, "Structures à consulter (convention valide)", "CHL", "DAC-PTA")
    me.send("partenaires")
    [consultation] = inbox(smtp_server, "referent@chl.example", 1)
    assert "/r/" in consultation.text()  # the partner's link to answer
    with Session(db.get_engine()) as session:
        links = session.exec(select(StepLink).where(StepLink.step == Step.CONSULTATION)).all()
        link_ids = [link.id for link in links if link.id is not None]
    for link_id in link_ids:
        _sync(answer_as_the_service(link_id, {"knows_situation": "oui", "proposal": "RDV au CMP"}))
    me.until_form("outcome")

    # the orientation: 400 days of follow-up is refused; what was typed comes back
    form = me.form()
    # the partners' answers are read on the service's saisine page, never in Prefect
    assert "RDV au CMP" not in form.inner_text("body")
    follow_up = "Suivi auprès de la personne qui a saisi, dans combien de jours"
    assert text_of(form, follow_up).input_value() == "30"
    assert "(Optional)" not in prop(form, "Qui agit (structure ou structures)").inner_text()
    assert "(Optional)" in prop(form, "Précisions (texte du bilan annuel)").inner_text()
    text_of(form, "Qui agit (structure ou structures)").fill(WHO_ACTS)
    text_of(form, "Précisions (texte du bilan annuel)").fill(DETAIL)
    text_of(form, follow_up).fill("400")
    me.send("orientation refusée")
    form = me.form()
    assert me.refusal() == "Saisie refusée : Le suivi se fait dans 0 à 365 jours (400 demandés)."
    assert text_of(form, "Qui agit (structure ou structures)").input_value() == WHO_ACTS
    assert text_of(form, "Précisions (texte du bilan annuel)").input_value() == DETAIL
    assert text_of(form, follow_up).input_value() == "400"
    # corrected: the cell will examine it (level 2)
    pick(page, form, "Suite donnée", "Passer au niveau 2 : examen en réunion de cellule")
    me.send("orientation")
    assert the_saisine(run_id).status is SaisineStatus.LEVEL2


def test_the_coordinator_answers_the_saisine_forms_in_the_browser(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer, browser: Browser
) -> None:
    _advance_to(START)
    setup_cell()
    email = account("coordinator", "poitiers", "Inès Moreau")
    env = run_env(db_url, CLSM_SMTP_PORT=str(smtp_server.port))
    run_id = _sync(run("saisine/saisine", intake_parameters(), env))
    _sync(describe_as_the_coordinator(run_id))
    with ServiceProcess(db_url, CLSM_SMTP_PORT=str(smtp_server.port)) as service:
        page = open_prefect_ui(
            browser, service.url, email, f"/runs/flow-run/{run_id}", locale="fr-FR"
        )
        me = Coordinator(page, run_id)
        try:
            _carry(page, me, smtp_server)
        except BaseException:
            page.screenshot(path=str(TMP / "saisine-forms-failure.png"), full_page=True)
            raise
        page.close()

    saisine = the_saisine(run_id)
    assert saisine.status is SaisineStatus.LEVEL2
    with Session(db.get_engine()) as session:
        assert orientations(session, saisine) == []  # the refused orientation left nothing
