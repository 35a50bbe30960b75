"""Durable waits: what a suspended flow run is waiting for, and how to wake it up.

The app database records each wait (case, step, flow run, due time). A run suspended by
Prefect holds no process; it is woken up (`wake_case`, then `models.core.runs.deliver_resumes`)
by the service when a person answers and by `tick` when the due time passes. If Prefect
cannot be reached the wake-up is remembered (`resume_pending`) and retried by `tick`: no
answer is lost.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Column, UniqueConstraint
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
    refused_reason: str = Field(default="", max_length=500)
    """Why the coordinator's last answer was refused (French), shown above the form again."""
    refused_answer: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    """What the coordinator typed in the refused answer, given back to correct it."""

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


def refuse_answer(*, session: Session, wait: Wait, reason: str, answer: dict[str, Any]) -> None:
    """The rules refused this answer: spend its key, keep what was typed and why."""
    next_generation(session=session, wait=wait)
    wait.refused_reason = reason[:500]
    wait.refused_answer = answer


def close_wait(*, session: Session, wait: Wait) -> None:
    wait.refused_reason = ""
    wait.refused_answer = None
    wait.status = WaitStatus.DONE
    wait.resume_pending = False
    wait.due_at = None
    session.add(wait)


def request_resume(*, session: Session, wait: Wait, reason: str) -> None:
    """Mark the wait to be woken up; `models.core.runs.deliver_resumes` does the call."""
    wait.resume_pending = True
    wait.resume_reason = reason
    session.add(wait)


COORDINATOR_STEP_PREFIX = "ask-"
"""Steps answered by the coordinator in the Prefect UI start with this (flows.waits.ask)."""


def wake_case(
    *,
    session: Session,
    case_type: CaseType,
    case_id: int,
    steps: Collection[str] | None = None,
    coordinator_forms: bool = True,
    reason: str = "answer",
) -> list[int]:
    """Mark the open waits of one case to be woken up (all, or only `steps`); their ids.

    With `coordinator_forms=False` a run waiting on the coordinator's form is left alone:
    a partner's answer is read when the coordinator answers. The caller delivers the
    wake-ups after its commit (`models.core.runs.deliver_resumes`), or `tick` does.
    """
    query = select(Wait).where(
        Wait.case_type == case_type.value, Wait.case_id == case_id, Wait.status == WaitStatus.OPEN
    )
    if steps is not None:
        query = query.where(col(Wait.step).in_(list(steps)))
    if not coordinator_forms:
        query = query.where(col(Wait.step).not_like(f"{COORDINATOR_STEP_PREFIX}%"))
    woken = []
    for wait in session.exec(query.order_by(col(Wait.id))):
        request_resume(session=session, wait=wait, reason=reason)
        assert wait.id is not None
        woken.append(wait.id)
    return woken


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


def mark_due_waits(session: Session) -> int:
    """Mark the waits whose due time has passed; returns how many."""
    waits = due_waits(session)
    for wait in waits:
        request_resume(session=session, wait=wait, reason="due")
    return len(waits)
