"""Durable waits: what a suspended flow run is waiting for, and how to wake it up.

The app database records each wait (case, step, flow run, due time). A run suspended by
Prefect holds no process; it is woken up by `resume_wait`, called by the service when a
person answers and by `tick` when the due time passes. If Prefect cannot be reached the
wake-up is remembered (`resume_pending`) and retried by `tick`, so no answer is lost.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from models.core import clock
from models.core.base import UTCDateTime
from models.core.enums import CaseType

KEY_PATTERN = re.compile(r"^[a-z0-9-]+$")


class WaitStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class Wait(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("case_type", "case_id", "step", name="uq_wait_step"),)

    id: int | None = Field(default=None, primary_key=True)
    case_type: str = Field(max_length=20)
    case_id: int
    step: str = Field(max_length=80)
    flow_run_id: str = Field(max_length=36, index=True)
    generation: int = 0
    status: WaitStatus = WaitStatus.OPEN
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    waiting_on: str = Field(default="", max_length=300)
    since: datetime = Field(sa_type=UTCDateTime)
    resume_pending: bool = Field(default=False, index=True)
    resume_reason: str = Field(default="", max_length=40)
    last_error: str = Field(default="", max_length=500)

    @property
    def key(self) -> str:
        return wait_key(self.case_type, self.case_id, self.step, self.generation)


def wait_key(case_type: str, case_id: int, step: str, generation: int) -> str:
    """Prefect input key: lowercase letters, digits and dashes only, or the form is lost."""
    key = f"{case_type}-{case_id}-{step}-{generation}"
    if not KEY_PATTERN.match(key):
        raise ValueError(f"invalid wait key {key!r}: only a-z, 0-9 and '-' are allowed")
    return key


def open_wait(
    *,
    session: Session,
    case_type: CaseType,
    case_id: int,
    step: str,
    flow_run_id: UUID | str,
    due_at: datetime | None = None,
    waiting_on: str = "",
) -> Wait:
    """Create or refresh the wait of a step; the generation is kept across replays."""
    wait = find_wait(session=session, case_type=case_type, case_id=case_id, step=step)
    if wait is None:
        wait = Wait(
            case_type=case_type.value,
            case_id=case_id,
            step=step,
            flow_run_id=str(flow_run_id),
            since=clock.now(session),
        )
    wait.flow_run_id = str(flow_run_id)
    wait.status = WaitStatus.OPEN
    wait.due_at = due_at
    wait.waiting_on = waiting_on
    wait_key(wait.case_type, case_id, step, wait.generation)
    session.add(wait)
    session.flush()
    # A run is suspended on one wait at a time: any other wait it left open belongs to a
    # step it has moved past (a replay went further), and must not wake it again.
    for stale in session.exec(
        select(Wait).where(
            Wait.flow_run_id == str(flow_run_id),
            Wait.status == WaitStatus.OPEN,
            col(Wait.id) != wait.id,
        )
    ):
        close_wait(session=session, wait=stale)
    return wait


def find_wait(*, session: Session, case_type: CaseType, case_id: int, step: str) -> Wait | None:
    return session.exec(
        select(Wait).where(
            Wait.case_type == case_type.value, Wait.case_id == case_id, Wait.step == step
        )
    ).first()


def next_generation(*, session: Session, wait: Wait) -> None:
    """The key just answered is spent: the next suspension of this step uses a new key."""
    wait.generation += 1
    wait.resume_pending = False
    session.add(wait)


def close_wait(*, session: Session, wait: Wait) -> None:
    wait.status = WaitStatus.DONE
    wait.resume_pending = False
    wait.due_at = None
    session.add(wait)


def request_resume(*, session: Session, wait: Wait, reason: str) -> None:
    """Mark the wait to be woken up; `deliver_resumes` (service, tick) does the call."""
    wait.resume_pending = True
    wait.resume_reason = reason
    session.add(wait)


def open_waits(session: Session, case_type: CaseType | None = None) -> list[Wait]:
    query = select(Wait).where(Wait.status == WaitStatus.OPEN)
    if case_type is not None:
        query = query.where(Wait.case_type == case_type.value)
    return list(session.exec(query.order_by(col(Wait.since))))


def due_waits(session: Session) -> list[Wait]:
    """Open waits whose due time has passed and that nobody has woken up yet."""
    return list(
        session.exec(
            select(Wait).where(
                Wait.status == WaitStatus.OPEN,
                col(Wait.due_at).is_not(None),
                col(Wait.due_at) <= clock.now(session),
                col(Wait.resume_pending).is_(False),
            )
        )
    )


def pending_resumes(session: Session) -> list[Wait]:
    """Open waits whose wake-up has not reached Prefect yet."""
    return list(
        session.exec(
            select(Wait).where(Wait.status == WaitStatus.OPEN, col(Wait.resume_pending).is_(True))
        )
    )


class ResumeOutcome(StrEnum):
    RESUMED = "resumed"
    BUSY = "busy"
    FINISHED = "finished"
    UNREACHABLE = "unreachable"


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


def mark_due_waits(session: Session) -> int:
    """Mark the waits whose due time has passed; returns how many."""
    waits = due_waits(session)
    for wait in waits:
        request_resume(session=session, wait=wait, reason="due")
    return len(waits)


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
