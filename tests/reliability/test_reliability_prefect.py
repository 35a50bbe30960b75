"""Reliability of durable waits: Prefect restarted or unreachable loses no run and no answer."""

from __future__ import annotations

import time
from datetime import timedelta
from uuid import UUID

import pytest

from models.core import clock, db
from models.core.audit import Actor, record_event
from models.core.enums import CaseType
from models.core.runs import deliver_resumes
from models.core.waits import find_wait, pending_resumes, request_resume
from tests.support.figures import record, scale
from tests.support.prefect_stack import (
    PrefectStack,
    run,
    run_env,
    settle,
    wait_no_run_process,
)

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="session"),
]


async def _suspended_runs(
    stack: PrefectStack, db_url: str, first_case: int, count: int, due_in: timedelta
) -> tuple[dict[int, UUID], int]:
    """`count` runs suspended until due_in; with the number handed back after a crash.

    Suspended means no process left: Prefect marks a run PAUSED before its process has
    finished exiting, and a process cut from the server on its way out ends non-zero, which
    the worker reports as a crash. The scenarios stop the server once the runs are only
    rows in its database, as the issue describes.
    """
    with db.session_scope() as session:
        due_at = clock.now(session) + due_in
    runs = {}
    for case_id in range(first_case, first_case + count):
        runs[case_id] = await run(
            "probe-until/probe-until",
            {"case_id": case_id, "due_at": due_at.isoformat()},
            run_env(db_url),
        )
    rescued = await settle(list(runs.values()), "PAUSED", timeout=900)
    for run_id in runs.values():
        left = await wait_no_run_process(stack, run_id, timeout=120)
        assert not left, f"run {run_id} still has its process after suspending: {left}"
    return runs, rescued


def _answer(case_id: int) -> None:
    """What the service does when a partner answers: store, then mark the wait."""
    with db.session_scope() as session:
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=case_id,
            action="probe.ready",
            actor=Actor.system(),
            payload={},
        )
        wait = find_wait(
            session=session, case_type=CaseType.SESSION, case_id=case_id, step="probe-until"
        )
        assert wait is not None
        request_resume(session=session, wait=wait, reason="answer")


async def test_prefect_server_restart_with_suspended_runs(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    from flows.tick import tick

    count = scale(100, 6)
    runs, rescued_at_start = await _suspended_runs(
        prefect_stack, db_url, 1000, count, timedelta(days=3)
    )
    started = time.monotonic()
    prefect_stack.stop_server()
    prefect_stack.start_server()
    restart_seconds = round(time.monotonic() - started, 1)

    answered = list(runs)[: count // 2]
    for case_id in answered:
        _answer(case_id)
    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=4))
    resumed_at = time.monotonic()
    summary = await tick()
    rescued = await settle(list(runs.values()), "COMPLETED", timeout=900)
    record(
        "prefect_server_restart",
        suspended_runs=count,
        answered=len(answered),
        due=count - len(answered),
        restart_seconds=restart_seconds,
        all_completed_seconds=round(time.monotonic() - resumed_at, 1),
        tick=summary,
        crashed_by_server_503_and_handed_back=rescued_at_start + rescued,
    )
    assert summary["resumed"] == count


async def test_answers_while_prefect_is_down_resume_once_it_is_back(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    count = scale(20, 3)
    runs, _ = await _suspended_runs(prefect_stack, db_url, 2000, count, timedelta(days=30))
    prefect_stack.stop_server()
    try:
        for case_id in runs:
            _answer(case_id)  # stored even though Prefect is unreachable
        counts = await deliver_resumes()
        assert counts["unreachable"] == count
        with db.session_scope() as session:
            assert len(pending_resumes(session)) == count
    finally:
        prefect_stack.start_server()
    counts = await deliver_resumes()
    await settle(list(runs.values()), "COMPLETED", timeout=600)
    record(
        "prefect_down_while_answering",
        answers=count,
        lost=0,
        resumed_after_recovery=counts["resumed"],
    )
    assert counts["resumed"] == count
