"""Builders shared by the immersion tests: a CLSM with structures, a session's dates, a
session with its call open."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor
from models.core.calendar import add_business_days, next_open_day
from models.core.people import Clsm, Organisation
from models.immersion.call import create_session, open_call
from models.immersion.plan import launch_moments
from models.immersion.tables import ImmersionSession, ImmersionSessionCreate
from tests import factories

PARIS = ZoneInfo("Europe/Paris")
STRUCTURES = ["CCAS", "CHL", "Département", "DAC", "UDAF"]


def build_clsm(session: Session) -> tuple[Clsm, list[Organisation]]:
    clsm = factories.clsm(session)
    orgs = []
    for name in STRUCTURES:
        org = factories.organisation(session, clsm, name)
        factories.contact(session, org, f"Référent {name}", f"referent@{name.lower()}.example")
        orgs.append(org)
    return clsm, orgs


def session_dates(now: datetime) -> dict[str, Any]:
    """Launch parameters of a session whose call closes in ten days (dates from `now`)."""
    today = now.astimezone(PARIS).date()
    prep = next_open_day(today + timedelta(days=21))
    window_start = next_open_day(prep + timedelta(days=7))
    window_end = window_start + timedelta(days=27)
    restitution = next_open_day(window_end + timedelta(days=7))
    return {
        "call_opens_on": today,
        "call_closes_at": datetime.combine(today + timedelta(days=10), time(18), PARIS),
        "preparation_at": datetime.combine(prep, time(9), PARIS),
        "preparation_end": datetime.combine(prep, time(17), PARIS),
        "preparation_place": "Maison des solidarités, Poitiers",
        "facilitator_name": "CODES 34",
        "facilitator_email": "animation@codes.example",
        "window_start": window_start,
        "window_end": window_end,
        "min_days": 1,
        "max_days": 5,
        "restitution_at": datetime.combine(restitution, time(14), PARIS),
        "restitution_end": datetime.combine(restitution, time(17, 30), PARIS),
        "restitution_place": "CCAS de Poitiers",
        "withdrawal_cutoff": datetime.combine(prep - timedelta(days=2), time(18), PARIS),
    }


def immersion_days(window_start: date, count: int = 3, offset: int = 0) -> list[date]:
    first = add_business_days(window_start, offset) if offset else window_start
    days = [first]
    while len(days) < count:
        days.append(add_business_days(days[-1], 1))
    return days


def now(session: Session) -> datetime:
    return clock.now(session)


# -- driving a session run through Prefect ----------------------------------------------
async def settle(run_id: Any, timeout: float = 120) -> str:
    """Let the run reach a suspension (or its end), waking it for due dates and answers.

    `timeout`: how long one resumed run may take to get there (its process starts anew).
    """
    import asyncio

    from flows.tick import tick
    from models.core import db
    from models.core.waits import open_waits
    from tests.support.prefect_stack import wait_for_state

    for _ in range(40):
        state = await wait_for_state(run_id, "PAUSED", "COMPLETED", timeout=timeout)
        if state.type.value == "COMPLETED":
            await tick()  # the last mails
            return "COMPLETED"
        summary = await tick()
        if not summary["due"] and not summary["resumed"]:
            return "PAUSED"
        await asyncio.sleep(1.5)  # the resumed run is scheduled; let the worker pick it up
    with db.session_scope() as session:
        waits = [(w.step, w.generation, w.due_at) for w in open_waits(session)]
        moment = clock.now(session)
    raise AssertionError(f"the run keeps being woken up: now {moment}, waits {waits}")


def advance_clock(to: datetime) -> None:
    """Move the installation's clock just past `to` (never backwards)."""
    from models.core import db

    with db.session_scope() as session:
        delta = to - clock.now(session)
        if delta > timedelta(0):
            clock.advance(session=session, delta=delta + timedelta(minutes=1))


async def resume_form(run_id: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Answer the coordinator's form like the Prefect UI: read its schema, resume the run."""
    import asyncio

    from prefect.flow_runs import aresume_flow_run

    from tests.support.prefect_stack import form_schema

    schema = await form_schema(run_id)
    await aresume_flow_run(run_id, run_input=values)
    await asyncio.sleep(1.5)
    return dict(schema)


async def answer_as_shown(run_id: Any, **changes: Any) -> dict[str, Any]:
    """Submit the coordinator's form with what it shows (its prefilled values), but for
    `changes`; returns the form's schema (what the Prefect UI drew)."""
    from tests.support.prefect_stack import form_schema

    schema = await form_schema(run_id)
    shown = {name: field.get("default") for name, field in schema["properties"].items()}
    await resume_form(run_id, {**shown, **changes})
    return schema


def choices(schema: dict[str, Any], field: str) -> list[str]:
    """The labels a form's list field offers (its multiselect's options)."""
    return list(schema["properties"][field]["items"]["enum"])


def outbox(template: str | None = None) -> list[Any]:
    from sqlmodel import col, select

    from models.core import db
    from models.core.outbox import OutboxMessage

    with db.session_scope() as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    return [m for m in rows if template is None or m.template == template]


def session_status(run_id: Any) -> Any:
    from models.core import db
    from models.immersion.common import session_by_run

    with db.session_scope() as session:
        row = session_by_run(session, str(run_id))
        assert row is not None
        return row.status


def open_session(
    session: Session, clsm: Clsm, *, title: str, capacity: int, flow_run_id: str
) -> ImmersionSession:
    """A session of `clsm` inviting every structure of `build_clsm`, its call open (as the
    flow's first steps leave it), recorded as done by the system."""
    system = Actor.system("test")
    data = ImmersionSessionCreate(
        clsm_slug=clsm.slug,
        title=title,
        capacity=capacity,
        structures=STRUCTURES,
        **session_dates(clock.now(session)),
    )
    row = create_session(session=session, data=data, flow_run_id=flow_run_id, actor=system)
    open_call(session=session, row=row, actor=system)
    return row


def launch_parameters(slug: str, dates: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The launch form as a coordinator fills it: days, and times of day in Paris."""
    moments = launch_moments(
        dates["call_closes_at"], dates["preparation_at"], dates["restitution_at"]
    )
    window = {k: dates[k].isoformat() for k in ("window_start", "window_end")}
    return {"clsm": slug, **moments, **window, **extra}


def review_as_proposed(session: Session, row: ImmersionSession) -> list[Any]:
    """The coordinator validates the placements' review form as shown (the rules' proposal):
    the placements are created and the host requests go out."""
    from models.immersion.review import placement_question, review_placements

    question = placement_question(session, row)
    assert question is not None
    lines = question.initial["placements"]
    assert isinstance(lines, list)
    return review_placements(
        session=session,
        row=row,
        lines=[(line["participant"], line["host"]) for line in lines],
        actor=Actor.system("test"),
    )


async def answer(link_id: int, data: dict[str, Any]) -> str:
    """Record a partner's answer as the service does (record, consume, mark the resume)."""
    from models.catalogue import STEP_KINDS
    from models.core import db
    from models.core.enums import CaseType
    from models.core.links import StepLink, consume
    from models.core.people import Contact
    from models.core.waits import find_wait, request_resume

    with db.session_scope() as session:
        link = session.get(StepLink, link_id)
        assert link is not None
        kind = STEP_KINDS[link.step]
        consume(session=session, link=link)
        contact = session.get(Contact, link.contact_id)
        assert contact is not None and contact.id is not None
        confirmation = kind.record(
            session, link, kind.form.model_validate(data), Actor.contact(contact.id, contact.name)
        )
        step = kind.wait_step(session, link)
        wait = find_wait(
            session=session, case_type=CaseType.SESSION, case_id=link.case_id, step=step or ""
        )
        if wait is not None and wait.status == "open":
            request_resume(session=session, wait=wait, reason="answer")
    return confirmation


async def apply_by_call_links(homes_and_wishes: list[tuple[str, str]]) -> None:
    """One application per (structure, wish), through the call link mailed to the
    structure's referent (`referent@<home>.example`), numbered from 1."""
    calls = outbox("immersion_call")
    for n, (home, wish) in enumerate(homes_and_wishes, 1):
        call = next(m for m in calls if m.recipient_email == f"referent@{home}.example")
        await answer(
            call.context["link_id"],
            {
                "name": f"Candidat {n}",
                "email": f"c{n}@{home}.example",
                "function": "Infirmier",
                "manager_name": "Cadre",
                "manager_email": f"cadre@{home}.example",
                "motivation": "Découvrir",
                "wishes": [wish],
            },
        )
