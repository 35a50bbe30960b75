"""Answering a link wakes the suspended flow run through a real Prefect server."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from models.catalogue import CASE_KINDS, STEP_KINDS
from models.core import clock, db
from models.core.audit import case_events
from models.core.enums import CaseType
from models.core.runs import deliver_resumes
from models.core.waits import Wait, find_wait
from service.main import create_app
from tests.support.env import free_port
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of, wait_for_state
from tests.support.service_kit import (
    PROBE_STEP,
    STEP,
    TEST_CASES,
    VALID_ANSWER,
    WAIT_STEP,
    ServiceProcess,
    World,
    build_world,
    new_link,
)

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setitem(STEP_KINDS, STEP, PROBE_STEP)
    monkeypatch.setitem(CASE_KINDS, CaseType.SESSION, TEST_CASES)
    with db.session_scope() as session:
        return build_world(session)


async def _suspended_run(db_url: str, world: World) -> tuple[str, str]:
    """A probe run waiting for the answer of case A; returns (run id, link token)."""
    with db.session_scope() as session:
        due_at = clock.now(session) + timedelta(days=30)
        token = new_link(session, world)
    run_id = await run(
        "probe-until/probe-until",
        {"case_id": world.case_a, "due_at": due_at.isoformat()},
        run_env(db_url),
    )
    await wait_for_state(run_id, "PAUSED")
    return str(run_id), token


def _wait(case_id: int) -> Wait:
    with Session(db.get_engine()) as session:
        wait = find_wait(
            session=session, case_type=CaseType.SESSION, case_id=case_id, step=WAIT_STEP
        )
        assert wait is not None
        return wait


async def _wait_tried(case_id: int, timeout: float = 60) -> Wait:
    """The wait once the service has tried to resume it (its error is recorded)."""
    deadline = time.monotonic() + timeout
    wait = _wait(case_id)
    while not wait.last_error and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        wait = _wait(case_id)
    return wait


def _woken(case_id: int) -> list[object]:
    with Session(db.get_engine()) as session:
        return [
            (e.payload or {}).get("outcome")
            for e in case_events(session, "session", case_id)
            if e.action == "probe.woken"
        ]


async def test_answering_the_link_resumes_the_run(
    prefect_stack: PrefectStack, db_url: str, world: World
) -> None:
    run_id, token = await _suspended_run(db_url, world)
    with TestClient(create_app()) as client:
        done = client.post(f"/r/{token}", data=VALID_ANSWER)
    assert done.status_code == 200
    await wait_for_state(UUID(run_id), "COMPLETED")
    assert _woken(world.case_a) == ["ready"]
    assert _wait(world.case_a).resume_pending is False


async def test_with_prefect_down_the_answer_is_kept_and_resumed_later(
    prefect_stack: PrefectStack, db_url: str, world: World
) -> None:
    run_id, token = await _suspended_run(db_url, world)
    dead = f"http://127.0.0.1:{free_port()}/api"
    with ServiceProcess(db_url, PREFECT_API_URL=dead, CLSM_PREFECT_API_URL=dead) as service:
        done = httpx.post(f"{service.url}/r/{token}", data=VALID_ANSWER, timeout=60)
        assert done.status_code == 200 and "est enregistrée" in done.text
        # the resume is tried after the page is sent: wait until it has failed
        wait = await _wait_tried(world.case_a)
    assert wait.resume_pending is True and wait.last_error
    state = await state_of(UUID(run_id))
    assert state is not None and state.is_paused()
    assert _woken(world.case_a) == []

    counts = await deliver_resumes()  # what tick does once Prefect is back
    assert counts["resumed"] == 1
    await wait_for_state(UUID(run_id), "COMPLETED")
    assert _woken(world.case_a) == ["ready"]
