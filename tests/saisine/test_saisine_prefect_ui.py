"""The coordinator's side of a saisine in a real browser: the orientation form in the
Prefect UI, in French and prefilled, submitted, and the run goes on to the closure."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlmodel import Session, select

from models.core import db
from models.core.audit import case_events
from models.core.links import StepLink
from models.saisine.common import orientations
from models.saisine.states import SaisineStatus, Step
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
from tests.support.browser import (
    account,
    chromium,
    open_prefect_ui,
    prefect_field,
    submit_prefect_form,
)
from tests.support.env import TMP
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of, wait_for_state
from tests.support.service_kit import ServiceProcess

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


async def _to_orientation_form(db_url: str) -> Any:
    run_id = await run("saisine/saisine", intake_parameters(), run_env(db_url))
    await describe_as_the_coordinator(run_id)
    before = await wait_for_state(run_id, "PAUSED")
    await resume_form(run_id, {"partners": ["CHL"]})
    before = await moved_on(run_id, before, "PAUSED")
    with Session(db.get_engine()) as session:
        link = session.exec(select(StepLink).where(StepLink.step == Step.CONSULTATION)).one()
    assert link.id is not None
    await answer_as_the_service(link.id, {"knows_situation": "oui", "proposal": "RDV au CMP"})
    await moved_on(run_id, before, "PAUSED")
    return run_id, await state_of(run_id)


def test_the_coordinator_orients_the_saisine_in_the_prefect_ui(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    setup_cell()
    email = account("coordinator", "poitiers", "Inès Moreau")
    run_id, paused = _sync(_to_orientation_form(db_url))
    with ServiceProcess(db_url) as service, chromium() as browser:
        page = open_prefect_ui(browser, service.url, email, f"/runs/flow-run/{run_id}")
        page.get_by_role("button", name=re.compile("Resume", re.I)).first.click(timeout=60_000)
        who = prefect_field(page, "Qui agit")
        who.wait_for(timeout=30_000)
        days = prefect_field(page, "Suivi auprès de la personne")
        assert days.input_value() == "30"  # prefilled by the flow
        assert page.get_by_text("Suite donnée").first.is_visible()
        # the partners' answers are read on the service's saisine page, never in Prefect
        assert not page.get_by_text("RDV au CMP").first.is_visible()
        page.screenshot(path=str(TMP / "prefect-ui-saisine-orientation.png"))
        who.fill("CHL")
        days.fill("0")
        submit_prefect_form(page, lambda: _sync(state_of(run_id)).id != paused.id)
        _sync(moved_on(run_id, paused, "COMPLETED"))
    saisine = the_saisine(run_id)
    assert saisine.status is SaisineStatus.CLOSED
    with Session(db.get_engine()) as session:
        [orientation] = orientations(session, saisine)
        assert (orientation.who_acts, orientation.follow_up_on) == ("CHL", None)
        assert orientation.text == "Mise en lien avec la coordinatrice de parcours (CHL)"
        assert saisine.id is not None
        changes = [
            e
            for e in case_events(session, "saisine", saisine.id)
            if (e.payload or {}).get("to") == "oriented"
        ]
    assert changes and changes[0].channel == "prefect-ui"
    assert changes[0].actor_label == "Inès Moreau (coordination)"
