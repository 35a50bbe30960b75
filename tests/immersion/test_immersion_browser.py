"""The coordinator approves the demo session's selection in the Prefect UI, in Chromium."""

from __future__ import annotations

import re
import time
from uuid import UUID

import pytest
from sqlmodel import select

from models.core import db
from models.core.audit import case_events
from models.immersion.common import applications, get_session
from models.immersion.selection import selection_proposal
from models.immersion.states import ApplicationStatus, SessionStatus
from models.immersion.tables import ImmersionSession
from tests.immersion.test_prefect_ui import _sync
from tests.support.browser import chromium, open_prefect_ui, submit_prefect_form
from tests.support.env import TMP
from tests.support.prefect_stack import PrefectStack, run_env, state_of, wait_for_state
from tests.support.service_kit import ServiceProcess

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


def test_the_selection_form_is_prefilled_in_french_and_goes_on(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    from service.demo import DEMO_PASSWORD, load_demo, load_immersion_demo

    load_demo()
    load_immersion_demo(run_env(db_url))
    with db.session_scope() as session:
        row = session.exec(select(ImmersionSession)).one()
        assert row.flow_run_id is not None and row.id is not None
        run_id, row_id = UUID(row.flow_run_id), row.id
        proposal = selection_proposal(session, row)
    kept = [d.number for d in proposal if d.outcome.value == "selected"]
    paused = _sync(wait_for_state(run_id, "PAUSED", timeout=120))
    # the demo's coordinator logs in at the service, which opens the Prefect UI for her
    with ServiceProcess(db_url) as service, chromium() as browser:
        page = open_prefect_ui(
            browser,
            service.url,
            "coordination@clsm-poitiers.example",
            f"/runs/flow-run/{run_id}",
            DEMO_PASSWORD,
        )
        page.get_by_role("button", name=re.compile("Resume", re.I)).first.click(timeout=60_000)
        field = page.locator(".schema-form-property", has_text="Candidatures retenues")
        field.locator(".p-select-button__control").first.wait_for(timeout=30_000)
        shown = field.first.locator(".p-select-button__value .p-tag").all_text_contents()
        assert [int(t.split()[1]) for t in shown] == kept  # the proposal, prefilled by label
        assert page.get_by_text("24 candidatures pour 16 places").first.is_visible()
        page.screenshot(path=str(TMP / "immersion-selection-form.png"))
        # submitted as proposed
        # a click can be lost on a loaded machine: submitted until the run leaves its pause
        submit_prefect_form(page, lambda: _sync(state_of(run_id)).id != paused.id)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the resumed run records the selection
        with db.session_scope() as session:
            if get_session(session, row_id).status is SessionStatus.PLACEMENT:
                break
        time.sleep(0.5)
    with db.session_scope() as session:
        assert get_session(session, row_id).status is SessionStatus.PLACEMENT
        statuses = {a.number: a.status for a in applications(session, row_id)}
    assert {n for n, s in statuses.items() if s is ApplicationStatus.SELECTED} == set(kept)
    assert sum(s is ApplicationStatus.WAITLISTED for s in statuses.values()) == 8
    with db.session_scope() as session:
        decided = [e for e in case_events(session, "session", row_id) if e.channel == "prefect-ui"]
    # the selection's decisions name the person who submitted the form
    assert decided and {e.actor_label for e in decided} == {"Hélène Garnier (coordination)"}
