"""Replays of an immersion session run: waking it again sends nothing twice; the demo run."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlmodel import select

from models.core import clock, db
from models.core.audit import Actor, AuditEvent
from models.core.outbox import OutboxMessage
from models.core.runs import resume_run
from models.immersion.changes import cancel_and_wake
from models.immersion.common import session_by_run
from models.immersion.states import STATUS_LABELS, SessionStatus
from models.immersion.tables import ImmersionSession
from tests.support.immersion import (
    advance_clock,
    answer_as_shown,
    apply_by_call_links,
    build_clsm,
    choices,
    launch_parameters,
    session_dates,
    session_status,
    settle,
)
from tests.support.immersion import outbox as mails
from tests.support.prefect_stack import (
    PrefectStack,
    form_schema,
    run,
    run_env,
    state_of,
    wait_for_state,
)

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]


def _counts() -> tuple[int, int]:
    with db.session_scope() as session:
        return (
            len(session.exec(select(OutboxMessage.id)).all()),
            len(session.exec(select(AuditEvent.id)).all()),
        )


async def test_waking_a_suspended_session_again_sends_no_second_mail(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    with db.session_scope() as session:
        clsm, _orgs = build_clsm(session)
        dates = session_dates(clock.now(session))
        slug = clsm.slug
    parameters = launch_parameters(
        slug, dates, title="Rejeu", structures=["CCAS", "CHL", "DAC"], capacity=2
    )
    run_id = await run("immersion-session/immersion-session", parameters, run_env(db_url))
    assert await settle(run_id) == "PAUSED"
    await apply_by_call_links([("ccas", "CHL"), ("chl", "DAC"), ("dac", "CCAS")])
    advance_clock(dates["call_closes_at"])
    assert await settle(run_id) == "PAUSED"
    # a refused edit is audited and asked again, with the error shown above the form
    shown = await form_schema(run_id)
    one, two, three = choices(shown, "kept")
    assert one == "n° 1 — Candidat 1 (CCAS)"
    await answer_as_shown(run_id, kept=[one, two], waitlist=[two])
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.SELECTION
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_paused_state

    keyset = keyset_from_paused_state(await state_of(run_id))
    async with get_client() as client:
        description = await client.read_flow_run_input(run_id, keyset["description"])
    assert (
        "Saisie refusée : une candidature ne peut pas être à la fois retenue et en liste "
        "d'attente : n° 2" in description
    )
    schema = await answer_as_shown(run_id, waitlist=[three])
    assert schema["properties"]["kept"]["default"] == [one, two]  # what was chosen, to correct
    assert schema["properties"]["waitlist"]["default"] == [two]
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.PLACEMENT
    assert not mails("immersion_host_request")  # the coordinator reviews the hosts first
    await answer_as_shown(run_id)
    assert await settle(run_id) == "PAUSED"
    before = _counts()
    assert len(mails("immersion_host_request")) == 2

    # wake the run twice with nothing new: it replays from the top and waits again
    for _ in range(2):
        outcome, error = await resume_run(str(run_id), {"reason": "answer"})
        assert outcome.value == "resumed", error
        await wait_for_state(run_id, "SCHEDULED", "PENDING", "RUNNING", "PAUSED")
        assert await settle(run_id) == "PAUSED"
    assert _counts() == before
    assert (await state_of(run_id)).type.value == "PAUSED"
    # one artifact per key on the run, updated in place (not one per pass or resumption)
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    keys = sorted(a.key or "" for a in artifacts)
    row_id = _session_id(run_id)
    expected = [f"session-{row_id}-{key}" for key in ("etat", "placements", "selection")]
    assert keys == expected, keys
    (status,) = [a for a in artifacts if a.key == f"session-{row_id}-etat"]
    assert STATUS_LABELS[SessionStatus.PLACEMENT] in str(status.data)  # the latest state

    # the coordinator cancels: calendar CANCEL to whoever was invited, and the run ends
    with db.session_scope() as session:
        row = session_by_run(session, str(run_id))
        assert row is not None
        cancel_and_wake(session=session, row=row, actor=Actor.system("test"), reason="grève")
    assert await settle(run_id) == "COMPLETED"
    assert session_status(run_id) is SessionStatus.CANCELLED
    cancels = [m for m in mails("immersion_session_cancelled") if m.calendar]
    invited = {m.recipient_email for m in mails("immersion_preparation")}
    assert {m.recipient_email for m in cancels} == invited
    assert all(m.calendar and m.calendar["method"] == "CANCEL" for m in cancels)


def _session_id(run_id: object) -> int:
    with db.session_scope() as session:
        row = session_by_run(session, str(run_id))
        assert row is not None and row.id is not None
        return row.id


async def test_demo_session_waits_on_the_selection_form(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_paused_state

    from service.demo import load_demo, load_immersion_demo

    load_demo()
    # the demo loader is synchronous (called by `clsm setup`): run it off the event loop
    message = await asyncio.to_thread(load_immersion_demo, run_env(db_url))
    assert "24 candidatures" in message
    assert "déjà lancée" in await asyncio.to_thread(load_immersion_demo, run_env(db_url))
    with db.session_scope() as session:
        row = session.exec(select(ImmersionSession)).one()
        assert row.flow_run_id is not None
        from uuid import UUID

        run_id = UUID(row.flow_run_id)
    state = await wait_for_state(run_id, "PAUSED", timeout=120)
    keyset = keyset_from_paused_state(state)
    async with get_client() as client:
        schema = json.loads(await client.read_flow_run_input(run_id, keyset["schema"]))
        description = await client.read_flow_run_input(run_id, keyset["description"])
        flow_run = await client.read_flow_run(run_id)
    assert schema["properties"]["kept"]["title"] == "Candidatures retenues"
    assert len(schema["properties"]["kept"]["default"]) == 16
    assert len(schema["properties"]["kept"]["items"]["enum"]) == 24
    # binômes: two selects of the 24 applications per line, prefilled with the kept ones
    # whose structures wish each other's
    pairs = schema["properties"]["pairs"]
    assert pairs["items"]["properties"]["first"]["title"] == "Personne"
    assert len(pairs["items"]["properties"]["first"]["enum"]) == 24
    kept = schema["properties"]["kept"]["default"]
    assert pairs["default"] and all(
        p["first"] in kept and p["second"] in kept for p in pairs["default"]
    )
    assert "Binômes proposés (vœux croisés)" in description
    assert "24 candidatures pour 16 places" in description
    assert flow_run.name == "Session Immersions professionnelles 2022 — session 2"
    assert "clsm:poitiers" in flow_run.tags
