"""One saisine through the whole stack: Prefect server and worker, the service's links,
a real SMTP server and the clock moved forward; level 1 with a silent partner, level 2
with a cancelled and moved meeting, a decision with two actions, closure."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.core import clock, db
from models.core.audit import verify_all
from models.core.outbox import OutboxMessage
from models.core.settings import get_settings
from models.saisine.common import actions_of, consultations, meeting_members, meetings_of
from models.saisine.states import ActionStatus, ConsultationStatus, MeetingStatus, SaisineStatus
from models.saisine.tables import CellMeeting
from tests.saisine.test_saisine_flow import (
    describe_as_the_coordinator,
    intake_parameters,
    moved_on,
    paused_form_description,
    paused_form_schema,
    resume_form,
    the_saisine,
)
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of, wait_for_state
from tests.support.saisine import build_cell, markers, prefect_files_holding
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 3, 2, 10, 0, tzinfo=PARIS)  # a Monday


class Channel:
    """How people see the case: mails from the real SMTP server, links answered in the service.

    Mails are sent by the outbox drain (as tick does), read back from the SMTP server and
    matched to their outbox row (template) by Message-ID.
    """

    def __init__(self, server: SmtpServer, client: TestClient) -> None:
        self.server = server
        self.client = client
        self.seen: list[dict[str, Any]] = []
        self.read = 0

    async def deliver(self) -> list[dict[str, Any]]:
        from notifications.send import drain

        await drain()
        new = self.server.messages[self.read :]
        self.read = len(self.server.messages)
        with Session(db.get_engine()) as session:
            templates = {
                row.message_id: row.template for row in session.exec(select(OutboxMessage))
            }
        mails = [
            {
                "template": templates[mail.message_id],
                "to": mail.recipients[0],
                "subject": str(mail.message["Subject"]),
                "text": mail.text(),
                "html": mail.html(),
                "calendar": mail.calendar(),
            }
            for mail in new
        ]
        assert all(len(m.recipients) == 1 for m in new)
        self.seen.extend(mails)
        return mails

    async def answer(self, mail: dict[str, Any], values: dict[str, Any]) -> None:
        """Open the mailed link (the page shows the case), then submit the form."""
        base = get_settings().base_url
        urls = re.findall(re.escape(base) + r"/r/[A-Za-z0-9_-]+", mail["text"])
        assert urls, mail["text"]
        path = urls[0].removeprefix(base)
        page = self.client.get(path)
        assert page.status_code == 200
        if mail["template"] == "saisine_consultation":
            # the description: on the page, never in the mail
            assert "Difficulté rencontrée" in page.text and "Initiales" in page.text
        done = self.client.post(path, data=values)
        assert done.status_code == 200, done.text
        assert "Merci" in done.text


def _advance_to(moment: datetime) -> None:
    with db.session_scope() as session:
        clock.set_offset(session=session, delta=moment - datetime.now(UTC))


def _one(mails: list[dict[str, Any]], template: str, to: str) -> dict[str, Any]:
    found = [m for m in mails if m["template"] == template and m["to"] == to]
    assert len(found) == 1, (template, to, [(m["template"], m["to"]) for m in mails])
    return found[0]


@pytest.fixture
def channel(db_url: str, smtp_server: SmtpServer) -> Iterator[Channel]:
    from service.main import create_app

    with TestClient(create_app()) as client:
        yield Channel(smtp_server, client)


async def test_one_saisine_from_intake_to_closure(
    prefect_stack: PrefectStack, db_url: str, channel: Channel
) -> None:
    from flows.tick import tick

    _advance_to(START)
    with db.session_scope() as session:
        cell = build_cell(session)
        coordinator = cell.clsm.coordinator_email
    run_id = await run("saisine/saisine", intake_parameters(), run_env(db_url))
    # the run waits for the description; the coordinator is mailed the service's page
    marks = markers()
    await wait_for_state(run_id, "PAUSED")
    (awaited,) = await channel.deliver()
    assert (awaited["template"], awaited["to"]) == ("saisine_coordinator_alert", coordinator)
    saisine_id = the_saisine(run_id).id
    assert f'href="{get_settings().base_url}/saisines/{saisine_id}/description"' in awaited["html"]
    await describe_as_the_coordinator(
        run_id,
        initials=marks["initials"],
        commune=marks["commune"],
        difficulty=marks["difficulty"],
        consent_given=False,
        consent_note=marks["consent_note"],
    )

    # level 1: the coordinator picks three partners in the prefilled form
    await paused_form_schema(run_id)
    before = await state_of(run_id)
    await resume_form(run_id, {"partners": ["CCAS", "CHL", "DAC-PTA"]})
    before = await moved_on(run_id, before, "PAUSED")
    mails = await channel.deliver()
    assert sorted(m["to"] for m in mails) == [
        "referent@ccas.example",
        "referent@chl.example",
        "referent@dac-pta.example",
    ]
    await channel.answer(
        _one(mails, "saisine_consultation", "referent@ccas.example"),
        {"knows_situation": "oui", "proposal": "Visite conjointe possible"},
    )
    before = await moved_on(run_id, before, "PAUSED")
    await channel.answer(
        _one(mails, "saisine_consultation", "referent@chl.example"),
        {"knows_situation": "non", "proposal": "Rendez-vous au CMP"},
    )
    before = await moved_on(run_id, before, "PAUSED")

    # DAC-PTA stays silent: a reminder after 3 business days, the coordinator at the deadline
    _advance_to(START + timedelta(days=3, hours=1))
    await tick()
    before = await moved_on(run_id, before, "PAUSED")
    mails = await channel.deliver()
    assert [(m["template"], m["to"]) for m in mails] == [
        ("saisine_consultation", "referent@dac-pta.example")
    ]
    assert mails[0]["subject"].startswith("Rappel")
    _advance_to(START + timedelta(days=8))
    await tick()
    before = await moved_on(run_id, before, "PAUSED")
    mails = await channel.deliver()
    alert = _one(mails, "saisine_coordinator_alert", coordinator)
    assert "DAC-PTA" in alert["text"]
    # straight to the waiting run, through the service's gateway (never Prefect's own port)
    assert f'href="{get_settings().base_url}/prefect/runs/flow-run/{run_id}"' in alert["html"]
    with Session(db.get_engine()) as session:
        saisine = the_saisine(run_id)
        statuses = sorted(c.status.value for c in consultations(session, saisine))
    assert statuses == ["answered", "answered", "escalated"]

    # the orientation form: escalate to level 2
    schema = await paused_form_schema(run_id)
    assert "Passer au niveau 2" in json.dumps(schema, ensure_ascii=False)
    await resume_form(
        run_id,
        {
            "outcome": "Passer au niveau 2 : examen en réunion de cellule",
            "who_acts": "",
            "follow_up_days": 30,
        },
    )
    before = await moved_on(run_id, before, "PAUSED")

    # the meeting form, host proposed by rotation; two invited members
    schema = await paused_form_schema(run_id)
    assert schema["properties"]["host"]["default"] == "CCAS"
    await resume_form(
        run_id,
        {
            "meeting": "Nouvelle réunion",
            "day": "2026-03-23",
            "at": "14:00",
            "host": "CCAS",
            "invited": ["MDPH", "UDAF"],
        },
    )
    before = await moved_on(run_id, before, "PAUSED")
    mails = await channel.deliver()
    convocations = [m for m in mails if m["template"] == "saisine_convocation"]
    assert len(convocations) == 6
    assert all("METHOD:REQUEST" in m["calendar"] for m in convocations)
    await channel.answer(
        _one(mails, "saisine_convocation", "referent@mdph.example"), {"attending": "oui"}
    )

    # the coordinator cancels the meeting from the run's form, plans another one, moves it
    schema = await paused_form_schema(run_id)
    assert "Annuler la réunion" in json.dumps(schema, ensure_ascii=False)
    await resume_form(
        run_id,
        {
            "action": "Annuler la réunion",
            "motive": "quorum non atteint",
            "new_day": "2026-03-31",  # prefilled in the UI; unused by a cancellation
            "new_at": "14:00",
        },
    )
    before = await moved_on(run_id, before, "PAUSED")
    mails = await channel.deliver()
    cancels = [m for m in mails if m["template"] == "saisine_meeting_cancelled"]
    assert len(cancels) == 6
    assert all("METHOD:CANCEL" in m["calendar"] and "SEQUENCE:1" in m["calendar"] for m in cancels)
    schema = await paused_form_schema(run_id)
    assert schema["properties"]["host"]["default"] == "CCAS"  # a cancelled meeting is no turn
    await resume_form(
        run_id,
        {
            "meeting": "Nouvelle réunion",
            "day": "2026-03-30",
            "at": "14:00",
            "host": "CCAS",
            "invited": ["MDPH", "UDAF"],
        },
    )
    before = await moved_on(run_id, before, "PAUSED")
    await channel.deliver()
    await resume_form(
        run_id,
        {
            "action": "Déplacer la réunion",
            "new_day": "2026-03-31",
            "new_at": "14:00",
            "motive": "salle indisponible",
        },
    )
    before = await moved_on(run_id, before, "PAUSED")
    mails = await channel.deliver()
    moved = [m for m in mails if m["template"] == "saisine_convocation"]
    assert len(moved) == 6
    assert all("METHOD:REQUEST" in m["calendar"] and "SEQUENCE:1" in m["calendar"] for m in moved)

    # after the meeting: the decision with two actions
    _advance_to(datetime(2026, 3, 31, 17, 0, tzinfo=PARIS))
    await tick()
    before = await moved_on(run_id, before, "PAUSED")
    schema = await paused_form_schema(run_id)
    owners = json.dumps(schema, ensure_ascii=False)
    assert "Référent DAC-PTA (DAC-PTA)" in owners and "Référent UDAF (UDAF)" in owners
    await resume_form(
        run_id,
        {
            "meeting_held": True,
            "text": "Réunion de concertation annuelle organisée par le DAC",
            "actions": [
                {
                    "text": "Organiser la concertation",
                    "owner": "Référent DAC-PTA (DAC-PTA)",
                    "due_on": "2026-04-30",
                },
                {
                    "text": "Contacter la personne",
                    "owner": "Référent UDAF (UDAF)",
                    "due_on": "2026-04-30",
                },
            ],
        },
    )
    before = await moved_on(run_id, before, "PAUSED")
    mails = await channel.deliver()
    dac_action = _one(mails, "saisine_action", "referent@dac-pta.example")
    udaf_action = _one(mails, "saisine_action", "referent@udaf.example")
    _one(mails, "saisine_outcome", "nadia.fontaine@icf.example")

    # owners reminded two business days before the due date, then they close their actions
    _advance_to(datetime(2026, 4, 28, 10, 0, tzinfo=PARIS))
    await tick()
    before = await moved_on(run_id, before, "PAUSED")
    reminders = await channel.deliver()
    assert sorted(m["to"] for m in reminders if m["template"] == "saisine_action") == [
        "referent@dac-pta.example",
        "referent@udaf.example",
    ]
    await channel.answer(dac_action, {"note": "Concertation fixée au 12 mai"})
    before = await moved_on(run_id, before, "PAUSED")
    assert udaf_action["template"] == "saisine_action"
    # the UDAF action is not done; the coordinator closes from the run's form, with a reason
    await resume_form(run_id, {"close": True, "close_reason": ""})
    before = await moved_on(run_id, before, "PAUSED")
    assert "indiquez un motif" in await paused_form_description(run_id)
    await resume_form(run_id, {"close": True, "close_reason": "La personne a quitté la commune"})
    await moved_on(run_id, before, "COMPLETED")
    await channel.deliver()

    with Session(db.get_engine()) as session:
        saisine = the_saisine(run_id)
        assert saisine.status is SaisineStatus.CLOSED
        assert saisine.close_reason == "La personne a quitté la commune"
        assert [a.status for a in actions_of(session, saisine)] == [
            ActionStatus.DONE,
            ActionStatus.DROPPED,
        ]
        meetings = meetings_of(session, saisine)
        assert [m.status for m in meetings] == [MeetingStatus.CANCELLED, MeetingStatus.HELD]
        assert len(meeting_members(session, meetings[1])) == 6
        assert session.exec(select(CellMeeting)).all()
        report = verify_all(session)
        assert report.ok, report.breaks
    assert statuses.count(ConsultationStatus.ESCALATED.value) == 1
    assert Counter(m["template"] for m in channel.seen) == {
        "saisine_consultation": 4,  # three partners, one reminder
        "saisine_coordinator_alert": 2,  # the description to type, the silent partner
        "saisine_convocation": 18,  # six members: first meeting, second, second moved
        "saisine_meeting_cancelled": 6,
        "saisine_outcome": 7,  # the referrer and the six members
        "saisine_action": 4,  # two actions, two reminders
    }
    for mail in channel.seen:
        body = mail["subject"] + mail["text"] + mail["html"] + mail["calendar"]
        assert saisine.reference in mail["subject"] + mail["text"]
        assert not [m for m in marks.values() if m in body]
    # nothing personal reached Prefect: its database, its WAL, its stored results and logs
    assert saisine.difficulty == marks["difficulty"]  # (the app database holds it)
    assert prefect_files_holding(marks) == []
