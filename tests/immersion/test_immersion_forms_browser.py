"""The coordinator's immersion forms in the Prefect UI, used as a person would in Chromium.

The selection: the demo session (24 applications for 16 places, five binômes proposed from
crossed wishes) waits on its selection form. Its coordinator logs in at the service, opens
the form through the gateway and edits it: one proposed binôme changed, in its select, into
two people of the same structure, a binôme added, a comment typed. The run refuses it and
asks again with the French reason on top and everything she chose or typed still there;
she removes the wrong line and submits. The test reads the screen, then the database: the
selection and the declared binômes recorded, nothing of the refused answer, her name on
every decision.

The review of the placements: a small session of three participants waits on it after its
selection, nothing mailed to any host; the coordinator sends one to her own structure
(refused, her choice and comment kept), then to another structure, and only then do the host
requests go out, the changed one to the structure she chose.

The preparation day's attendance: the same small session carried there (its partners answer as
the service records their links), the coordinator withdraws a participant still marked
present (refused, her choices and reason kept), then keeps him in the session but marks
him absent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlmodel import select

from models.core import clock, db
from models.core.audit import Actor, case_events
from models.core.links import StepLink
from models.immersion.call import ApplicationForm, submit_application
from models.immersion.common import applications, get_session, session_by_run
from models.immersion.states import ApplicationStatus, SessionStatus, Step
from models.immersion.tables import Attendance, ImmersionSession, Placement
from tests.immersion.test_prefect_ui import _sync
from tests.saisine.test_saisine_flow import answer_as_the_service
from tests.saisine.test_saisine_forms_browser import Coordinator, prop, text_of
from tests.support.browser import PASSWORD, account, open_prefect_ui
from tests.support.env import TMP
from tests.support.immersion import (
    advance_clock,
    answer_as_shown,
    build_clsm,
    immersion_days,
    launch_parameters,
    outbox,
    session_dates,
    settle,
)
from tests.support.prefect_stack import PrefectStack, run, run_env
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
    """The line's bin button, named for screen readers by the gateway (the UI shows an icon)."""
    line.get_by_role("button", name="Supprimer cette ligne").click()


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


def _in_the_prefect_ui(
    browser: Browser,
    db_url: str,
    login: tuple[str, str],
    run_id: UUID,
    answer: Callable[[Page, Coordinator], None],
    failure_shot: str,
) -> None:
    """The coordinator logs in (e-mail, password), opens the run in the Prefect UI through
    the service and answers its form with `answer`; a screenshot is kept if it fails."""
    email, password = login
    with ServiceProcess(db_url) as service:
        page = open_prefect_ui(
            browser, service.url, email, f"/runs/flow-run/{run_id}", password, locale="fr-FR"
        )
        me = Coordinator(page, run_id)
        try:
            answer(page, me)
        except BaseException:
            page.screenshot(path=str(TMP / failure_shot), full_page=True)
            raise
        page.close()


def _answer_the_selection(page: Page, me: Coordinator, row_id: int) -> None:
    form = me.form()
    lines = pair_lines(form)
    expect(lines).to_have_count(5)  # the binômes proposed from crossed wishes, one line each
    assert shown(lines.nth(0)) == (AMELIE, HELENE)
    assert shown(lines.nth(1)) == (DAVID, PAULINE)
    # David's binôme changed to Bruno (both CHL), a binôme added, a comment typed
    person(lines.nth(1), "En binôme avec").select_option(label=BRUNO)
    prop(form, "Binômes").get_by_role("button", name="Ajouter une ligne").click()
    expect(lines).to_have_count(6)
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
    expect(lines).to_have_count(6)
    assert shown(lines.nth(0)) == (AMELIE, HELENE)
    assert shown(lines.nth(1)) == (DAVID, BRUNO)
    assert shown(lines.nth(5)) == (EMMA, GAELLE)
    assert text_of(form, "Commentaire (facultatif)").input_value() == COMMENT
    assert status_of(row_id) is SessionStatus.SELECTION
    assert pairs_recorded(row_id) == {}  # nothing of the refused answer was kept

    # corrected: the wrong line removed, the rest submitted as it stands
    remove(lines.nth(1))
    expect(lines).to_have_count(5)
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
    _in_the_prefect_ui(
        browser,
        db_url,
        ("coordination@clsm-poitiers.example", DEMO_PASSWORD),
        run_id,
        lambda page, me: _answer_the_selection(page, me, row_id),
        "immersion-forms-failure.png",
    )

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


# -- the preparation day's attendance ---------------------------------------------------------
PARTICIPANTS = [
    ("Amélie Garnier", "amelie.garnier@ccas.example", "CCAS"),
    ("Bruno Chevalier", "bruno.chevalier@chl.example", "CHL"),
    ("Emma Blanc", "emma.blanc@udaf.example", "UDAF"),
]
ABSENT = "n° 2 — Bruno Chevalier (CHL)"
REASON = "Arrêt de travail jusqu'à la fin du mois : il ne pourra pas faire son immersion."


def _answer_links(step: Step, values: dict[str, object]) -> None:
    with db.session_scope() as session:
        links = session.exec(select(StepLink).where(StepLink.step == step)).all()
        open_ids = [link.id for link in links if link.used_at is None and link.id is not None]
    assert open_ids, f"no open link {step}"
    for link_id in open_ids:
        _sync(answer_as_the_service(link_id, values))


def _to_the_placement_review(db_url: str) -> tuple[UUID, int, str, dict[str, Any]]:
    """A session of three participants, carried to the review of their placements; the run,
    the session, its CLSM's slug and its dates."""
    with db.session_scope() as session:
        clsm, orgs = build_clsm(session)
        dates = session_dates(clock.now(session))
        slug, homes = clsm.slug, {o.name: o.id for o in orgs}
    parameters = launch_parameters(
        slug,
        dates,
        title="Immersions 2027 — session 1",
        structures=list(homes),
        capacity=3,
        host_capacity=2,
        preparation_place=dates["preparation_place"],
        facilitator_name="CODES 86",
        facilitator_email="animation@codes.example",
        restitution_place=dates["restitution_place"],
    )
    run_id = _sync(run("immersion-session/immersion-session", parameters, run_env(db_url)))
    assert _sync(settle(run_id)) == "PAUSED"
    with db.session_scope() as session:
        row = session_by_run(session, str(run_id))
        assert row is not None and row.id is not None
        row_id = row.id
        for name, address, home in PARTICIPANTS:
            home_id = homes[home]
            assert home_id is not None
            submit_application(
                session=session,
                row=row,
                organisation_id=home_id,
                form=ApplicationForm(
                    name=name,
                    email=address,
                    function="Travailleur social",
                    manager_name=f"Direction {home}",
                    manager_email=f"direction@{home.lower()}.example",
                    motivation="Mieux connaître les partenaires",
                    wishes=["Département", "DAC"],
                    availability="mardis et jeudis",
                ),
                actor=Actor.system("test"),
            )
    advance_clock(dates["call_closes_at"])
    assert _sync(settle(run_id)) == "PAUSED"
    _sync(answer_as_shown(run_id))  # the selection, as proposed (its own test is above)
    assert _sync(settle(run_id)) == "PAUSED"
    return run_id, row_id, slug, dates


def _to_the_preparation_attendance(db_url: str) -> tuple[UUID, int, str]:
    """The same session carried on to its preparation day's attendance form."""
    run_id, row_id, slug, dates = _to_the_placement_review(db_url)
    _sync(answer_as_shown(run_id))  # the hosts, as proposed (their own test is above)
    assert _sync(settle(run_id)) == "PAUSED"
    days = [d.isoformat() for d in immersion_days(dates["window_start"], 3)]
    host = {"answer": "accepter", "tutor_name": "Claire Dubois", "capacity": "2", "days": days}
    host |= {"tutor_email": "tutrice@accueil.example", "may_observe": "réunions d'équipe"}
    _answer_links(Step.HOST, host | {"may_not_observe": "consultations médicales"})
    assert _sync(settle(run_id)) == "PAUSED"
    _answer_links(Step.SIGN, {"agree": True, "confidentiality": True})
    assert _sync(settle(run_id)) == "PAUSED"
    assert status_of(row_id) is SessionStatus.PREPARATION
    advance_clock(dates["preparation_end"])
    assert _sync(settle(run_id)) == "PAUSED"
    return run_id, row_id, slug


def listed(form: Page, label: str) -> list[str]:
    """What the multiselect of `label` shows as chosen."""
    field = prop(form, label).locator("select[multiple]").first
    chosen: list[str] = field.evaluate("el => [...el.selectedOptions].map(o => o.label.trim())")
    return chosen


def toggle(page: Page, form: Page, label: str, option: str) -> None:
    """Open the multiselect of `label`, click `option` (chosen or no longer), close it."""
    prop(form, label).locator(".p-select").first.click()
    page.get_by_role("option", name=option, exact=True).filter(visible=True).first.click()
    page.keyboard.press("Escape")


def _answer_the_attendance(page: Page, me: Coordinator) -> None:
    form = me.form()
    present, leaving = "Participants présents", "Participants à retirer de la session (facultatif)"
    reason = "Motif du retrait (si vous retirez quelqu'un)"
    everyone = [f"n° {n} — {name} ({home})" for n, (name, _, home) in enumerate(PARTICIPANTS, 1)]
    assert listed(form, present) == everyone and listed(form, leaving) == []
    # Bruno withdrawn from the session, but still ticked present: refused
    toggle(page, form, leaving, ABSENT)
    text_of(form, reason).click()
    page.keyboard.type(REASON)
    me.send("retiré mais noté présent")

    form = me.form()
    assert me.refusal() == (
        f"Saisie refusée : un participant retiré de la session ne peut pas être noté présent : "
        f"{ABSENT}. Retirez-le de la liste des présents, ou ne le retirez pas de la session."
    )
    assert listed(form, present) == everyone and listed(form, leaving) == [ABSENT]
    assert text_of(form, reason).input_value() == REASON
    # he stays in the session, absent from the day: out of both lists, the motive erased
    toggle(page, form, leaving, ABSENT)
    toggle(page, form, present, ABSENT)
    text_of(form, reason).click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    assert listed(form, present) == [everyone[0], everyone[2]] and listed(form, leaving) == []
    me.send("absent")


def test_the_coordinator_marks_a_participant_absent_from_the_preparation_day(
    prefect_stack: PrefectStack, db_url: str, browser: Browser
) -> None:
    run_id, row_id, slug = _to_the_preparation_attendance(db_url)
    email = account("coordinator", slug, "Inès Moreau")
    _in_the_prefect_ui(
        browser,
        db_url,
        (email, PASSWORD),
        run_id,
        _answer_the_attendance,
        "immersion-attendance-failure.png",
    )

    assert status_of(row_id) is SessionStatus.IMMERSION
    with db.session_scope() as session:
        kept = {a.id: a for a in applications(session, row_id)}
        came = {
            kept[a.application_id].number: a.present
            for a in session.exec(select(Attendance).where(Attendance.session_id == row_id))
        }
        statuses = {a.number: a.status for a in kept.values()}
        events = [e for e in case_events(session, "session", row_id) if e.channel == "prefect-ui"]
    assert came == {1: True, 2: False, 3: True}
    assert statuses[2] is ApplicationStatus.SELECTED  # absent, not withdrawn
    assert {e.actor_label for e in events} == {"Inès Moreau (coordination)"}
    assert "form.refused" in {e.action for e in events}


# -- the review of the placements ------------------------------------------------------------
EVERYONE = [f"n° {n} — {name} ({home})" for n, (name, _, home) in enumerate(PARTICIPANTS, 1)]
HOST = "Structure d'accueil"


def placement_lines(form: Page) -> Locator:
    return prop(form, "Accueils").locator(".p-draggable-list__item")


def _answer_the_review(page: Page, me: Coordinator) -> None:
    form = me.form()
    lines = placement_lines(form)
    expect(lines).to_have_count(3)  # one line per participant, the proposal prefilled
    assert [person(lines.nth(i), "Personne").input_value() for i in range(3)] == EVERYONE
    hosts = [person(lines.nth(i), HOST).input_value() for i in range(3)]
    assert hosts == ["Département", "Département", "DAC"]  # wishes, two places each
    expect(page.get_by_text("Accueils proposés : vérifiez-les").first).to_be_visible()
    # Amélie (CCAS) sent to her own structure: refused
    person(lines.nth(0), HOST).select_option(label="CCAS")
    text_of(form, "Commentaire (facultatif)").click()
    page.keyboard.type("Département complet en octobre")
    me.send("accueil par sa propre structure")

    form = me.form()
    assert me.refusal() == (
        f"Saisie refusée : accueils refusés : « {EVERYONE[0]} » : sa propre structure (CCAS) "
        "ne peut pas l'accueillir"
    )
    lines = placement_lines(form)
    expect(lines).to_have_count(3)
    assert person(lines.nth(0), HOST).input_value() == "CCAS"  # what she chose, to correct
    assert (
        text_of(form, "Commentaire (facultatif)").input_value() == "Département complet en octobre"
    )
    # corrected: Amélie to UDAF
    person(lines.nth(0), HOST).select_option(label="UDAF")
    me.send("accueils")


def test_the_coordinator_changes_a_proposed_host_in_the_browser(
    prefect_stack: PrefectStack, db_url: str, browser: Browser
) -> None:
    run_id, row_id, slug, _dates = _to_the_placement_review(db_url)
    assert not outbox("immersion_host_request")  # nothing before her review
    email = account("coordinator", slug, "Inès Moreau")
    _in_the_prefect_ui(
        browser,
        db_url,
        (email, PASSWORD),
        run_id,
        _answer_the_review,
        "immersion-review-failure.png",
    )

    with db.session_scope() as session:
        hosts = {
            a.number: p.host_organisation_id
            for p in session.exec(select(Placement).where(Placement.session_id == row_id))
            for a in applications(session, row_id)
            if a.id == p.application_id
        }
        events = [e for e in case_events(session, "session", row_id) if e.channel == "prefect-ui"]
    assert len(hosts) == 3
    requests = sorted(m.recipient_email for m in outbox("immersion_host_request"))
    assert requests == [
        "referent@dac.example",
        "referent@département.example",
        "referent@udaf.example",
    ]
    by_action = {e.action: e for e in events}
    assert by_action["placements.reviewed"].payload["changed"] == [EVERYONE[0]]
    assert by_action["placements.reviewed"].payload["comment"] == "Département complet en octobre"
    assert "propre structure" in by_action["form.refused"].payload["error"]
    assert {e.actor_label for e in events} == {"Inès Moreau (coordination)"}
