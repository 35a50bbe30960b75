"""The coordinator's saisine forms in the Prefect UI, used as a person would in a real browser.

One saisine, carried through each coordinator form of the saisine flow: the partners to
consult (none refused, then two), the orientation (refused, kept and corrected), the cell
meeting (a weekend refused, then a weekday), the planned meeting kept as proposed, then
cancelled, a new meeting as proposed, moved (a public holiday refused, then insisted on), the
decision with its actions (a line without owner refused, kept and corrected; a due date
entered), and the closure from the actions' form (without a reason refused, then with one).
The coordinator clicks, types and picks in the browser; the test reads the screen, the
database and the mail that reaches each recipient's inbox.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Locator, Page
from sqlmodel import Session, select

from flows.inputs.fields import INSIST
from models.core import clock, db
from models.core.links import StepLink
from models.saisine.common import actions_of, meetings_of
from models.saisine.states import MeetingStatus, SaisineStatus, Step
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
DECISION = (
    "Proposer une visite à domicile conjointe et un accompagnement vers le CMP « Les Tilleuls »"
)


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


def chosen(scope: Page | Locator, label: str) -> str:
    """What the select of `label` shows."""
    native = prop(scope, label).locator("select")
    if native.count():
        return str(native.first.evaluate("s => s.options[s.selectedIndex]?.text ?? ''")).strip()
    return " ".join(prop(scope, label).locator(".p-select-button__control").inner_text().split())


def type_date(page: Page, scope: Page | Locator, label: str, day: date) -> None:
    """Enter the day in the date field of `label` (the browser's own date input: headless
    Chromium has no hover, so Prefect renders its native field rather than the picker)."""
    field = prop(scope, label).locator("input[type=date]").first
    field.fill(day.isoformat())
    assert field.input_value() == day.isoformat()


def shown_date(page: Page, scope: Page | Locator, label: str) -> str:
    """The day in the date field of `label` (yyyy-mm-dd)."""
    return prop(scope, label).locator("input[type=date]").first.input_value()


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


def received(server: SmtpServer, to: str, subject: str, within: float = 120) -> ReceivedMail:
    """The mail to `to` whose subject holds `subject`, once it has arrived."""
    deadline = time.monotonic() + within
    while True:
        found = [m for m in server.to(to) if subject in str(m.message["Subject"])]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            subjects = [str(m.message["Subject"]) for m in server.to(to)]
            raise AssertionError(f"{to}: no mail « {subject} » among {subjects}")
        time.sleep(0.2)


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

    # the meeting: a date and a time in Paris; a Saturday is refused, then a Thursday
    form = me.form()
    assert shown_date(page, form, "Date de la nouvelle réunion") == "2026-12-21"  # +10 days
    assert chosen(form, "Heure (heure de Paris)") == "14:00"
    for label in ("Date de la nouvelle réunion", "Heure (heure de Paris)", "Réunion"):
        assert "(Optional)" not in prop(form, label).inner_text(), label
    type_date(page, form, "Date de la nouvelle réunion", date(2026, 12, 19))
    pick(page, form, "Heure (heure de Paris)", "09:30")
    pick(page, form, "Membres invités pour cette situation", "MDPH")
    me.send("réunion un samedi")
    form = me.form()
    assert me.refusal() == (
        "Saisie refusée : Le samedi 19/12/2026 est un week-end : choisissez un autre jour, "
        f"ou cochez « {INSIST} »."
    )
    assert shown_date(page, form, "Date de la nouvelle réunion") == "2026-12-19"
    assert chosen(form, "Heure (heure de Paris)") == "09:30"
    # (the invited member kept through the refusal: MDPH's convocation below)
    type_date(page, form, "Date de la nouvelle réunion", date(2026, 12, 17))
    me.send("réunion")
    [convocation] = inbox(smtp_server, "referent@mdph.example", 1)
    assert "jeudi 17 décembre 2026" in convocation.html()
    assert "de 9 h 30 à" in convocation.html()  # Paris time, as chosen: no drift
    with Session(db.get_engine()) as session:
        [meeting] = meetings_of(session, the_saisine(run_id))
        assert meeting.starts_at == datetime(2026, 12, 17, 9, 30, tzinfo=PARIS)

    # the planned meeting's form: kept as proposed, nothing changes
    form = me.form()
    assert chosen(form, "Réunion") == "Maintenir"
    assert shown_date(page, form, "Nouvelle date, pour un déplacement") == "2026-12-17"
    assert chosen(form, "Nouvelle heure (heure de Paris), pour un déplacement") == "09:30"
    assert "Motif de la reprise" not in form.inner_text("body")  # tick's field, hidden
    me.send("réunion maintenue")
    with Session(db.get_engine()) as session:
        [meeting] = meetings_of(session, the_saisine(run_id))
        assert (meeting.status, meeting.starts_at) == (
            MeetingStatus.PLANNED,
            datetime(2026, 12, 17, 9, 30, tzinfo=PARIS),
        )
    assert len(smtp_server.to("referent@mdph.example")) == 1  # no mail for nothing

    # cancelled (the person may): the members are told, the meeting form comes back
    form = me.form()
    assert "Saisie refusée" not in form.inner_text("body")
    pick(page, form, "Réunion", "Annuler la réunion")
    text_of(form, "Motif de l'annulation ou du déplacement").fill(
        "Quorum non atteint : la MDPH ne peut pas venir"
    )
    me.send("réunion annulée")
    cancelled = inbox(smtp_server, "referent@mdph.example", 2)[-1]
    assert "METHOD:CANCEL" in cancelled.calendar()
    with Session(db.get_engine()) as session:
        [meeting] = meetings_of(session, the_saisine(run_id))
        assert meeting.status is MeetingStatus.CANCELLED

    # a new meeting, submitted as the form proposes it (the permanent members only)
    form = me.form()
    assert shown_date(page, form, "Date de la nouvelle réunion") == "2026-12-21"
    assert chosen(form, "Heure (heure de Paris)") == "14:00"
    me.send("nouvelle réunion")
    convocations = inbox(smtp_server, "referent@ccas.example", 3)
    assert "lundi 21 décembre 2026" in convocations[-1].html()
    assert "de 14 h à" in convocations[-1].html()

    # the meeting moved: Christmas is refused, then kept as the coordinator insists
    form = me.form()
    assert shown_date(page, form, "Nouvelle date, pour un déplacement") == "2026-12-21"
    pick(page, form, "Réunion", "Déplacer la réunion")
    type_date(page, form, "Nouvelle date, pour un déplacement", date(2026, 12, 25))
    pick(page, form, "Nouvelle heure (heure de Paris), pour un déplacement", "10:15")
    text_of(form, "Motif de l'annulation ou du déplacement").fill(
        "Salle indisponible à l'Hôtel de ville"
    )
    me.send("déplacement un jour férié")
    form = me.form()
    assert me.refusal().startswith("Saisie refusée : Le vendredi 25/12/2026 est un jour férié")
    assert chosen(form, "Réunion") == "Déplacer la réunion"
    assert chosen(form, "Nouvelle heure (heure de Paris), pour un déplacement") == "10:15"
    prop(form, INSIST).get_by_role("switch").click()
    me.send("déplacement")
    moved = inbox(smtp_server, "referent@ccas.example", 4)[-1]
    assert "vendredi 25 décembre 2026" in moved.html() and "de 10 h 15 à" in moved.html()

    # the decision, after the meeting: an action without owner is refused, then corrected
    _advance_to(datetime(2026, 12, 25, 17, 0, tzinfo=PARIS))
    from flows.tick import tick

    _sync(tick())
    me.until_form("meeting_held")
    form = me.form()
    text_of(form, "Décision de la cellule").fill(DECISION)
    actions = prop(form, "Actions décidées")
    for _line in range(2):
        actions.get_by_role("button", name=re.compile("Add item", re.I)).click()
    lines = form.locator(".schema-form-property-array-item")
    text_of(lines.nth(0), "Action").fill("Organiser la visite à domicile conjointe")
    pick(page, lines.nth(0), "Responsable", "Référent CHL (CHL)")
    assert "(Optional)" not in prop(lines.nth(0), "Échéance").inner_text()
    assert shown_date(page, lines.nth(0), "Échéance") == "2027-01-24"  # 30 days on
    text_of(lines.nth(1), "Action").fill("Contacter la sœur de la personne")
    type_date(page, lines.nth(1), "Échéance", date(2027, 1, 15))
    me.send("décision sans responsable")
    form = me.form()
    assert me.refusal() == (
        "Saisie refusée : Action « Contacter la sœur de la personne » : indiquez son ou "
        "sa responsable et son échéance."
    )
    lines = form.locator(".schema-form-property-array-item")
    assert text_of(form, "Décision de la cellule").input_value() == DECISION
    assert text_of(lines.nth(0), "Action").input_value() == (
        "Organiser la visite à domicile conjointe"
    )
    assert chosen(lines.nth(0), "Responsable") == "Référent CHL (CHL)"
    assert chosen(lines.nth(1), "Responsable") == "(à choisir)"
    assert shown_date(page, lines.nth(1), "Échéance") == "2027-01-15"
    pick(page, lines.nth(1), "Responsable", "Référent DAC-PTA (DAC-PTA)")
    me.send("décision")
    # the owner's mail carries the due date typed (the line's own, not the proposed one)
    received(smtp_server, "referent@dac-pta.example", "action à réaliser avant le 15/01/2027")
    received(smtp_server, "referent@chl.example", "action à réaliser avant le 24/01/2027")

    # the actions' form: closing with actions still open needs a reason; refused, then given
    form = me.form()
    prop(form, "Clore la saisine maintenant").get_by_role("switch").click()
    me.send("clôture sans motif")
    form = me.form()
    assert me.refusal() == (
        "Saisie refusée : Des actions sont encore ouvertes : indiquez un motif pour clore "
        "la saisine."
    )
    assert prop(form, "Clore la saisine maintenant").get_by_role("switch").is_checked()
    assert the_saisine(run_id).status is SaisineStatus.DECIDED
    text_of(form, "Motif de clôture (à donner si des actions restent ouvertes)").fill(
        "La personne a déménagé hors de la commune"
    )
    me.send("clôture", "COMPLETED")


def test_the_coordinator_carries_a_saisine_through_every_form(
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
    assert saisine.status is SaisineStatus.CLOSED
    assert saisine.close_reason == "La personne a déménagé hors de la commune"
    with Session(db.get_engine()) as session:
        meetings = meetings_of(session, saisine)
        assert [m.status for m in meetings] == [MeetingStatus.CANCELLED, MeetingStatus.HELD]
        assert meetings[-1].starts_at == datetime(2026, 12, 25, 10, 15, tzinfo=PARIS)
        assert [(a.text, a.due_on) for a in actions_of(session, saisine)] == [
            ("Organiser la visite à domicile conjointe", date(2027, 1, 24)),
            ("Contacter la sœur de la personne", date(2027, 1, 15)),
        ]
