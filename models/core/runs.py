"""Prefect, seen from the app: wake suspended runs, hand back stuck ones, mark lost ones.

The only module of `models` that imports prefect (lazily: a process that never talks to
Prefect does not pay for its import).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlmodel import col, select

from models.core.waits import Wait, WaitStatus


class ResumeOutcome(StrEnum):
    RESUMED = "resumed"
    BUSY = "busy"
    FINISHED = "finished"
    UNREACHABLE = "unreachable"


def form_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The values a form shows as it comes (its prefilled defaults).

    A wake-up (tick at the due time, the service after a partner's answer) resumes a run
    that may be waiting on a coordinator's form: Prefect's server checks any input against
    the form's schema, whose fields a person must fill are required. The wake-up gives the
    form as it stands, which its flow reads as "nothing decided" (keep, do not close).
    """
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    return {name: prop["default"] for name, prop in properties.items() if "default" in prop}


async def resume_run(flow_run_id: str, run_input: dict[str, Any]) -> tuple[ResumeOutcome, str]:
    """Resume one suspended run through Prefect's API; the outcome and, if any, the error."""
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import aresume_flow_run

    try:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(flow_run_id))
            if run.state is None or run.state.is_final():
                return ResumeOutcome.FINISHED, ""
            if not run.state.is_paused():
                return ResumeOutcome.BUSY, ""
            keyset = run.state.state_details.run_input_keyset or {}
            if "schema" in keyset:
                shown = json.loads(await client.read_flow_run_input(run.id, keyset["schema"]))
                run_input = {**form_defaults(shown), **run_input}
        await aresume_flow_run(UUID(flow_run_id), run_input=run_input)
    except Exception as error:  # network down, server error: retried by tick
        return ResumeOutcome.UNREACHABLE, f"{type(error).__name__}: {error}"[:500]
    return ResumeOutcome.RESUMED, ""


async def deliver_resumes(wait_ids: list[int] | None = None) -> dict[str, int]:
    """Wake up marked waits (all pending ones by default); failures stay pending for tick.

    No transaction is held while Prefect is called. A busy run (running right now) keeps
    its mark: it may have read the database before the answer arrived, and a later tick
    wakes it once it is suspended again; a run that sees the answer spends the mark itself
    (`next_generation`, `close_wait`).
    """
    import asyncio

    from models.core.db import session_scope

    def read_targets() -> list[tuple[int | None, str, str]]:
        with session_scope() as session:
            query = select(Wait).where(
                Wait.status == WaitStatus.OPEN, col(Wait.resume_pending).is_(True)
            )
            if wait_ids is not None:
                query = query.where(col(Wait.id).in_(wait_ids))
            return [(w.id, w.flow_run_id, w.resume_reason) for w in session.exec(query)]

    def note(wait_id: int | None, flow_run_id: str, outcome: ResumeOutcome, error: str) -> None:
        with session_scope() as session:
            wait = session.get(Wait, wait_id)
            if wait is None or wait.flow_run_id != flow_run_id:
                return
            if outcome in (ResumeOutcome.RESUMED, ResumeOutcome.FINISHED):
                wait.resume_pending = False
                wait.last_error = ""
            elif outcome is ResumeOutcome.UNREACHABLE:
                wait.last_error = error
            session.add(wait)

    # the database is used from a thread: a writer waiting on SQLite's lock must not hold
    # up the event loop (the service answers other partners on it meanwhile)
    counts = {outcome.value: 0 for outcome in ResumeOutcome}
    for wait_id, flow_run_id, reason in await asyncio.to_thread(read_targets):
        outcome, error = await resume_run(flow_run_id, {"reason": reason or "answer"})
        counts[outcome.value] += 1
        await asyncio.to_thread(note, wait_id, flow_run_id, outcome, error)
    return counts


MAX_RESCUES = 5


async def reschedule_stuck_runs(older_than_seconds: float) -> int:
    """Give back to the work pool the runs a dead worker left behind.

    A worker that dies after claiming a run (state PENDING) and before starting its process
    leaves the run where no other worker looks; a run whose process died with its worker
    ends CRASHED. Past `older_than_seconds` (real time: a run process starts in seconds)
    such a run is set back to SCHEDULED and any worker takes it: flows are replay-safe, so
    it goes on from the step the database says. A run that keeps crashing is left alone
    after MAX_RESCUES runs (a coordinator looks at it in the Prefect UI).
    """
    from datetime import UTC
    from datetime import datetime as real_datetime

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Scheduled

    cutoff = real_datetime.now(UTC).timestamp() - older_than_seconds
    pending = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.CRASHED])
        )
    )
    rescheduled = 0
    async with get_client() as client:
        for flow_run in await client.read_flow_runs(flow_run_filter=pending, limit=200):
            state = flow_run.state
            if state is None or state.timestamp.timestamp() > cutoff:
                continue
            if flow_run.deployment_id is None or flow_run.run_count > MAX_RESCUES:
                continue
            await client.set_flow_run_state(flow_run.id, Scheduled(name="Reprogrammé"), force=True)
            rescheduled += 1
    return rescheduled


SILENT_MESSAGE = "Plus de signe de vie du processus (heartbeat) : run marqué planté."


async def crash_silent_runs(silent_seconds: float) -> int:
    """Mark CRASHED the running runs whose process stopped beating (its machine was lost).

    A run whose process vanished with its worker and its machine reports nothing and would
    stay RUNNING forever. Runs beat every 30 s (PREFECT_FLOWS_HEARTBEAT_FREQUENCY). A run
    RUNNING for over `silent_seconds`, that has beaten since it started and not in the last
    `silent_seconds`, is marked CRASHED; `reschedule_stuck_runs` hands it back later. The
    state is read at the moment of the decision, so a run suspended, paused or finished
    meanwhile is never touched, and a run without heartbeats (setting off) is left alone.
    """
    from datetime import UTC, timedelta
    from datetime import datetime as real_datetime

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )
    from prefect.states import Crashed

    now = real_datetime.now(UTC)
    cutoff = now - timedelta(seconds=silent_seconds)
    running = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    )
    crashed = 0
    async with get_client() as client:
        for flow_run in await client.read_flow_runs(flow_run_filter=running, limit=200):
            state = flow_run.state
            if flow_run.deployment_id is None or state is None or state.timestamp > cutoff:
                continue
            beats = await client.read_events(
                filter=EventFilter(
                    occurred=EventOccurredFilter(since=state.timestamp, until=now),
                    event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                    resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run.id}"]),
                ),
                limit=1,
            )
            if not beats.events or beats.events[0].occurred > cutoff:
                continue  # no heartbeat at all (left alone), or a recent one: alive
            current = await client.read_flow_run(flow_run.id)
            if current.state is None or current.state.id != state.id:
                continue  # moved on while we looked
            await client.set_flow_run_state(
                flow_run.id, Crashed(message=SILENT_MESSAGE), force=True
            )
            crashed += 1
    return crashed
