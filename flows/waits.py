"""Durable waits inside a flow run: suspend (no process kept) until an input or a date.

A resumed run starts again from the top of its flow. Keys are stable per (case, step,
generation) and the generation lives in the app database, so a replay finds the input
already given, and a step that must wait again gets a fresh key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from pydantic import Field, create_model
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python
from sqlmodel import Session

from flows.mail import send_case_mail
from flows.run import run_id
from models.core import clock
from models.core.audit import Actor, record_event
from models.core.db import session_scope
from models.core.enums import CaseType
from models.core.errors import DomainError
from models.core.gateway import answer_actor
from models.core.waits import Wait, close_wait, next_generation, open_wait, refuse_answer

T = TypeVar("T", bound=RunInput)


class Wakeup(RunInput):
    """Input of waits answered outside the Prefect UI (a link, a due date)."""

    reason: str = Field(
        default="answer",
        title="Motif de la reprise",
        description="« answer » (réponse reçue) ou « due » (échéance)",
    )


def suspend(wait: Wait, model: type[T]) -> T:
    """Send the case's new mail, then suspend on `wait` until `model` is given.

    The mail goes before the run leaves (a partner's answer is followed by the next step's
    mail within seconds, not at the next heartbeat); a replay finds it sent already.
    """
    send_case_mail(CaseType(wait.case_type), wait.case_id)
    answer = suspend_flow_run(wait_for_input=model, key=wait.key, timeout=None)
    assert answer is not None  # suspend_flow_run either returns the input or stops the run
    return answer


def prefilled(form: type[T], description: str, values: dict[str, object]) -> type[T]:
    """The form showing `values`, keeping each field's French title and rules.

    The values are the defaults of the JSON schema only (what the UI fills the form with):
    the model keeps its own defaults, so a prefilled field the person empties comes back
    empty, not as the text it was prefilled with. (Prefect's `with_initial_data` rebuilds
    the fields from their type only, so the UI would show the Python names instead of the
    French labels, and makes the values the model's defaults.)
    """
    fields: dict[str, Any] = {}
    # a default made by a factory (an empty list) is not in the JSON schema: the UI would
    # show no value and refuse the form as it comes ("… is a required property")
    made = {
        name: field.get_default(call_default_factory=True, validated_data={})
        for name, field in form.model_fields.items()
        if field.default_factory is not None
    }
    for name, value in {**made, **values}.items():
        original = form.model_fields.get(name)
        if original is None:  # an answer kept from an older shape of the form
            continue
        extra = original.json_schema_extra
        shown = {**(extra if isinstance(extra, dict) else {}), "default": to_jsonable_python(value)}
        fields[name] = (
            original.annotation,
            FieldInfo.merge_field_infos(original, json_schema_extra=shown),
        )
    model: type[T] = create_model(form.__name__, __base__=form, **fields)
    model._description = description  # what the Prefect UI shows above the form
    return model


REFUSED = (
    "**Saisie refusée : {reason}**\n\n"
    "Votre saisie est reprise ci-dessous : corrigez-la, puis validez de nouveau.\n\n"
)


def ask(
    *,
    case_type: CaseType,
    case_id: int,
    step: str,
    form: type[T],
    description: str,
    initial: dict[str, object] | None = None,
    on_answer: Callable[[Session, T, Actor], None],
    waiting_on: str = "la coordination",
) -> None:
    """Ask the coordinator through a Prefect UI form until the rules accept the answer.

    `on_answer` records the answer with who gave it (`answered_by`), or refuses it by
    raising `DomainError` (or `ValueError`) with a French reason: nothing of it is kept,
    the refusal is audited, and the form is asked again with what was typed and the reason
    on top. The answer is recorded and the wait closed in one transaction, so a crash in
    between replays the same key and gets the same answer back: nothing is lost or doubled.
    """
    while True:
        with session_scope() as session:
            wait = open_wait(
                session=session,
                case_type=case_type,
                case_id=case_id,
                step=step,
                flow_run_id=run_id(),
                waiting_on=waiting_on,
            )
        values = {**(initial or {}), **(wait.refused_answer or {})}
        heading = REFUSED.format(reason=wait.refused_reason) if wait.refused_reason else ""
        answer = suspend(wait, prefilled(form, heading + description, values))
        with session_scope() as session:
            fresh = session.get(Wait, wait.id)
            assert fresh is not None
            actor = answered_by(session, fresh)
            try:
                with session.begin_nested():
                    on_answer(session, answer, actor)
            except (DomainError, ValueError) as refused:
                reason = refused.message if isinstance(refused, DomainError) else str(refused)
                typed = answer.model_dump(mode="json", include=set(form.model_fields))
                refuse_answer(session=session, wait=fresh, reason=reason, answer=typed)
                record_event(
                    session=session,
                    case_type=case_type,
                    case_id=case_id,
                    action="form.refused",
                    actor=actor,
                    payload={"step": step, "error": reason},
                )
                continue
            close_wait(session=session, wait=fresh)
            return


def answered_by(session: Session, wait: Wait) -> Actor:
    """The person whose answer to `wait` came through the service's gateway (recorded there
    before it reached Prefect), or the system for a resume that did not pass it."""
    return answer_actor(session, wait.flow_run_id, wait.key)


def wait_until(
    *,
    case_type: CaseType,
    case_id: int,
    step: str,
    ready: Callable[[Session], bool],
    due_at: datetime | None = None,
    waiting_on: str = "",
) -> str:
    """Suspend until `ready` holds (answers recorded by the service) or `due_at` passes.

    Returns "ready" or "due". Woken by the service after an answer, by tick at the due time.
    """
    current_run = run_id()
    while True:
        with session_scope() as session:
            wait = open_wait(
                session=session,
                case_type=case_type,
                case_id=case_id,
                step=step,
                flow_run_id=current_run,
                due_at=due_at,
                waiting_on=waiting_on,
            )
            outcome = (
                "ready"
                if ready(session)
                else "due"
                if due_at is not None and clock.now(session) >= due_at
                else ""
            )
            if outcome:
                close_wait(session=session, wait=wait)
                return outcome
        suspend(wait, Wakeup)
        with session_scope() as session:
            fresh = session.get(Wait, wait.id)
            assert fresh is not None
            next_generation(session=session, wait=fresh)
