"""Flows used only by the tests of durable waits (deployed by the test session)."""

from __future__ import annotations

import time
from datetime import datetime

from prefect import flow
from prefect.input import RunInput
from pydantic import Field
from sqlmodel import Session

from flows.waits import ask, wait_until
from models.audit import Actor, record_event
from models.enums import CaseType


class ProbeForm(RunInput):
    decision: str = Field(default="", title="Décision de la coordination")
    count: int = Field(default=0, title="Nombre retenu")


@flow(name="probe-ask")
def probe_ask(case_id: int, linger: float = 0) -> str:
    """Ask the coordinator once (after lingering `linger` seconds); record the answer."""
    time.sleep(linger)
    answers: list[str] = []

    def record(session: Session, answer: ProbeForm) -> None:
        answers.append(answer.decision)
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=case_id,
            action="probe.answered",
            actor=Actor.prefect_ui(),
            payload={"decision": answer.decision, "count": answer.count},
        )

    ask(
        case_type=CaseType.SESSION,
        case_id=case_id,
        step="probe",
        form=ProbeForm,
        description="**Sonde** : répondez au formulaire.",
        initial={"count": 16},
        on_answer=record,
    )
    return answers[0] if answers else "replayed"


@flow(name="probe-until")
def probe_until(case_id: int, due_at: datetime) -> str:
    """Wait until an event 'probe.ready' exists for the case, or until due_at."""
    from models.audit import case_events

    def ready(session: Session) -> bool:
        return any(
            e.action == "probe.ready" for e in case_events(session, CaseType.SESSION.value, case_id)
        )

    outcome = wait_until(
        case_type=CaseType.SESSION, case_id=case_id, step="probe-until", ready=ready, due_at=due_at
    )
    from models.db import session_scope

    with session_scope() as session:
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=case_id,
            action="probe.woken",
            actor=Actor.system(),
            payload={"outcome": outcome},
        )
    return outcome
