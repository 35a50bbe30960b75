"""The coordinator's saisine forms in the Prefect UI, used as a person would in a real browser.

Each coordinator form of the saisine flow, in three saisines that start where their forms
begin (the steps before answered through Prefect's API, as the flow tests do):
- the partners to consult (none refused, then two) and the orientation (refused, kept and
  corrected to level 2);
- the cell meeting (a weekend refused, kept, then a weekday), the planned meeting kept as
  proposed, then cancelled, a new meeting as proposed, moved (a public holiday refused, then
  insisted on);
- the decision with its actions (a line without owner refused, kept and corrected; a due
  date typed), and the closure from the actions' form (without a reason refused, then with
  one).
The coordinator clicks, types and picks in a French browser; the test reads the screen,
the database, the audit and each recipient's inbox.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Locator, Page
from sqlmodel import Session, col, select

from flows.inputs.fields import INSIST
from flows.inputs.saisine import CANCEL, ESCALATE, MOVE, NEW_MEETING, NO_OWNER
from models.core import clock, db
from models.core.audit import AuditEvent, case_events
from models.core.links import StepLink
from models.core.waits import Wait
from models.saisine.common import actions_of, meetings_of, orientations
from models.saisine.states import MeetingStatus, SaisineStatus, Step
from tests.immersion.test_prefect_ui import _sync
from tests.saisine.test_saisine_flow import (
    answer_as_the_service,
    describe_as_the_coordinator,
    intake_parameters,
    moved_on,
    resume_form,
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
    return re.compile(rf"^\s*{re.escape(text)}( \(facultatif\))?\s*$")


def prop(scope: Page | Locator, label: str) -> Locator:
    """The form's property under `scope` whose label reads `label` (the innermost one)."""
    # (the inner locator of `has` is matched inside each property: built from the page)
    page = scope if isinstance(scope, Page) else scope.page
    return scope.locator(".schema-form-property").filter(has=page.get_by_text(_label(label))).last


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
    """What the select of `label` shows chosen (a multiselect's choices joined by ", ")."""
    native = prop(scope, label).locator("select")
    if native.count():
        picked = native.first.evaluate("s => [...s.selectedOptions].map(o => o.text.trim())")
        return ", ".join(str(text) for text in picked)
    return " ".join(prop(scope, label).locator(".p-select-button__control").inner_text().split())


def type_date(page: Page, scope: Page | Locator, label: str, day: date) -> None:
    """Enter the day in the date field of `label`, then leave the field.

    Headless Chromium has no hover, so Prefect renders the browser's own date input rather
    than its picker; that input follows the browser's language (--lang, mm/dd/yyyy here
    whatever the page's locale), so the day is entered whole, as a pick would, not as
    keystrokes whose order depends on the machine."""
    field = prop(scope, label).locator("input[type=date]").first
    field.fill(day.isoformat())
    field.press("Tab")
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
    """Submit, then wait until the run left its pause (a lost click is clicked again, and so
    is one Prefect's server refused: on SQLite, under load, it can answer "database is
    locked" for a minute or two, the UI's « Oops », and a person clicks again)."""
    button = page.get_by_role("button", name="Valider", exact=True).last
    for _attempt in range(6):
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


# -- where each test starts, and what it checks at the end ---------------------------------------
ME = "Inès Moreau (coordination)"
MEETING_DAY = date(2026, 12, 17)  # a Thursday


def _links(step: Step) -> list[int]:
    with Session(db.get_engine()) as session:
        links = session.exec(select(StepLink).where(StepLink.step == step)).all()
        return [link.id for link in links if link.id is not None]


def _answer_partners() -> None:
    for link_id in _links(Step.CONSULTATION):
        _sync(answer_as_the_service(link_id, {"knows_situation": "oui", "proposal": "RDV au CMP"}))


def _answered(run_id: UUID, values: dict[str, object]) -> None:
    """A form answered through Prefect's API (a step another test drives in the browser)."""
    before = _sync(wait_for_state(run_id, "PAUSED"))
    _sync(resume_form(run_id, values))
    _sync(moved_on(run_id, before, "PAUSED"))


def _to_level2(run_id: UUID) -> None:
    _answered(run_id, {"partners": ["CHL", "DAC-PTA"]})
    _answer_partners()
    deadline = time.monotonic() + 240
    while "outcome" not in _sync(form_schema(run_id, timeout=120)).get("properties", {}):
        assert time.monotonic() < deadline, "no orientation form"
        time.sleep(1)
    _answered(
        run_id,
        {"outcome": ESCALATE, "who_acts": "", "follow_up_days": 30},
    )
    assert the_saisine(run_id).status is SaisineStatus.LEVEL2


def _to_decision(run_id: UUID) -> None:
    """Level 2, a meeting with the UDAF invited, the meeting's day over and tick's pass."""
    from flows.tick import tick

    _to_level2(run_id)
    _answered(
        run_id,
        {
            "meeting": NEW_MEETING,
            "day": MEETING_DAY.isoformat(),
            "at": "14:00",
            "host": "CCAS",
            "invited": ["UDAF"],
        },
    )
    _advance_to(datetime.combine(MEETING_DAY, datetime.min.time(), PARIS).replace(hour=17))
    _sync(tick())


def _events_by_me(run_id: UUID) -> list[AuditEvent]:
    """The saisine's audit events that name the coordinator who answered in the browser."""
    saisine = the_saisine(run_id)
    assert saisine.id is not None
    with Session(db.get_engine()) as session:
        return [e for e in case_events(session, "saisine", saisine.id) if e.actor_label == ME]


def _refused_answer(run_id: UUID) -> dict[str, object]:
    """What the flow kept of the last refused answer (shown again in the form)."""
    with Session(db.get_engine()) as session:
        waits = session.exec(
            select(Wait).where(Wait.flow_run_id == str(run_id)).order_by(col(Wait.id).desc())
        ).all()
        return next(w.refused_answer for w in waits if w.refused_answer)


@contextmanager
def _in_the_browser(
    db_url: str, smtp_server: SmtpServer, browser: Browser, start: Callable[[UUID], None]
) -> Iterator[Coordinator]:
    """A saisine launched and described, brought by `start` to the first form of the test,
    and the coordinator's browser on its run (logged in through the service's gateway)."""
    _advance_to(START)
    setup_cell()
    email = account("coordinator", "poitiers", "Inès Moreau")
    env = run_env(db_url, CLSM_SMTP_PORT=str(smtp_server.port))
    run_id = _sync(run("saisine/saisine", intake_parameters(), env))
    _sync(describe_as_the_coordinator(run_id))
    start(run_id)
    with ServiceProcess(db_url, CLSM_SMTP_PORT=str(smtp_server.port)) as service:
        page = open_prefect_ui(
            browser, service.url, email, f"/runs/flow-run/{run_id}", locale="fr-FR"
        )
        try:
            yield Coordinator(page, run_id)
        except BaseException:
            page.screenshot(path=str(TMP / "saisine-forms-failure.png"), full_page=True)
            raise
        finally:
            page.close()


# -- the tests ------------------------------------------------------------------------------------
def test_the_coordinator_consults_and_orients_in_the_browser(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer, browser: Browser
) -> None:
    with _in_the_browser(db_url, smtp_server, browser, lambda _run_id: None) as me:
        page, run_id = me.page, me.run_id

        # the partners: a multiselect of the structures with a valid convention; none refused
        form = me.form()
        partners = "Structures à consulter (convention valide)"
        assert "(facultatif)" not in prop(form, partners).inner_text()
        me.send("aucun partenaire")
        form = me.form()
        assert me.refusal() == "Saisie refusée : Choisissez au moins une structure à consulter."
        pick(page, form, partners, "CHL", "DAC-PTA")
        assert chosen(form, partners) == "CHL, DAC-PTA"
        me.send("partenaires")
        [consultation] = inbox(smtp_server, "referent@chl.example", 1)
        assert "/r/" in consultation.text()  # the partner's link to answer
        _answer_partners()
        me.until_form("outcome")

        # the orientation: 400 days of follow-up is refused; what was typed comes back
        form = me.form()
        # the partners' answers are read on the service's saisine page, never in Prefect
        assert "RDV au CMP" not in form.inner_text("body")
        follow_up = "Suivi auprès de la personne qui a saisi, dans combien de jours"
        assert text_of(form, follow_up).input_value() == "30"
        assert "(facultatif)" not in prop(form, "Qui agit (structure ou structures)").inner_text()
        assert "(facultatif)" in prop(form, "Précisions (texte du bilan annuel)").inner_text()
        assert "Optional" not in form.inner_text("body")  # the UI's own words in French (gateway)
        text_of(form, "Qui agit (structure ou structures)").fill(WHO_ACTS)
        text_of(form, "Précisions (texte du bilan annuel)").fill(DETAIL)
        text_of(form, follow_up).fill("400")
        me.send("orientation refusée")
        form = me.form()
        assert (
            me.refusal() == "Saisie refusée : Le suivi se fait dans 0 à 365 jours (400 demandés)."
        )
        assert text_of(form, "Qui agit (structure ou structures)").input_value() == WHO_ACTS
        assert text_of(form, "Précisions (texte du bilan annuel)").input_value() == DETAIL
        assert text_of(form, follow_up).input_value() == "400"
        # corrected: the cell will examine it (level 2)
        pick(page, form, "Suite donnée", ESCALATE)
        me.send("orientation")

    saisine = the_saisine(run_id)
    assert saisine.status is SaisineStatus.LEVEL2
    with Session(db.get_engine()) as session:
        assert orientations(session, saisine) == []  # the refused orientation left nothing
    changes = [(e.action, (e.payload or {}).get("to")) for e in _events_by_me(run_id)]
    assert ("form.refused", None) in changes
    assert ("status.changed", "level2") in changes


def test_the_coordinator_plans_keeps_cancels_and_moves_the_meeting_in_the_browser(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer, browser: Browser
) -> None:
    with _in_the_browser(db_url, smtp_server, browser, _to_level2) as me:
        page, run_id = me.page, me.run_id

        # the meeting: a date and a time in Paris; a Saturday is refused, then a Thursday
        form = me.form()
        assert shown_date(page, form, "Date de la nouvelle réunion") == "2026-12-21"  # +10 days
        assert chosen(form, "Heure (heure de Paris)") == "14:00"
        for label in ("Date de la nouvelle réunion", "Heure (heure de Paris)", "Réunion"):
            assert "(facultatif)" not in prop(form, label).inner_text(), label
        type_date(page, form, "Date de la nouvelle réunion", date(2026, 12, 19))
        pick(page, form, "Heure (heure de Paris)", "09:30")
        pick(page, form, "Membres invités pour cette situation", "MDPH")
        assert chosen(form, "Membres invités pour cette situation") == "MDPH"
        me.send("réunion un samedi")
        form = me.form()
        assert me.refusal() == (
            "Saisie refusée : Le samedi 19/12/2026 est un week-end : choisissez un autre jour, "
            f"ou cochez « {INSIST} »."
        )
        assert _refused_answer(run_id)["invited"] == ["MDPH"]
        assert shown_date(page, form, "Date de la nouvelle réunion") == "2026-12-19"
        assert chosen(form, "Heure (heure de Paris)") == "09:30"
        assert chosen(form, "Membres invités pour cette situation") == "MDPH"
        type_date(page, form, "Date de la nouvelle réunion", MEETING_DAY)
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
        pick(page, form, "Réunion", CANCEL)
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
        pick(page, form, "Réunion", MOVE)
        type_date(page, form, "Nouvelle date, pour un déplacement", date(2026, 12, 25))
        pick(page, form, "Nouvelle heure (heure de Paris), pour un déplacement", "10:15")
        text_of(form, "Motif de l'annulation ou du déplacement").fill(
            "Salle indisponible à l'Hôtel de ville"
        )
        me.send("déplacement un jour férié")
        form = me.form()
        assert me.refusal().startswith("Saisie refusée : Le vendredi 25/12/2026 est un jour férié")
        assert chosen(form, "Réunion") == MOVE
        assert shown_date(page, form, "Nouvelle date, pour un déplacement") == "2026-12-25"
        assert chosen(form, "Nouvelle heure (heure de Paris), pour un déplacement") == "10:15"
        assert text_of(form, "Motif de l'annulation ou du déplacement").input_value() == (
            "Salle indisponible à l'Hôtel de ville"
        )
        prop(form, INSIST).get_by_role("switch").click()
        me.send("déplacement")
        moved = inbox(smtp_server, "referent@ccas.example", 4)[-1]
        assert "vendredi 25 décembre 2026" in moved.html() and "de 10 h 15 à" in moved.html()

    with Session(db.get_engine()) as session:
        meetings = meetings_of(session, the_saisine(run_id))
        assert [m.status for m in meetings] == [MeetingStatus.CANCELLED, MeetingStatus.PLANNED]
        assert meetings[-1].starts_at == datetime(2026, 12, 25, 10, 15, tzinfo=PARIS)
    actions = [e.action for e in _events_by_me(run_id)]
    for done in ("form.refused", "meeting.saisine-added", "meeting.cancelled", "meeting.moved"):
        assert done in actions, done


def test_the_coordinator_records_the_decision_and_closes_in_the_browser(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer, browser: Browser
) -> None:
    with _in_the_browser(db_url, smtp_server, browser, _to_decision) as me:
        page, run_id = me.page, me.run_id
        me.until_form("meeting_held")
        proposed_due = MEETING_DAY + timedelta(days=30)

        # the decision: an action without owner is refused, kept, then corrected
        form = me.form()
        text_of(form, "Décision de la cellule").fill(DECISION)
        actions = prop(form, "Actions décidées")
        for _line in range(2):
            actions.get_by_role("button", name="Ajouter une ligne").click()
        lines = form.locator(".schema-form-property-array-item")
        text_of(lines.nth(0), "Action").fill("Organiser la visite à domicile conjointe")
        pick(page, lines.nth(0), "Responsable", "Référent CHL (CHL)")
        assert "(facultatif)" not in prop(lines.nth(0), "Échéance").inner_text()
        assert shown_date(page, lines.nth(0), "Échéance") == proposed_due.isoformat()
        text_of(lines.nth(1), "Action").fill("Contacter la sœur de la personne")
        type_date(page, lines.nth(1), "Échéance", date(2027, 1, 8))
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
        assert chosen(lines.nth(1), "Responsable") == NO_OWNER
        assert shown_date(page, lines.nth(1), "Échéance") == "2027-01-08"
        pick(page, lines.nth(1), "Responsable", "Référent UDAF (UDAF)")
        me.send("décision")
        # each owner's mail carries the line's due date (typed, or as proposed)
        received(smtp_server, "referent@udaf.example", "action à réaliser avant le 08/01/2027")
        received(
            smtp_server,
            "referent@chl.example",
            f"action à réaliser avant le {proposed_due:%d/%m/%Y}",
        )

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

    saisine = the_saisine(run_id)
    assert saisine.status is SaisineStatus.CLOSED
    assert saisine.close_reason == "La personne a déménagé hors de la commune"
    with Session(db.get_engine()) as session:
        [meeting] = meetings_of(session, saisine)
        assert meeting.status is MeetingStatus.HELD
        assert [(a.text, a.due_on) for a in actions_of(session, saisine)] == [
            ("Organiser la visite à domicile conjointe", proposed_due),
            ("Contacter la sœur de la personne", date(2027, 1, 8)),
        ]
    changes = [(e.action, (e.payload or {}).get("to")) for e in _events_by_me(run_id)]
    assert ("status.changed", "decided") in changes
    assert ("status.changed", "closed") in changes
    assert [a for a, _to in changes].count("form.refused") == 2
