"""From an empty installation, through the interfaces only: an admin creates the Bocage
Bressuirais CLSM (`clsm clsm create`), imports its structures, contacts and conventions from
the coordinator's .xlsx (`clsm directory import`), then a saisine runs on it to its end
(Prefect server and worker, the service's links, a real SMTP server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from models.core import db
from models.core.audit import verify_all
from models.core.people import Organisation
from models.saisine.common import consultations, orientations
from models.saisine.states import SaisineStatus
from tests.saisine.test_saisine_end_to_end import START, Channel, _advance_to, _one
from tests.saisine.test_saisine_flow import (
    describe_as_the_coordinator,
    intake_parameters,
    moved_on,
    paused_form_schema,
    resume_form,
    the_saisine,
)
from tests.support.adoption import COORDINATION, SLUG, field_schema, set_up_bocage
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def channel(db_url: str, smtp_server: SmtpServer) -> Iterator[Channel]:
    from service.main import create_app

    with TestClient(create_app()) as client:
        yield Channel(smtp_server, client)


async def test_a_new_clsm_set_up_from_its_spreadsheet_carries_a_saisine_to_its_end(
    prefect_stack: PrefectStack, db_url: str, channel: Channel, tmp_path: Path
) -> None:
    _advance_to(START)
    set_up_bocage(tmp_path)

    # the referrer types the housing provider's name her own way: the imported structure
    parameters = intake_parameters()
    parameters["intake"].update(
        {
            "clsm": SLUG,
            "referring_structure": "habitat nord deux sevres",
            "referrer_name": "Karim Said",
            "referrer_email": "karim.said@hn2s.example",
        }
    )
    run_id = await run("saisine/saisine", parameters, run_env(db_url))
    await describe_as_the_coordinator(run_id, commune="Bressuire")

    # level 1: only the structures with a valid convention are offered
    schema = await paused_form_schema(run_id)
    offered = field_schema(schema, "partners")
    assert "CHNDS" in offered and "Udaf 79" in offered and "HN2S" not in offered, offered
    before = await state_of(run_id)
    await resume_form(run_id, {"partners": ["CHNDS", "Udaf 79"]})
    before = await moved_on(run_id, before, "PAUSED")
    mails = [m for m in await channel.deliver() if m["to"] != COORDINATION]  # its alert
    assert sorted(m["to"] for m in mails) == [
        "anne.giraud@chnds.example",
        "lucie.bonnin@udaf79.example",
    ]
    for mail in mails:
        await channel.answer(mail, {"knows_situation": "oui", "proposal": "Visite conjointe"})
        before = await moved_on(run_id, before, "PAUSED")

    # the orientation, from the CLSM's catalogue, closes the case at once
    schema = await paused_form_schema(run_id)
    assert "Orientation vers le DAC-PTA" in field_schema(schema, "outcome")
    _advance_to(START + timedelta(days=1))
    await resume_form(
        run_id,
        {
            "outcome": "Mise en lien avec la coordinatrice de parcours",
            "who_acts": "CHNDS",
            "follow_up_days": 0,
        },
    )
    await moved_on(run_id, before, "COMPLETED")
    mails = await channel.deliver()
    _one(mails, "saisine_outcome", "karim.said@hn2s.example")

    with Session(db.get_engine()) as session:
        saisine = the_saisine(run_id)
        assert saisine.status is SaisineStatus.CLOSED
        referrer = session.get(Organisation, saisine.referrer_organisation_id)
        assert referrer is not None and referrer.name == "Habitat Nord Deux-Sèvres"
        assert len(consultations(session, saisine)) == 2
        [orientation] = orientations(session, saisine)
        assert orientation.label == "Mise en lien avec la coordinatrice de parcours"
        report = verify_all(session)
        assert report.ok, report.breaks
