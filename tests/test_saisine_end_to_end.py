"""One saisine through the whole stack: Prefect server and worker, the service's links,
a real SMTP server and the clock moved forward; level 1 with a silent partner, level 2
with a cancelled and moved meeting, a decision with two actions, closure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from models import clock, db
from models.audit import verify_all
from models.enums import ActionStatus, ConsultationStatus, MeetingStatus, SaisineStatus
from models.saisine import (
    CellMeeting,
    actions_of,
    consultations,
    meeting_members,
    meetings_of,
)
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of
from tests.support.saisine import DIFFICULTY, INITIALS, build_cell
from tests.test_saisine_flow import (
    intake_parameters,
    moved_on,
    paused_form_schema,
    resume_form,
    the_saisine,
)

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 3, 2, 10, 0, tzinfo=PARIS)  # a Monday


class Channel:
    """How the test talks to people: mails received, links answered (set per stack)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def deliver(self) -> list[dict[str, Any]]:
        """Send the outbox; the mails received since the last call."""
        raise NotImplementedError

    async def answer(self, mail: dict[str, Any], values: dict[str, Any]) -> None:
        raise NotImplementedError


def _advance_to(moment: datetime) -> None:
    with db.session_scope() as session:
        clock.set_offset(session=session, delta=moment - datetime.now(UTC))


def _one(mails: list[dict[str, Any]], template: str, to: str) -> dict[str, Any]:
    found = [m for m in mails if m["template"] == template and m["to"] == to]
    assert len(found) == 1, (template, to, [(m["template"], m["to"]) for m in mails])
    return found[0]


@pytest.fixture
def channel(db_url: str) -> Iterator[Channel]:
    from tests.support.saisine_channel import make_channel

    yield from make_channel()


async def test_one_saisine_from_intake_to_closure(
    prefect_stack: PrefectStack, db_url: str, channel: Channel
) -> None:
    from flows.tick import tick

    _advance_to(START)
    with db.session_scope() as session:
        cell = build_cell(session)
        coordinator = cell.clsm.coordinator_email
    run_id = await run("saisine/saisine", intake_parameters(), run_env(db_url))

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
    with Session(db.get_engine()) as session:
        saisine = the_saisine(run_id)
        statuses = sorted(c.status.value for c in consultations(session, saisine))
    assert statuses == ["answered", "answered", "escalated"]

    # the orientation form: escalate to level 2
    schema = await paused_form_schema(run_id)
    assert "Passer au niveau 2" in json.dumps(schema, ensure_ascii=False)
    await resume_form(run_id, {"outcome": "Passer au niveau 2 : examen en réunion de cellule"})
    before = await moved_on(run_id, before, "PAUSED")

    # the meeting form, host proposed by rotation; two invited members
    schema = await paused_form_schema(run_id)
    assert schema["properties"]["host"]["default"] == "CCAS"
    first_date = datetime(2026, 3, 23, 14, 0)
    await resume_form(
        run_id,
        {
            "meeting": "Nouvelle réunion",
            "starts_at": first_date.isoformat(),
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
    await resume_form(run_id, {"action": "Annuler la réunion", "motive": "quorum non atteint"})
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
            "starts_at": datetime(2026, 3, 30, 14, 0).isoformat(),
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
            "new_starts_at": "2026-03-31T14:00:00",
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
    await channel.answer(udaf_action, {"note": "Visite faite"})
    await moved_on(run_id, before, "COMPLETED")

    with Session(db.get_engine()) as session:
        saisine = the_saisine(run_id)
        assert saisine.status is SaisineStatus.CLOSED
        assert [a.status for a in actions_of(session, saisine)] == [ActionStatus.DONE] * 2
        meetings = meetings_of(session, saisine)
        assert [m.status for m in meetings] == [MeetingStatus.CANCELLED, MeetingStatus.HELD]
        assert len(meeting_members(session, meetings[1])) == 6
        assert session.exec(select(CellMeeting)).all()
        report = verify_all(session)
        assert report.ok, report.breaks
    assert statuses.count(ConsultationStatus.ESCALATED.value) == 1
    for mail in channel.seen:
        body = mail["subject"] + mail["text"] + mail["html"] + mail["calendar"]
        assert DIFFICULTY not in body
        assert f" {INITIALS}" not in body and f"{INITIALS} " not in body
