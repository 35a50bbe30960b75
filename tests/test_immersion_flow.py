"""One whole immersion session through the real Prefect stack, with the clock moved forward."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlmodel import select

from models import clock, db
from models import immersion as im
from models.audit import Actor, case_events, verify_case
from models.enums import CaseType, SessionStatus
from models.links import StepLink, consume
from models.outbox import OutboxMessage
from models.people import Contact
from models.steps import STEP_KINDS
from models.waits import find_wait, open_waits, request_resume
from tests.immersion_support import build_clsm, immersion_days, session_dates
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of, wait_for_state

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]

NAMES = ["CCAS", "CHL", "Département", "DAC", "UDAF"]


def mails(template: str | None = None) -> list[OutboxMessage]:
    with db.session_scope() as session:
        rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()  # type: ignore[arg-type]
    return [m for m in rows if template is None or m.template == template]


async def answer(link_id: int, data: dict[str, Any]) -> str:
    """What the service does on POST /r/{token}: record, consume, request the resume."""
    with db.session_scope() as session:
        link = session.get(StepLink, link_id)
        assert link is not None
        kind = STEP_KINDS[link.step]
        form = kind.form.model_validate(data)
        consume(session=session, link=link)
        contact = session.get(Contact, link.contact_id)
        assert contact is not None and contact.id is not None
        confirmation = kind.record(session, link, form, Actor.contact(contact.id, contact.name))
        step = kind.wait_step(session, link)
        if step:
            wait = find_wait(
                session=session, case_type=CaseType.SESSION, case_id=link.case_id, step=step
            )
            if wait is not None and wait.status == "open":
                request_resume(session=session, wait=wait, reason="answer")
    return confirmation


def status(row_id: int) -> SessionStatus:
    with db.session_scope() as session:
        return im.get_session(session, row_id).status


async def settle(run_id: UUID) -> str:
    """Let the run reach a suspension (or its end), waking it for due dates and answers."""
    from flows.tick import tick

    for _ in range(40):
        state = await wait_for_state(run_id, "PAUSED", "COMPLETED", timeout=120)
        if state.type.value == "COMPLETED":
            return "COMPLETED"
        summary = await tick()
        if not summary["due"] and not summary["resumed"]:
            return "PAUSED"
        await asyncio.sleep(1.5)  # the resumed run is scheduled; let the worker pick it up
    with db.session_scope() as session:
        waits = [(w.step, w.generation, w.status, w.due_at) for w in open_waits(session)]
        now = clock.now(session)
    raise AssertionError(f"the run keeps being woken up: now {now}, waits {waits}")


async def advance_clock(to: datetime) -> None:
    with db.session_scope() as session:
        delta = to - clock.now(session)
        if delta > timedelta(0):
            clock.advance(session=session, delta=delta + timedelta(minutes=1))


async def resume_form(run_id: UUID, values: dict[str, Any]) -> dict[str, Any]:
    """Answer the coordinator's form like the Prefect UI: read the schema, resume."""
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import aresume_flow_run
    from prefect.input.run_input import keyset_from_paused_state

    state = await state_of(run_id)
    keyset = keyset_from_paused_state(state)
    async with get_client() as client:
        schema = json.loads(await client.read_flow_run_input(run_id, keyset["schema"]))
    await aresume_flow_run(run_id, run_input=values)
    await asyncio.sleep(1.5)
    return dict(schema)


async def test_a_whole_session_from_the_call_to_the_report(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    with db.session_scope() as session:
        clsm, _orgs = build_clsm(session)
        dates = session_dates(clock.now(session))
        slug = clsm.slug
    parameters = {
        "clsm": slug,
        "title": "Immersions 2022 — session 2",
        "structures": ["CCAS, CHL", "Département", "DAC", "UDAF"],
        "capacity": 16,
        "host_capacity": 6,
        "call_closes_at": dates["call_closes_at"].isoformat(),
        "preparation_at": dates["preparation_at"].isoformat(),
        "preparation_place": dates["preparation_place"],
        "facilitator_name": "CODES 34",
        "facilitator_email": "animation@codes.example",
        "window_start": dates["window_start"].isoformat(),
        "window_end": dates["window_end"].isoformat(),
        "restitution_at": dates["restitution_at"].isoformat(),
        "restitution_place": dates["restitution_place"],
    }
    run_id = await run("immersion-session/immersion-session", parameters, run_env(db_url))
    assert await settle(run_id) == "PAUSED"
    with db.session_scope() as session:
        row = im.session_by_run(session, str(run_id))
        assert row is not None and row.id is not None
        row_id = row.id
    assert status(row_id) is SessionStatus.CALL_OPEN
    calls = mails("immersion_call")
    assert sorted(m.recipient_email.split("@")[1] for m in calls) == sorted(
        f"{n.lower()}.example" for n in NAMES
    )

    # 20 applicants, 4 per structure, wishing the next two structures
    for n in range(1, 21):
        home = (n - 1) % 5
        call = calls[
            [m.recipient_email for m in calls].index(f"referent@{NAMES[home].lower()}.example")
        ]
        await answer(
            call.context["link_id"],
            {
                "name": f"Candidat {n}",
                "email": f"candidat{n}@{NAMES[home].lower()}.example",
                "function": "Travailleur social",
                "manager_name": f"Cheffe {NAMES[home]}",
                "manager_email": f"cheffe@{NAMES[home].lower()}.example",
                "motivation": "Mieux connaître les partenaires",
                "wishes": [NAMES[(home + 1) % 5], NAMES[(home + 2) % 5]],
                "availability": "mardis et jeudis",
            },
        )
    assert len(mails("immersion_application_received")) == 20

    # the call closes: the coordinator gets the proposal as a prefilled form
    await advance_clock(dates["call_closes_at"])
    assert await settle(run_id) == "PAUSED"
    assert status(row_id) is SessionStatus.SELECTION
    assert len(mails("immersion_call_reminder")) == 0  # the clock jumped past the reminder
    with db.session_scope() as session:
        proposal = im.selection_proposal(session, im.get_session(session, row_id))
    kept = [d.number for d in proposal if d.outcome.value == "selected"]
    waiting = sorted(
        (d for d in proposal if d.outcome.value == "waitlisted"), key=lambda d: d.waitlist_rank or 0
    )
    assert len(kept) == 16 and len(waiting) == 4
    schema = await resume_form(
        run_id,
        {"kept": ", ".join(map(str, kept)), "waitlist": ", ".join(str(d.number) for d in waiting)},
    )
    assert schema["properties"]["kept"]["title"] == "Candidatures retenues (numéros)"
    assert schema["properties"]["kept"]["default"] == ", ".join(map(str, kept))  # prefilled
    assert await settle(run_id) == "PAUSED"
    assert status(row_id) is SessionStatus.PLACEMENT
    assert len(mails("immersion_selected")) == 16
    assert len(mails("immersion_waitlisted")) == 4
    assert len(mails("immersion_host_request")) == 16

    # a participant withdraws (sick leave): the first of the waiting list is offered the place
    first_kept = kept[0]
    received = next(
        m for m in mails("immersion_application_received") if m.context["number"] == first_kept
    )
    await answer(received.context["link_id"], {"action": "retirer", "reason": "arrêt maladie"})
    offer = mails("immersion_offer")
    assert [m.context["number"] for m in offer] == [waiting[0].number]
    await answer(offer[0].context["link_id"], {"answer": "j'accepte la place"})

    # every host confirms, every party signs
    with db.session_scope() as session:
        window_start = im.get_session(session, row_id).window_start
    for i, request in enumerate(m for m in mails("immersion_host_request")):
        with db.session_scope() as session:
            link = session.get(StepLink, request.context["link_id"])
            placement = session.get(im.Placement, link.subject_id if link else None)
            assert placement is not None
            if placement.status.value != "proposed":
                continue
        await answer(
            request.context["link_id"],
            {
                "tutor_name": f"Tuteur {i}",
                "tutor_email": f"tuteur{i}@accueil.example",
                "capacity": 6,
                "days": [d.isoformat() for d in immersion_days(window_start, 3, i % 10)],
                "may_observe": "réunions d'équipe, entretiens d'accueil",
                "may_not_observe": "consultations médicales",
            },
        )
    assert await settle(run_id) == "PAUSED"
    assert status(row_id) is SessionStatus.AGREEMENTS
    agreements = mails("immersion_agreement")
    assert len(agreements) == 48
    for message in agreements:
        await answer(message.context["link_id"], {"agree": True, "confidentiality": True})
    assert await settle(run_id) == "PAUSED"
    assert status(row_id) is SessionStatus.PREPARATION
    invited = {m.recipient_email for m in mails("immersion_preparation")}
    assert len(invited) == 18  # 17 participants (one withdrew since) + the facilitator
    withdrawn = f"candidat{first_kept}@" + NAMES[(first_kept - 1) % 5].lower() + ".example"
    (goodbye,) = [m for m in mails("immersion_withdrawal") if m.recipient_email == withdrawn]
    assert goodbye.calendar is not None and goodbye.calendar["method"] == "CANCEL"

    # preparation day, then the coordinator records who came
    await advance_clock(dates["preparation_end"])
    assert await settle(run_id) == "PAUSED"
    with db.session_scope() as session:
        numbers, _names = im.participant_numbers(session, im.get_session(session, row_id))
    await resume_form(run_id, {"present": ", ".join(map(str, numbers[:-1]))})
    assert await settle(run_id) == "PAUSED"
    assert status(row_id) is SessionStatus.IMMERSION
    assert len(mails("immersion_days")) == 32

    # the immersions happen; evaluations are asked
    with db.session_scope() as session:
        end = im.immersion_end(session, im.get_session(session, row_id))
    await advance_clock(end)
    assert await settle(run_id) == "PAUSED"
    assert status(row_id) is SessionStatus.EVALUATION
    assert len(mails("immersion_day_reminder")) == 32
    for message in mails("immersion_evaluation"):
        await answer(
            message.context["link_id"],
            {"missions": "accueil", "practices": "entretiens", "limits": "secret", "rating": 5},
        )
    for message in mails("immersion_host_evaluation"):
        await answer(message.context["link_id"], {"rating": 4, "useful": "regards croisés"})
    assert await settle(run_id) == "PAUSED"
    assert status(row_id) is SessionStatus.RESTITUTION

    await advance_clock(dates["restitution_end"])
    assert await settle(run_id) == "PAUSED"
    await resume_form(run_id, {"present": ", ".join(map(str, numbers))})
    assert await settle(run_id) == "COMPLETED"
    assert status(row_id) is SessionStatus.CLOSED

    with db.session_scope() as session:
        report = im.session_report(session, row_id)
        assert verify_case(session, "session", row_id) is None
        events = Counter(e.action for e in case_events(session, "session", row_id))
        promoted = session.exec(
            select(im.Application).where(im.Application.promoted == True)  # noqa: E712
        ).all()
    f = report.figures
    assert (f.applications, f.kept, f.promoted, f.waitlisted) == (20, 17, 1, 3)
    assert f.withdrawals == [(f"Candidat {first_kept}", "arrêt maladie")]
    assert (f.immersions_done, f.days_total) == (16, 48)
    assert (f.preparation_present, f.restitution_present) == (15, 16)
    assert [a.number for a in promoted] == [waiting[0].number]
    assert events["report.created"] == 1
    # each mail went once to its person
    keys = Counter((m.recipient_email, m.dedup_key) for m in mails())
    assert max(keys.values()) == 1
