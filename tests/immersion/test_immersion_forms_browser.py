"""The coordinator's forms of a session in the Prefect UI, answered in Chromium as a person
would (through the service's gateway): choices picked in multiselects, a refusal shown in
French above the form with what was chosen kept, corrected, accepted; the resulting mails
read in the recipients' inbox (aiosmtpd). Two runs only: the demo's selection, and a session
prepared in the database that waits on the preparation day's attendance.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from playwright.sync_api import Locator, Page
from sqlmodel import select

from models.core import clock, db
from models.core.audit import Actor
from models.core.enums import Role
from models.core.people import Contact
from models.immersion.call import (
    ApplicationForm,
    create_session,
    open_call,
    start_selection,
    submit_application,
)
from models.immersion.common import advance_to, applications, get_session
from models.immersion.selection import application_label, record_selection, selection_proposal
from models.immersion.states import ApplicationStatus, SessionStatus
from models.immersion.tables import Application, ImmersionSession, ImmersionSessionCreate
from tests import factories
from tests.immersion.test_prefect_ui import _sync
from tests.support.browser import chromium, open_prefect_ui, submit_prefect_form
from tests.support.env import TMP
from tests.support.immersion import build_clsm, launch_parameters, session_dates
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of, wait_for_state
from tests.support.service_kit import PASSWORD, ServiceProcess
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

SYSTEM = Actor.system("test")


def _mail_env(server: SmtpServer) -> dict[str, str]:
    """The flow run sends its mail itself, to the test's SMTP server."""
    return {
        "CLSM_SMTP_HOST": server.host,
        "CLSM_SMTP_PORT": str(server.port),
        "CLSM_SMTP_SECURITY": "none",
    }


def _until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.5)


def _inbox(server: SmtpServer, email: str) -> list[str]:
    """Subject and text of each mail `email` received."""
    return [
        f"{m.message['Subject']}\n{m.text()}"
        for m in server.messages
        if email.lower() in [r.lower() for r in m.recipients]
    ]


# -- the Prefect UI's form, as a person uses it --------------------------------------------
def _open_form(page: Page, title: str) -> None:
    """The run's Resume dialog (the page reloaded: a refused answer is asked again)."""
    page.reload()
    page.get_by_role("button", name=re.compile("Resume", re.I)).first.click(timeout=60_000)
    _control(page, title).wait_for(timeout=60_000)


def _property(page: Page, title: str) -> Locator:
    return page.locator(".schema-form-property", has=page.get_by_text(title, exact=True)).first


def _control(page: Page, title: str) -> Locator:
    return _property(page, title).locator(".p-select-button__control").first


def _chosen(page: Page, title: str) -> list[str]:
    """The labels chosen in a multiselect, in their order."""
    tags = _property(page, title).locator(".p-select-button__value .p-tag")
    return [t.strip() for t in tags.all_text_contents()]


def _toggle(page: Page, title: str, label: str) -> None:
    """Open the multiselect, pick (or unpick) the option `label` (a pick goes at the end of
    the list), close it again with its button."""
    control = _control(page, title)
    control.click()
    option = page.get_by_role("option", name=label, exact=True)
    option.scroll_into_view_if_needed()
    option.click()
    control.click()
    option.wait_for(state="hidden")


def _submit(page: Page, run_id: UUID) -> None:
    paused = _sync(state_of(run_id))
    submit_prefect_form(page, lambda: _sync(state_of(run_id)).id != paused.id)
    _sync(wait_for_state(run_id, "PAUSED", timeout=180))


def _status(row_id: int) -> SessionStatus:
    with db.session_scope() as session:
        return get_session(session, row_id).status


def _labels(row_id: int, *statuses: ApplicationStatus) -> dict[str, Application]:
    with db.session_scope() as session:
        return {application_label(session, a): a for a in applications(session, row_id, *statuses)}


def _email_of(application: Application) -> str:
    with db.session_scope() as session:
        contact = session.get(Contact, application.contact_id)
        assert contact is not None
        return contact.email


# -- the selection -------------------------------------------------------------------------
def test_selection_refused_over_capacity_then_corrected_in_the_prefect_ui(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer
) -> None:
    from service.demo import DEMO_PASSWORD, load_demo, load_immersion_demo

    load_demo()
    load_immersion_demo(run_env(db_url, **_mail_env(smtp_server)))
    with db.session_scope() as session:
        row = session.exec(select(ImmersionSession)).one()
        assert row.flow_run_id is not None and row.id is not None
        run_id, row_id = UUID(row.flow_run_id), row.id
        proposal = selection_proposal(session, row)
    labels = _labels(row_id)
    by_number = {a.number: label for label, a in labels.items()}
    kept = [by_number[d.number] for d in proposal if d.outcome.value == "selected"]
    waiting = [
        by_number[d.number]
        for d in sorted(proposal, key=lambda d: d.waitlist_rank or 0)
        if d.outcome.value == "waitlisted"
    ]
    assert (len(kept), len(waiting)) == (16, 8)
    _sync(wait_for_state(run_id, "PAUSED", timeout=180))
    with ServiceProcess(db_url) as service, chromium() as browser:
        page = open_prefect_ui(
            browser,
            service.url,
            "coordination@clsm-poitiers.example",
            f"/runs/flow-run/{run_id}",
            DEMO_PASSWORD,
        )
        _open_form(page, "Candidatures retenues")
        # the proposal, prefilled by label; no field says "(Optional)"
        assert _chosen(page, "Candidatures retenues") == kept
        assert _chosen(page, "Liste d'attente, dans l'ordre") == waiting
        assert "(Optional)" not in page.inner_text("body")
        # the coordinator keeps the last of the waiting list too: 17 for 16 places
        promoted = waiting[-1]
        _toggle(page, "Liste d'attente, dans l'ordre", promoted)
        _toggle(page, "Candidatures retenues", promoted)
        comment = "Priorité à l'équipe de Châtellerault, à réexaminer"
        field = _property(page, "Commentaire (facultatif)").locator("textarea, input").first
        field.click()
        page.keyboard.type(comment)
        _submit(page, run_id)
        assert _status(row_id) is SessionStatus.SELECTION

        # asked again: the French reason on top, what was chosen kept
        _open_form(page, "Candidatures retenues")
        text = page.inner_text("body")
        assert "Saisie refusée : 17 candidatures retenues pour 16 places : retirez-en 1" in text
        assert _chosen(page, "Candidatures retenues") == [*kept, promoted]
        assert _chosen(page, "Liste d'attente, dans l'ordre") == waiting[:-1]
        page.screenshot(path=str(TMP / "immersion-selection-refused.png"), full_page=True)
        # corrected: the last kept is let go; the first waiting goes to the end of the list
        dropped, moved = kept[-1], waiting[0]
        _toggle(page, "Candidatures retenues", dropped)
        _toggle(page, "Liste d'attente, dans l'ordre", moved)
        _toggle(page, "Liste d'attente, dans l'ordre", moved)
        assert _chosen(page, "Liste d'attente, dans l'ordre") == [*waiting[1:-1], moved]
        _submit(page, run_id)
    assert _status(row_id) is SessionStatus.PLACEMENT
    after = _labels(row_id)
    assert after[promoted].status is ApplicationStatus.SELECTED
    assert after[dropped].status is ApplicationStatus.NOT_SELECTED
    assert after[moved].waitlist_rank == 7 and after[waiting[1]].waitlist_rank == 1
    # the decisions reach the applicants' inboxes (sent by the run itself)
    _until(lambda: len(_inbox(smtp_server, _email_of(after[moved]))) > 0, "waiting-list mail")
    _until(lambda: len(_inbox(smtp_server, _email_of(after[dropped]))) > 0, "refusal mail")
    _until(lambda: len(_inbox(smtp_server, _email_of(after[promoted]))) > 0, "selected mail")
    assert "au rang 7" in _inbox(smtp_server, _email_of(after[moved]))[-1]
    assert "Votre candidature est retenue" in _inbox(smtp_server, _email_of(after[promoted]))[-1]
    assert "Liste d'attente" not in _inbox(smtp_server, _email_of(after[dropped]))[-1]


# -- the preparation day's attendance --------------------------------------------------------
APPLICANTS = [
    ("Émilie Dupré", "emilie", "CCAS", "CHL"),
    ("Jérôme Lefèvre", "jerome", "CHL", "DAC"),
    ("Agnès Bréval", "agnes", "DAC", "UDAF"),
]


def _session_after_its_preparation_day() -> tuple[int, str, dict[str, Any], str]:
    """A session prepared in the database: three kept, the preparation day just over."""
    with db.session_scope() as session:
        clsm, orgs = build_clsm(session)
        coordinator = factories.user(session, clsm, Role.COORDINATOR, PASSWORD)
        dates = session_dates(clock.now(session))
        row = create_session(
            session=session,
            data=ImmersionSessionCreate(
                clsm_slug=clsm.slug,
                title="Immersions 2027 — session 1",
                capacity=3,
                structures=[o.label for o in orgs],
                **dates,
            ),
            flow_run_id="prepared",
            actor=SYSTEM,
        )
        open_call(session=session, row=row, actor=SYSTEM)
        homes = {o.label: o for o in orgs}
        for name, plain, home, wish in APPLICANTS:
            org = homes[home]
            assert org.id is not None
            submit_application(
                session=session,
                row=row,
                organisation_id=org.id,
                form=ApplicationForm(
                    name=name,
                    email=f"{plain}@{home.lower()}.example",
                    function="Infirmière",
                    manager_name="Cadre de santé",
                    manager_email=f"cadre@{home.lower()}.example",
                    motivation="Découvrir les missions des partenaires",
                    wishes=[wish],
                    availability="",
                ),
                actor=SYSTEM,
            )
        clock.advance(session=session, delta=timedelta(days=11))  # the call is closed
        start_selection(session=session, row=row, actor=SYSTEM)
        record_selection(
            session=session, row=row, decisions=selection_proposal(session, row), actor=SYSTEM
        )
        advance_to(session=session, row=row, to=SessionStatus.AGREEMENTS, actor=SYSTEM)
        advance_to(session=session, row=row, to=SessionStatus.PREPARATION, actor=SYSTEM)
        clock.advance(
            session=session,
            delta=dates["preparation_end"] - clock.now(session) + timedelta(minutes=1),
        )
        assert row.id is not None
        return row.id, clsm.slug, dates, coordinator.email


def test_preparation_attendance_and_a_withdrawal_in_the_prefect_ui(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer
) -> None:
    row_id, slug, dates, coordinator = _session_after_its_preparation_day()
    parameters = launch_parameters(
        slug,
        dates,
        title="Immersions 2027 — session 1",
        structures=["CCAS", "CHL", "Département", "DAC", "UDAF"],
        session_id=row_id,
    )
    run_id = _sync(
        run(
            "immersion-session/immersion-session",
            parameters,
            run_env(db_url, **_mail_env(smtp_server)),
            tags=[f"clsm:{slug}"],
        )
    )
    _sync(wait_for_state(run_id, "PAUSED", timeout=240))
    everyone = list(_labels(row_id, ApplicationStatus.SELECTED))
    assert len(everyone) == 3
    emilie, jerome, agnes = everyone
    with ServiceProcess(db_url) as service, chromium() as browser:
        page = open_prefect_ui(browser, service.url, coordinator, f"/runs/flow-run/{run_id}")
        _open_form(page, "Participants présents")
        assert _chosen(page, "Participants présents") == everyone  # all proposed present
        assert _chosen(page, "Participants à retirer de la session (facultatif)") == []
        assert "(Optional)" not in page.inner_text("body")
        # Jérôme is withdrawn, but still ticked present: refused in French
        _toggle(page, "Participants à retirer de la session (facultatif)", jerome)
        reason = _property(page, "Motif du retrait (si vous retirez quelqu'un)")
        reason.locator("textarea, input").first.click()
        page.keyboard.type("Absent à la préparation, ne peut plus se libérer")
        _submit(page, run_id)
        assert _status(row_id) is SessionStatus.PREPARATION

        _open_form(page, "Participants présents")
        text = page.inner_text("body")
        assert "Saisie refusée : un participant retiré de la session ne peut pas être" in text
        assert jerome in text and "[" not in text.split("Saisie refusée")[1].split("\n")[0]
        assert _chosen(page, "Participants à retirer de la session (facultatif)") == [jerome]
        typed = _property(page, "Motif du retrait (si vous retirez quelqu'un)")
        value = typed.locator("textarea, input").first.input_value()
        assert value == "Absent à la préparation, ne peut plus se libérer"  # kept
        # corrected: Jérôme is not present; Agnès was absent too (but stays in the session)
        _toggle(page, "Participants présents", jerome)
        _toggle(page, "Participants présents", agnes)
        assert _chosen(page, "Participants présents") == [emilie]
        _submit(page, run_id)
    assert _status(row_id) is SessionStatus.IMMERSION
    after = _labels(row_id)
    assert after[jerome].status is ApplicationStatus.WITHDRAWN
    assert after[agnes].status is ApplicationStatus.SELECTED
    _until(lambda: len(_inbox(smtp_server, _email_of(after[jerome]))) > 0, "withdrawal mail")
    assert any(
        "Retrait de votre candidature" in m for m in _inbox(smtp_server, _email_of(after[jerome]))
    )
