"""The `saisine` flow through a real Prefect server and worker: urgent, and level 1 closed."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from sqlmodel import Session, select

from models.catalogue import step_kind
from models.core import db
from models.core.audit import verify_case
from models.core.enums import CaseType
from models.core.links import StepLink
from models.core.outbox import OutboxMessage
from models.core.waits import find_wait, request_resume
from models.saisine.states import SaisineStatus, Step
from models.saisine.tables import Saisine
from tests.support.prefect_stack import (
    PrefectStack,
    form_schema,
    run,
    run_env,
    state_of,
    wait_for_state,
)
from tests.support.saisine import (
    answer_link,
    build_cell,
    description,
    markers,
    prefect_files_holding,
)

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]


def intake_parameters(*, urgent: bool = False) -> dict[str, Any]:
    """The launch form as the coordinator fills it: ids and labels only."""
    return {
        "intake": {
            "clsm": "poitiers",
            "channel": "téléphone",
            "referring_structure": "ICF Habitat",
            "referrer_name": "Nadia Fontaine",
            "referrer_email": "nadia.fontaine@icf.example",
            "urgent": urgent,
        }
    }


async def describe_as_the_coordinator(run_id: UUID, **changes: Any) -> None:
    """What the service's description page does: record the description of the situation
    (app database only), then wake the run, which goes on to its next wait."""
    from models.core.audit import Actor
    from models.core.enums import Channel
    from models.core.runs import deliver_resumes
    from models.saisine.common import saisine_by_run
    from models.saisine.intake import describe_saisine

    before = await wait_for_state(run_id, "PAUSED")
    with db.session_scope() as session:
        saisine = saisine_by_run(session, str(run_id))
        assert saisine is not None and saisine.status is SaisineStatus.RECEIVED
        woken = describe_saisine(
            session=session,
            saisine=saisine,
            description=description(**{"consent_given": True, "consent_note": "", **changes}),
            actor=Actor.user(1, "Inès Moreau (coordination)", Channel.SERVICE),
        )
    assert woken, "the run waits for the description"
    await deliver_resumes(woken)
    await moved_on(run_id, before, "PAUSED", "COMPLETED")


def setup_cell() -> None:
    with db.session_scope() as session:
        build_cell(session)


def the_saisine(run_id: UUID) -> Saisine:
    with Session(db.get_engine()) as session:
        saisine = session.exec(select(Saisine).where(Saisine.flow_run_id == str(run_id))).one()
        return saisine


def mails() -> list[OutboxMessage]:
    with Session(db.get_engine()) as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))  # type: ignore[arg-type]


async def answer_as_the_service(link_id: int, values: dict[str, Any]) -> None:
    """What the service does on POST /r/{token}: record, consume, resume the named wait."""
    from models.core.runs import deliver_resumes

    with db.session_scope() as session:
        link = session.get(StepLink, link_id)
        assert link is not None
        answer_link(session, link, values)
        wait_step = step_kind(link.step).wait_step(session, link)
        if wait_step:
            wait = find_wait(
                session=session,
                case_type=CaseType(link.case_type),
                case_id=link.case_id,
                step=wait_step,
            )
            assert wait is not None
            request_resume(session=session, wait=wait, reason="answer")
    await deliver_resumes()


async def resume_form(run_id: UUID, values: dict[str, Any]) -> None:
    """Answer the run's form as the Prefect UI does: once its schema is there."""
    from prefect.flow_runs import aresume_flow_run

    await form_schema(run_id)
    await aresume_flow_run(run_id, run_input=values)


paused_form_schema = form_schema  # (the name the saisine tests use)


async def paused_form_description(run_id: UUID) -> str:
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_paused_state

    state = await wait_for_state(run_id, "PAUSED")
    keyset = keyset_from_paused_state(state)
    async with get_client() as client:
        return str(await client.read_flow_run_input(run_id, keyset["description"]))


async def moved_on(run_id: UUID, before: Any, *names: str) -> Any:
    """Wait until the run left the state `before` and reached one of names."""
    import asyncio

    for _ in range(480):  # two minutes: a loaded machine
        state = await state_of(run_id)
        if state is not None and state.id != before.id:
            return await wait_for_state(run_id, *names)
        await asyncio.sleep(0.25)
    raise AssertionError(f"run {run_id} stayed in {before.name}")


async def test_an_urgent_saisine_is_closed_at_intake(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    setup_cell()
    run_id = await run("saisine/saisine", intake_parameters(urgent=True), run_env(db_url))
    await wait_for_state(run_id, "COMPLETED")
    saisine = the_saisine(run_id)
    assert saisine.status is SaisineStatus.URGENT_CLOSED
    assert [m.template for m in mails()] == ["saisine_urgent"]
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_run = await client.read_flow_run(run_id)
    assert flow_run.name == f"Saisine {saisine.reference}"
    # an urgent situation is closed at once: no description is asked, none is kept
    assert set(flow_run.parameters["intake"]) == set(intake_parameters()["intake"])
    assert flow_run.parameters["intake"]["referring_structure"] == "ICF Habitat"
    assert saisine.difficulty is None


async def test_a_level1_saisine_closed_by_orientation(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    setup_cell()
    run_id = await run("saisine/saisine", intake_parameters(), run_env(db_url))
    marks = markers()
    await describe_as_the_coordinator(
        run_id,
        initials=marks["initials"],
        commune=marks["commune"],
        difficulty=marks["difficulty"],
        consent_given=False,
        consent_note=marks["consent_note"],
    )
    schema = await paused_form_schema(run_id)
    choices = schema["properties"]["partners"]["items"]
    assert "CHL" in json.dumps(choices) and "Ancien partenaire" not in json.dumps(choices)
    assert schema["properties"]["partners"]["title"].startswith("Structures à consulter")
    before = await state_of(run_id)
    await resume_form(run_id, {"partners": []})  # refused: asked again with the reason
    await moved_on(run_id, before, "PAUSED")
    assert "Choisissez au moins une structure" in await paused_form_description(run_id)
    await resume_form(run_id, {"partners": ["CHL", "DAC-PTA"]})
    await wait_for_state(run_id, "PAUSED")
    saisine = the_saisine(run_id)
    assert saisine.id is not None
    with Session(db.get_engine()) as session:
        links = session.exec(
            select(StepLink).where(
                StepLink.case_id == saisine.id, StepLink.step == Step.CONSULTATION
            )
        ).all()
        link_ids = [link.id for link in links if link.id is not None]
    assert len(link_ids) == 2
    await answer_as_the_service(link_ids[0], {"knows_situation": "oui", "proposal": "RDV"})
    await answer_as_the_service(link_ids[1], {"knows_situation": "non", "proposal": ""})
    schema = await paused_form_schema(run_id)
    assert "Passer au niveau 2" in json.dumps(schema)
    assert the_saisine(run_id).status is SaisineStatus.LEVEL1
    await resume_form(
        run_id,
        {
            "outcome": "Mise en lien avec la coordinatrice de parcours",
            "who_acts": "CHL",
            "detail": "",
            "follow_up_days": 0,
        },
    )
    await wait_for_state(run_id, "COMPLETED")
    closed = the_saisine(run_id)
    assert closed.status is SaisineStatus.CLOSED
    assert closed.close_reason == "orientation proposée"
    templates = [m.template for m in mails()]
    assert templates.count("saisine_consultation") == 2
    assert templates.count("saisine_outcome") == 3  # referrer and the two partners
    for message in mails():
        assert not [m for m in marks.values() if m in json.dumps(message.context)]
    with Session(db.get_engine()) as session:
        assert verify_case(session, "saisine", saisine.id) is None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        artifacts = await client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"saisine-{closed.clsm_id}-{closed.reference}"])
            )
        )
    assert artifacts and "close" in str(artifacts[0].description)
    assert not [m for m in marks.values() if m in str(artifacts[0].data)]
    # nothing personal reached Prefect: its database and WAL (parameters, inputs, logs,
    # artifacts, task runs, state messages), its stored results and the stack's logs
    assert closed.difficulty == marks["difficulty"]  # (the app database holds it)
    assert prefect_files_holding(marks) == []


async def test_a_failed_orientation_reopens_level1_at_the_follow_up_date(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    """Orientation with a follow-up in 30 days; at the date the referrer is asked by link;
    « non, reprendre le niveau 1 » opens a second round: the partners form comes back."""
    from datetime import timedelta

    from flows.tick import tick
    from models.core import clock

    setup_cell()
    run_id = await run("saisine/saisine", intake_parameters(), run_env(db_url))
    await describe_as_the_coordinator(run_id)
    await paused_form_schema(run_id)
    await resume_form(run_id, {"partners": ["CHL"]})
    before = await moved_on(run_id, await state_of(run_id), "PAUSED")
    saisine_id = the_saisine(run_id).id
    with Session(db.get_engine()) as session:
        (consultation,) = session.exec(
            select(StepLink).where(
                StepLink.case_id == saisine_id, StepLink.step == Step.CONSULTATION
            )
        ).all()
    assert consultation.id is not None
    await answer_as_the_service(consultation.id, {"knows_situation": "oui", "proposal": "CMP"})
    before = await moved_on(run_id, before, "PAUSED")
    await resume_form(
        run_id,
        {
            "outcome": "Mise en lien avec la coordinatrice de parcours",
            "who_acts": "CHL",
            "detail": "",
            "follow_up_days": 30,
        },
    )
    before = await moved_on(run_id, before, "PAUSED")  # waits for the follow-up date
    assert the_saisine(run_id).status is SaisineStatus.ORIENTED
    assert not [m for m in mails() if m.template == "saisine_follow_up"]

    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=31))
    assert (await tick())["resumed"] >= 1
    before = await moved_on(run_id, before, "PAUSED")  # now waits for the referrer
    assert the_saisine(run_id).status is SaisineStatus.FOLLOW_UP
    with Session(db.get_engine()) as session:
        (question,) = session.exec(
            select(StepLink).where(StepLink.case_id == saisine_id, StepLink.step == Step.FOLLOW_UP)
        ).all()
    assert question.id is not None
    asked = [m for m in mails() if m.template == "saisine_follow_up"]
    assert [m.recipient_email for m in asked] == ["nadia.fontaine@icf.example"]

    await answer_as_the_service(
        question.id, {"worked": "non", "next_step": "level1", "comment": "refus du CMP"}
    )
    await moved_on(run_id, before, "PAUSED")
    reopened = the_saisine(run_id)
    assert (reopened.status, reopened.round) == (SaisineStatus.LEVEL1, 2)
    schema = await paused_form_schema(run_id)  # the coordinator chooses partners again
    assert schema["properties"]["partners"]["title"].startswith("Structures à consulter")
    with Session(db.get_engine()) as session:
        assert verify_case(session, "saisine", reopened.id or 0) is None
