"""The placements' review through Prefect: after the selection the run waits on the
coordinator's form, no host request goes out; a refused answer comes back with what was typed
and the reason; the corrected one (a host changed by the coordinator) mails the request to
the chosen host, received by a real SMTP server."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.core import clock, db
from models.core.audit import case_events
from models.immersion.review import NO_HOST
from models.immersion.states import SessionStatus
from models.immersion.tables import ImmersionSession, Placement
from notifications.send import drain
from tests.support.immersion import (
    advance_clock,
    answer_as_shown,
    apply_by_call_links,
    build_clsm,
    launch_parameters,
    session_dates,
    session_status,
    settle,
)
from tests.support.immersion import outbox as mails
from tests.support.prefect_stack import PrefectStack, form_schema, run, run_env, state_of
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]


async def _description(run_id: object) -> str:
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_paused_state

    keyset = keyset_from_paused_state(await state_of(run_id))
    async with get_client() as client:
        return str(await client.read_flow_run_input(run_id, keyset["description"]))


async def test_the_coordinator_changes_a_host_and_only_the_chosen_host_is_asked(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer
) -> None:
    with db.session_scope() as session:
        clsm, _orgs = build_clsm(session)
        dates = session_dates(clock.now(session))
        slug = clsm.slug
    parameters = launch_parameters(
        slug, dates, title="Accueils revus", structures=["CCAS", "CHL", "DAC"], capacity=2
    )
    smtp = {"CLSM_SMTP_HOST": smtp_server.host, "CLSM_SMTP_PORT": str(smtp_server.port)}
    env = run_env(db_url, CLSM_SMTP_SECURITY="none", **smtp)
    run_id = await run("immersion-session/immersion-session", parameters, env)
    assert await settle(run_id) == "PAUSED"
    await apply_by_call_links([("ccas", "CHL"), ("chl", "DAC")])
    advance_clock(dates["call_closes_at"])
    assert await settle(run_id) == "PAUSED"
    await answer_as_shown(run_id)  # the selection, as proposed
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.PLACEMENT

    # the run waits on the review: the proposal prefilled, nothing sent to any host
    schema = await form_schema(run_id)
    one, two = "n° 1 — Candidat 1 (CCAS)", "n° 2 — Candidat 2 (CHL)"
    assert schema["properties"]["placements"]["default"] == [
        {"participant": one, "host": "CHL"},
        {"participant": two, "host": "DAC"},
    ]
    line = schema["properties"]["placements"]["items"]["properties"]
    assert (line["participant"]["title"], line["host"]["title"]) == (
        "Personne",
        "Structure d'accueil",
    )
    assert line["participant"]["enum"] == [one, two]
    assert line["host"]["enum"] == ["CCAS", "CHL", "DAC", NO_HOST]
    assert set(schema["required"]) == {"placements"}
    description = await _description(run_id)
    assert "Accueils proposés : vérifiez-les avant l'envoi des demandes" in description
    assert "sans nouvelle vérification" in description
    assert not mails("immersion_host_request")

    # refused: n°1 hosted by their own structure; asked again with what was typed
    typed = [{"participant": one, "host": "CCAS"}, {"participant": two, "host": "DAC"}]
    await answer_as_shown(run_id, placements=typed)
    assert await settle(run_id) == "PAUSED"
    schema = await form_schema(run_id)
    assert schema["properties"]["placements"]["default"] == typed
    assert (
        f"Saisie refusée : accueils refusés : « {one} » : sa propre structure (CCAS) ne peut "
        "pas l'accueillir" in await _description(run_id)
    )
    with db.session_scope() as session:
        assert not session.exec(select(Placement)).all()
    assert not mails("immersion_host_request")

    # corrected: the coordinator sends n°1 to DAC instead of the proposed CHL
    chosen = [{"participant": one, "host": "DAC"}, {"participant": two, "host": "DAC"}]
    await answer_as_shown(run_id, placements=chosen, comment="CHL en travaux en octobre")
    assert await settle(run_id) == "PAUSED"
    while (await drain()).processed:  # whatever the run left to the heartbeat
        pass
    requests = {m.message_id for m in mails("immersion_host_request")}
    received = [m for m in smtp_server.messages if m.message_id in requests]
    assert len(requests) == 2 and len(received) == 2
    assert [r for m in received for r in m.recipients] == ["referent@dac.example"] * 2
    with db.session_scope() as session:
        row = session.exec(select(ImmersionSession)).one()
        assert row.placements_reviewed_at is not None and row.id is not None
        events = case_events(session, "session", row.id)
    actions = [e.action for e in events]
    assert actions.count("form.refused") == 1 and actions.count("placements.reviewed") == 1
    (reviewed,) = [e for e in events if e.action == "placements.reviewed"]
    assert reviewed.payload["changed"] == [one]
    assert reviewed.payload["comment"] == "CHL en travaux en octobre"
