"""The coordinator's side in a real browser: a suspended run's French form in the Prefect UI."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from sqlmodel import Session

from models.core import db
from models.core.audit import case_events
from tests.support.browser import (
    account,
    chromium,
    open_prefect_ui,
    prefect_field,
    submit_prefect_form,
)
from tests.support.env import TMP
from tests.support.prefect_stack import PrefectStack, run, run_env, settle, state_of
from tests.support.service_kit import ServiceProcess

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

T = TypeVar("T")


def _sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from this synchronous (Playwright) test, on its own thread."""
    box: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(asyncio.run(coroutine))
        except BaseException as error:  # re-raised in the test's thread, with its message
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


def test_coordinator_answers_the_french_form_in_the_prefect_ui(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    email = account("coordinator", "poitiers", "Inès Moreau")
    run_id = _sync(
        run("probe-ask/probe-ask", {"case_id": 7}, run_env(db_url), tags=["clsm:poitiers"])
    )
    _sync(settle([run_id], "PAUSED", timeout=300))  # (a run crashed by a busy server: rescued)
    with ServiceProcess(db_url) as service, chromium() as browser:
        page = open_prefect_ui(browser, service.url, email, f"/runs/flow-run/{run_id}")
        page.get_by_role("button", name=re.compile("Resume", re.I)).first.click(timeout=60_000)
        decision = prefect_field(page, "Décision de la coordination")
        decision.wait_for(timeout=30_000)
        count = prefect_field(page, "Nombre retenu")
        assert count.input_value() == "16"  # prefilled from the flow
        assert page.get_by_text("Sonde").first.is_visible()
        page.screenshot(path=str(TMP / "prefect-ui-form.png"))
        decision.fill("retenu par la coordination")
        count.fill("15")
        paused = _sync(state_of(run_id))
        assert paused is not None and paused.is_paused()
        submit_prefect_form(page, lambda: _sync(state_of(run_id)).id != paused.id)
        _sync(settle([run_id], "COMPLETED", timeout=300))
    with Session(db.get_engine()) as session:
        events = case_events(session, "session", 7)
    assert [(e.action, e.payload) for e in events] == [
        ("probe.answered", {"decision": "retenu par la coordination", "count": 15})
    ]
    assert events[0].channel == "prefect-ui"
    assert events[0].actor_label == "Inès Moreau (coordination)"  # the person, by the gateway
    assert events[0].actor_ref.startswith("user:")
