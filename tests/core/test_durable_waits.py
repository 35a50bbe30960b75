"""Durable waits through a real Prefect server and process worker."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlmodel import Session

from models.core import clock, db
from models.core.audit import Actor, case_events, record_event
from models.core.enums import CaseType
from models.core.runs import deliver_resumes
from models.core.waits import Wait, find_wait, request_resume
from tests.support.prefect_stack import (
    PrefectStack,
    form_schema,
    run,
    run_env,
    run_processes,
    wait_for_state,
    wait_no_run_process,
)

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]


def _wait(case_id: int, step: str) -> Wait:
    with Session(db.get_engine()) as session:
        wait = find_wait(session=session, case_type=CaseType.SESSION, case_id=case_id, step=step)
        assert wait is not None
        return wait


def _actions(case_id: int) -> list[tuple[str, dict[str, object] | None]]:
    with Session(db.get_engine()) as session:
        return [(e.action, e.payload) for e in case_events(session, "session", case_id)]


async def test_coordinator_form_is_stored_and_resume_finishes_the_run(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import aresume_flow_run
    from prefect.input.run_input import keyset_from_paused_state

    run_id = await run("probe-ask/probe-ask", {"case_id": 1, "linger": 5}, run_env(db_url))
    await wait_for_state(run_id, "RUNNING")
    assert run_processes(prefect_stack, run_id), "a running flow run has its process"
    state = await wait_for_state(run_id, "PAUSED")
    keyset = keyset_from_paused_state(state)
    wait = _wait(1, "probe")
    assert wait.key == "session-1-probe-0"
    assert wait.flow_run_id == str(run_id)

    async with get_client() as client:
        schema = json.loads(await client.read_flow_run_input(run_id, keyset["schema"]))
        description = await client.read_flow_run_input(run_id, keyset["description"])
    assert keyset["schema"] == f"suspended-{wait.key}-schema"
    assert schema["properties"]["decision"]["title"] == "Décision de la coordination"
    assert schema["properties"]["count"]["default"] == 16  # prefilled
    assert "Sonde" in description
    # the run waits without any process of its own
    assert await wait_no_run_process(prefect_stack, run_id) == []

    await aresume_flow_run(run_id, run_input={"decision": "retenu", "count": 12})
    await wait_for_state(run_id, "COMPLETED")
    assert _actions(1) == [("probe.answered", {"decision": "retenu", "count": 12})]
    assert _wait(1, "probe").status == "done"


async def _schema_of_generation(run_id: UUID, generation: int) -> tuple[dict[str, Any], str]:
    """The form (schema, description) the run asks with the key of this generation."""
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_paused_state

    deadline = time.monotonic() + 120
    async with get_client() as client:
        while time.monotonic() < deadline:
            state = await wait_for_state(run_id, "PAUSED")
            keyset = keyset_from_paused_state(state)
            if keyset["schema"].endswith(f"-{generation}-schema"):
                schema = await form_schema(run_id)
                description = await client.read_flow_run_input(run_id, keyset["description"])
                return schema, str(json.loads(description))
            await asyncio.sleep(0.5)
    raise AssertionError(f"run {run_id} never asked with generation {generation}")


async def test_a_refused_answer_is_asked_again_with_what_was_typed_and_why(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    from prefect.flow_runs import aresume_flow_run

    run_id = await run("probe-ask/probe-ask", {"case_id": 11}, run_env(db_url))
    await _schema_of_generation(run_id, 0)
    await aresume_flow_run(run_id, run_input={"decision": "refuser", "count": 7})

    schema, description = await _schema_of_generation(run_id, 1)
    assert description.startswith(
        "**Saisie refusée : « refuser » n'est pas une décision (7 retenus)**"
    )
    assert "corrigez-la" in description and "Sonde" in description
    assert schema["properties"]["decision"]["default"] == "refuser"  # what was typed
    assert schema["properties"]["count"]["default"] == 7
    assert schema["properties"]["decision"]["title"] == "Décision de la coordination"
    assert _actions(11) == [
        (
            "form.refused",
            {"step": "probe", "error": "« refuser » n'est pas une décision (7 retenus)"},
        )
    ]
    refused = _wait(11, "probe")
    assert refused.status == "open" and refused.refused_answer == {
        "decision": "refuser",
        "count": 7,
    }

    await aresume_flow_run(run_id, run_input={"decision": "retenu", "count": 7})
    await wait_for_state(run_id, "COMPLETED")
    assert _actions(11)[-1] == ("probe.answered", {"decision": "retenu", "count": 7})
    done = _wait(11, "probe")
    assert done.status == "done" and done.refused_answer is None and done.refused_reason == ""


async def test_date_wait_is_resumed_by_tick_once_the_clock_passes(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    from flows.tick import tick

    with db.session_scope() as session:
        due_at = clock.now(session) + timedelta(days=2)
    run_id = await run(
        "probe-until/probe-until", {"case_id": 2, "due_at": due_at.isoformat()}, run_env(db_url)
    )
    await wait_for_state(run_id, "PAUSED")
    summary = await tick()
    assert summary["due"] == 0
    await wait_for_state(run_id, "PAUSED")

    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=3))
    summary = await tick()
    assert summary["due"] == 1 and summary["resumed"] == 1
    await wait_for_state(run_id, "COMPLETED")
    assert _actions(2)[-1] == ("probe.woken", {"outcome": "due"})


async def test_answer_recorded_elsewhere_wakes_the_run(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    with db.session_scope() as session:
        due_at = clock.now(session) + timedelta(days=30)
    run_id = await run(
        "probe-until/probe-until", {"case_id": 3, "due_at": due_at.isoformat()}, run_env(db_url)
    )
    await wait_for_state(run_id, "PAUSED")
    with db.session_scope() as session:
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=3,
            action="probe.ready",
            actor=Actor.system(),
            payload={},
        )
        wait = find_wait(session=session, case_type=CaseType.SESSION, case_id=3, step="probe-until")
        assert wait is not None
        request_resume(session=session, wait=wait, reason="answer")
    counts = await deliver_resumes()
    assert counts["resumed"] == 1
    await wait_for_state(run_id, "COMPLETED")
    assert _actions(3)[-1] == ("probe.woken", {"outcome": "ready"})


async def test_a_crashed_run_is_handed_back_and_goes_on(
    prefect_stack: PrefectStack, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    from flows.tick import tick
    from models.core.settings import get_settings

    with db.session_scope() as session:
        due_at = clock.now(session) + timedelta(days=1)
    run_id = await run(
        "probe-until/probe-until", {"case_id": 5, "due_at": due_at.isoformat()}, run_env(db_url)
    )
    await wait_for_state(run_id, "PAUSED")
    async with get_client() as client:  # as if its process had died with its worker
        await client.set_flow_run_state(run_id, Crashed(message="worker tué"), force=True)
    await wait_for_state(run_id, "CRASHED")
    monkeypatch.setenv("CLSM_STUCK_RUN_SECONDS", "0.1")
    get_settings.cache_clear()
    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=2))
    summary = await tick()
    assert summary["rescued"] == 1
    await wait_for_state(run_id, "COMPLETED")
    assert _actions(5)[-1] == ("probe.woken", {"outcome": "due"})


def test_a_wake_up_gives_a_waiting_form_as_it_stands() -> None:
    """Prefect checks a resume's input against the waiting form, whose needed fields are
    required: tick's and the service's wake-ups send the form's shown values with theirs."""
    from flows.inputs.saisine import KEEP, meeting_watch_form
    from flows.waits import prefilled
    from models.core.runs import form_defaults

    shown = prefilled(meeting_watch_form(), "", {"new_at": "15:30"}).model_json_schema()
    values = {**form_defaults(shown), "reason": "due"}
    assert set(shown["required"]) <= set(values)
    assert values["action"] == KEEP and values["new_at"] == "15:30"
    assert meeting_watch_form().model_validate(values).reason == "due"
