"""What a saisine's run does next, as each phase's question answers it (no Prefect), and
the names and French labels of its waits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor
from models.core.enums import CaseType
from models.saisine import process
from models.saisine.common import close_saisine
from models.saisine.decisions import ActionPlan, mark_meeting_held, next_when_decided
from models.saisine.follow_up import next_in_follow_up, next_when_oriented, start_follow_up
from models.saisine.intake import open_saisine
from models.saisine.level1 import choose_partners, next_in_level1, record_orientation
from models.saisine.meetings import next_in_level2, put_on_meeting
from models.saisine.plan import Next, Task
from models.saisine.rules import OrientationKind
from models.saisine.states import WAIT_LABELS, Step, WaitName, wait_name, wait_step
from models.saisine.tables import Saisine
from tests.support.saisine import Cell, answer_link, build_cell, intake, link_of

COORD = Actor.system("test")


@pytest.fixture
def cell(session: Session) -> Cell:
    return build_cell(session)


def _at(session: Session, moment: datetime) -> None:
    clock.set_offset(session=session, delta=moment - datetime.now(UTC))


def _level1(session: Session, cell: Cell) -> Saisine:
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    choose_partners(session=session, saisine=saisine, labels=["CCAS", "CHL"], actor=COORD)
    return saisine


def test_level1_asks_partners_awaits_them_reminds_then_asks_the_orientation(
    session: Session, cell: Cell
) -> None:
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    assert next_in_level1(session, saisine) == Next(wait=WaitName.PARTNERS, step="partners")
    choose_partners(session=session, saisine=saisine, labels=["CCAS", "CHL"], actor=COORD)
    waiting = next_in_level1(session, saisine)
    assert (waiting.task, waiting.wait, waiting.step) == (
        None,
        WaitName.ANSWERS_REMINDER,
        "answers-r1-reminder",
    )
    assert waiting.due_at is not None
    _at(session, waiting.due_at + timedelta(minutes=1))
    reminding = next_in_level1(session, saisine)
    assert (reminding.task, reminding.step) == (Task.REMIND_PARTNERS, "answers-r1")
    assert reminding.due_at is not None and reminding.due_at > waiting.due_at
    assert saisine.id is not None
    for name in ("CCAS", "CHL"):
        link = link_of(
            session, CaseType.SAISINE, saisine.id, Step.CONSULTATION, cell.contacts[name].id or 0
        )
        answer_link(session, link, {"knows_situation": "oui", "proposal": "Rendez-vous"})
    assert next_in_level1(session, saisine) == Next(wait=WaitName.ORIENTATION, step="orientation")


def test_past_the_deadline_silent_partners_are_reminded_then_reported(
    session: Session, cell: Cell
) -> None:
    saisine = _level1(session, cell)
    _at(session, datetime.now(UTC) + timedelta(days=30))
    assert next_in_level1(session, saisine) == Next(task=Task.REMIND_PARTNERS)
    from models.saisine.level1 import remind_silent_partners

    assert remind_silent_partners(session=session, saisine=saisine) == 2
    assert next_in_level1(session, saisine) == Next(task=Task.REPORT_SILENT_PARTNERS)


def test_an_orientation_with_a_follow_up_waits_for_its_date_then_the_referrer(
    session: Session, cell: Cell
) -> None:
    saisine = _level1(session, cell)
    record_orientation(
        session=session,
        saisine=saisine,
        kind=OrientationKind.DAC_PTA,
        who_acts="DAC-PTA",
        detail="",
        follow_up_on=date.today() + timedelta(days=30),
        actor=COORD,
    )
    dated = next_when_oriented(session, saisine)
    assert (dated.wait, dated.step) == (WaitName.FOLLOW_UP_DATE, "followup-r1-date")
    assert dated.due_at is not None
    _at(session, dated.due_at)
    assert next_when_oriented(session, saisine) == Next(task=Task.START_FOLLOW_UP)
    start_follow_up(session=session, saisine=saisine)
    waiting = next_in_follow_up(session, saisine)
    assert (waiting.task, waiting.step) == (None, "followup-r1")
    assert waiting.due_at is not None
    _at(session, waiting.due_at)
    late = next_in_follow_up(session, saisine)
    assert late == Next(task=Task.ALERT_FOLLOW_UP, wait=WaitName.FOLLOW_UP, step="followup-r1")


def test_level2_plans_a_meeting_awaits_its_day_then_asks_the_decision_and_the_actions(
    session: Session, cell: Cell
) -> None:
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    from models.saisine.common import escalate_to_level2

    escalate_to_level2(session=session, saisine=saisine, actor=COORD, reason="test")
    assert next_in_level2(session, saisine) == Next(wait=WaitName.MEETING, step="meeting")
    starts = datetime.now(UTC) + timedelta(days=10)
    meeting = put_on_meeting(
        session=session,
        saisine=saisine,
        meeting=None,
        starts_at=starts,
        host="CCAS",
        invited=[],
        actor=COORD,
    )
    day = next_in_level2(session, saisine)
    assert day == Next(
        wait=WaitName.MEETING_DAY,
        step=f"meeting-{meeting.id}-day",
        due_at=starts,
        meeting_id=meeting.id,
    )
    _at(session, starts + timedelta(hours=3))
    assert next_in_level2(session, saisine) == Next(
        wait=WaitName.DECISION, step=f"decision-m{meeting.id}", meeting_id=meeting.id
    )
    mark_meeting_held(session=session, meeting=meeting, actor=COORD)
    from models.saisine.decisions import record_decision

    record_decision(
        session=session,
        saisine=saisine,
        meeting=meeting,
        text="Visite conjointe",
        actions=[
            ActionPlan("Appeler", cell.contacts["CCAS"].id or 0, date.today() + timedelta(40))
        ],
        actor=COORD,
    )
    actions = next_when_decided(session, saisine)
    assert (actions.task, actions.wait, actions.step) == (
        Task.REMIND_OWNERS,
        WaitName.ACTIONS,
        "actions",
    )
    close_saisine(session=session, saisine=saisine, reason="test", actor=COORD)
    assert next_when_decided(session, saisine) == Next(task=Task.CLOSE)


@pytest.mark.parametrize("name", list(WaitName))
def test_every_wait_step_is_named_back_and_labelled_in_french(name: WaitName) -> None:
    step = wait_step(name, round_=2, meeting_id=17)
    assert wait_name(step) is name
    assert process.wait_label(step) == WAIT_LABELS[name]
    assert process.wait_label(f"ask-3-{step}") == WAIT_LABELS[name]  # a coordinator form


def test_steps_of_another_process_are_not_the_saisines() -> None:
    assert process.wait_label("selection") is None
    assert process.wait_label("answers-rx") is None
