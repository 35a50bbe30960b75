"""Flows used only by the tests of durable waits (deployed by the test session)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow
from prefect.input import RunInput
from pydantic import Field
from sqlmodel import Session

from flows.mail import send_case_mail
from flows.waits import ask, wait_until
from models.core.audit import Actor, record_event
from models.core.enums import CaseType
from models.core.errors import DomainError
from models.core.kinds import CaseScope
from models.core.links import issue_link
from models.core.outbox import Recipient, enqueue
from models.core.people import Contact, Organisation


class ProbeForm(RunInput):
    decision: str = Field(default="", title="Décision de la coordination")
    count: int = Field(default=0, title="Nombre retenu")


@flow(name="probe-ask")
def probe_ask(case_id: int, linger: float = 0) -> str:
    """Ask the coordinator once (after lingering `linger` seconds); record the answer."""
    time.sleep(linger)
    answers: list[str] = []

    def record(session: Session, answer: ProbeForm, actor: Actor) -> None:
        if answer.decision == "refuser":
            raise DomainError(f"« refuser » n'est pas une décision ({answer.count} retenus)")
        answers.append(answer.decision)
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=case_id,
            action="probe.answered",
            actor=actor,
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
    from models.core.audit import case_events

    def ready(session: Session) -> bool:
        return any(
            e.action == "probe.ready" for e in case_events(session, CaseType.SESSION.value, case_id)
        )

    outcome = wait_until(
        case_type=CaseType.SESSION, case_id=case_id, step="probe-until", ready=ready, due_at=due_at
    )
    from models.core.db import session_scope

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


# -- probes of the waiting benchmarks (bench/waiting.py) -------------------------------
ANSWER_STEP = "test-probe"  # the link step of tests/support/service_kit.py
ANSWER_WAIT = "probe-until"  # the wait that step wakes up


@flow(name="probe-answer")
def probe_answer(case_id: int, contact_id: int, due_at: datetime) -> str:
    """Wait for the partner's answer by link, then mail the partner the next step's link.

    The real time at which the flow code is reached is kept in the mail's context, so the
    benchmark can tell process start-up from the flow's own work.
    """
    from models.core.audit import case_events
    from models.core.db import session_scope

    reached_at = datetime.now(UTC)

    def answered(session: Session) -> bool:
        return any(
            e.action == "probe.ready" for e in case_events(session, CaseType.SESSION.value, case_id)
        )

    outcome = wait_until(
        case_type=CaseType.SESSION,
        case_id=case_id,
        step=ANSWER_WAIT,
        ready=answered,
        due_at=due_at,
        waiting_on="le partenaire",
    )
    if outcome == "ready":
        with session_scope() as session:
            _mail_next_step(session, case_id, contact_id, reached_at)
        send_case_mail(CaseType.SESSION, case_id)  # as the real flows do before they end
    return outcome


def _mail_next_step(session: Session, case_id: int, contact_id: int, reached_at: datetime) -> None:
    contact = session.get(Contact, contact_id)
    assert contact is not None
    link = issue_link(
        session=session,
        contact_id=contact_id,
        case_type=CaseType.SESSION,
        case_id=case_id,
        step=ANSWER_STEP,
    )
    organisation = session.get(Organisation, contact.organisation_id)
    assert organisation is not None
    enqueue(
        session=session,
        scope=CaseScope(
            CaseType.SESSION, case_id, organisation.clsm_id, f"Dossier de test n°{case_id}"
        ),
        to=Recipient(email=contact.email, name=contact.name, contact_id=contact_id),
        template="link_renewed",  # a real template that carries a link (probe only)
        context={
            "link_id": link.id,
            "step_title": "Étape suivante",
            "case_label": f"Dossier de test n°{case_id}",
            "flow_code_at": reached_at.isoformat(),
        },
        dedup_key=f"probe-next-step-{case_id}",
    )


@flow(name="probe-pause")
def probe_pause(case_id: int, timeout: int = 900) -> str:
    """The same wait without durable waits: paused, its process kept alive and polling."""
    from prefect.flow_runs import pause_flow_run

    pause_flow_run(timeout=timeout, key=f"session-{case_id}-pause")
    return "resumed"
