"""Saisine data functions and link steps against a real database (no Prefect)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from models.core import clock
from models.core.audit import Actor, case_events, verify_case
from models.core.enums import CaseType, Channel
from models.core.errors import DomainError
from models.core.outbox import OutboxMessage
from models.saisine.common import (
    close_saisine,
    consultations,
    current_meeting,
    escalate_to_level2,
    meeting_members,
)
from models.saisine.decisions import ActionPlan, mark_meeting_held, record_decision
from models.saisine.follow_up import apply_follow_up, start_follow_up
from models.saisine.intake import open_saisine
from models.saisine.level1 import (
    consult_partners,
    escalate_silent_partners,
    record_orientation,
    remind_silent_partners,
)
from models.saisine.meetings import (
    cancel_meeting,
    plan_meeting,
    proposed_host,
    reschedule_meeting,
)
from models.saisine.report import yearly_report, yearly_report_csv
from models.saisine.retention import purge_closed_saisines
from models.saisine.rules import OrientationKind, ReportLevel
from models.saisine.states import (
    ActionStatus,
    ConsultationStatus,
    MeetingStatus,
    SaisineStatus,
    Step,
)
from models.saisine.tables import MeetingMember, Saisine
from tests.support.saisine import (
    DIFFICULTY,
    INITIALS,
    Cell,
    answer_link,
    build_cell,
    description,
    intake,
    link_of,
    outbox,
)

COORD = Actor.user(1, "Inès Moreau (coordination)", Channel.PREFECT_UI)


@pytest.fixture
def cell(session: Session) -> Cell:
    return build_cell(session)


def _no_description_in_mails(session: Session) -> None:
    for message in outbox(session):
        text = json.dumps([message.context, message.calendar], ensure_ascii=False)
        assert DIFFICULTY not in text
        assert INITIALS not in text


def test_an_urgent_saisine_is_closed_at_intake_with_the_emergency_guidance(
    session: Session, cell: Cell
) -> None:
    saisine = open_saisine(session=session, intake=intake(urgent=True), actor=COORD)
    assert saisine.status is SaisineStatus.URGENT_CLOSED
    assert saisine.closed_at is not None
    [mail] = outbox(session)
    assert mail.template == "saisine_urgent"
    assert mail.recipient_email == "nadia.fontaine@icf.example"
    assert mail.context == {"reference": saisine.reference}
    assert saisine.id is not None
    assert [e.action for e in case_events(session, "saisine", saisine.id)] == [
        "saisine.received",
        "status.changed",
    ]


def test_references_count_per_clsm_and_year(session: Session, cell: Cell) -> None:
    first = open_saisine(session=session, intake=intake(on=date(2026, 3, 2)), actor=COORD)
    second = open_saisine(session=session, intake=intake(on=date(2026, 3, 9)), actor=COORD)
    build_cell(session, slug="niort")
    other = open_saisine(session=session, intake=intake("niort", on=date(2026, 3, 9)), actor=COORD)
    assert (first.reference, second.reference, other.reference) == ("2026-01", "2026-02", "2026-01")
    again = open_saisine(session=session, intake=intake(), actor=COORD, flow_run_id="run-1")
    assert open_saisine(session=session, intake=intake(), actor=COORD, flow_run_id="run-1") is again


def test_consent_missing_needs_a_reason(session: Session, cell: Cell) -> None:
    from dataclasses import replace

    missing = description(consent_note="")
    with pytest.raises(DomainError, match="consentement") as refused:
        open_saisine(session=session, intake=replace(intake(), description=missing), actor=COORD)
    assert refused.value.field == "consent_note"


def test_level1_consultations_answers_reminders_escalation_and_orientation(
    session: Session, cell: Cell
) -> None:
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    assert saisine.id is not None and saisine.status is SaisineStatus.LEVEL1
    with pytest.raises(DomainError, match="convention"):
        consult_partners(
            session=session,
            saisine=saisine,
            organisation_ids=[cell.org_id("Ancien partenaire")],
            actor=COORD,
        )
    consult_partners(
        session=session,
        saisine=saisine,
        organisation_ids=[cell.org_id("CCAS"), cell.org_id("CHL"), cell.org_id("DAC-PTA")],
        actor=COORD,
    )
    assert [m.template for m in outbox(session)] == ["saisine_consultation"] * 3
    ccas = link_of(
        session, CaseType.SAISINE, saisine.id, Step.CONSULTATION, cell.contacts["CCAS"].id or 0
    )
    # the page (not the mail) shows the pseudonymised description
    from models.catalogue import step_kind

    page = step_kind(Step.CONSULTATION).page(session, ccas)
    assert ("Difficulté rencontrée", DIFFICULTY) in page.details
    answer_link(session, ccas, {"knows_situation": "oui", "proposal": "Visite à domicile"})
    chl = link_of(
        session, CaseType.SAISINE, saisine.id, Step.CONSULTATION, cell.contacts["CHL"].id or 0
    )
    answer_link(session, chl, {"knows_situation": "non", "proposal": ""})
    with pytest.raises(DomainError):
        answer_link(session, chl, {"knows_situation": "non"})

    assert remind_silent_partners(session=session, saisine=saisine) == 1
    assert remind_silent_partners(session=session, saisine=saisine) == 0  # once
    assert escalate_silent_partners(session=session, saisine=saisine) == 1
    assert escalate_silent_partners(session=session, saisine=saisine) == 0
    statuses = {c.organisation_id: c.status for c in consultations(session, saisine)}
    assert statuses[cell.org_id("DAC-PTA")] is ConsultationStatus.ESCALATED
    alert = outbox(session)[-1]
    assert alert.template == "saisine_coordinator_alert"
    assert alert.context["names"] == ["DAC-PTA"]

    record_orientation(
        session=session,
        saisine=saisine,
        kind=OrientationKind.CARE_PATH_COORDINATOR,
        who_acts="CHL",
        detail="",
        follow_up_on=None,
        actor=COORD,
    )
    assert saisine.status is SaisineStatus.ORIENTED
    outcome = [m for m in outbox(session) if m.template == "saisine_outcome"]
    assert sorted(m.recipient_email for m in outcome) == sorted(
        [
            "nadia.fontaine@icf.example",
            "referent@ccas.example",
            "referent@chl.example",
            "referent@dac-pta.example",
        ]
    )
    close_saisine(session=session, saisine=saisine, reason="orientation proposée", actor=COORD)
    assert saisine.status is SaisineStatus.CLOSED
    _no_description_in_mails(session)
    assert verify_case(session, "saisine", saisine.id) is None


def test_follow_up_no_reopens_level1_in_a_new_round(session: Session, cell: Cell) -> None:
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    assert saisine.id is not None
    consult_partners(
        session=session, saisine=saisine, organisation_ids=[cell.org_id("DAC-PTA")], actor=COORD
    )
    today = clock.now(session).date()
    record_orientation(
        session=session,
        saisine=saisine,
        kind=OrientationKind.DAC_PTA,
        who_acts="DAC-PTA",
        detail="",
        follow_up_on=today + timedelta(days=30),
        actor=COORD,
    )
    start_follow_up(session=session, saisine=saisine)
    assert saisine.status is SaisineStatus.FOLLOW_UP
    link = link_of(
        session, CaseType.SAISINE, saisine.id, Step.FOLLOW_UP, saisine.referrer_contact_id
    )
    with pytest.raises(DomainError, match="suite"):
        answer_link(session, link, {"worked": "non", "next_step": ""})
    answer_link(session, link, {"worked": "non", "next_step": "level1", "comment": "refus"})
    apply_follow_up(session=session, saisine=saisine)
    assert (saisine.status, saisine.round) == (SaisineStatus.LEVEL1, 2)
    assert consultations(session, saisine, 2) == []


def test_level2_meeting_rotation_cancel_move_decision_actions_and_closure(
    session: Session, cell: Cell
) -> None:
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    assert saisine.id is not None
    now = clock.now(session)
    with pytest.raises(DomainError, match="niveau 2"):
        plan_meeting(
            session=session,
            saisine=saisine,
            starts_at=now + timedelta(days=7),
            host_organisation_id=cell.org_id("CCAS"),
            invited_ids=[],
            actor=COORD,
        )
    escalate_to_level2(session=session, saisine=saisine, actor=COORD, reason="complexe")
    assert proposed_host(session, cell.clsm.id or 0).name == "CCAS"  # never hosted, first
    meeting = plan_meeting(
        session=session,
        saisine=saisine,
        starts_at=now + timedelta(days=7),
        host_organisation_id=cell.org_id("CCAS"),
        invited_ids=[cell.org_id("MDPH"), cell.org_id("Un chez Soi d'Abord")],
        actor=COORD,
    )
    assert proposed_host(session, cell.clsm.id or 0).name == "CHL"
    convocations = [m for m in outbox(session) if m.template == "saisine_convocation"]
    assert len(convocations) == 6  # four permanent members, two invited
    assert {m.calendar["method"] for m in convocations if m.calendar} == {"REQUEST"}
    assert {m.calendar["sequence"] for m in convocations if m.calendar} == {0}

    reschedule_meeting(
        session=session, meeting=meeting, starts_at=now + timedelta(days=8), actor=COORD
    )
    moved = [m for m in outbox(session) if m.template == "saisine_convocation"][6:]
    assert len(moved) == 6 and {m.calendar["sequence"] for m in moved if m.calendar} == {1}

    member = meeting_members(session, meeting)[0]
    assert meeting.id is not None and member.id is not None
    link = link_of(session, CaseType.MEETING, meeting.id, Step.ATTENDANCE, member.contact_id)
    answer_link(session, link, {"attending": "oui"})
    assert session.get(MeetingMember, member.id).attending is True  # type: ignore[union-attr]

    cancel_meeting(session=session, meeting=meeting, reason="quorum non atteint", actor=COORD)
    cancels = [m for m in outbox(session) if m.template == "saisine_meeting_cancelled"]
    assert len(cancels) == 6
    assert {(m.calendar or {}).get("method") for m in cancels} == {"CANCEL"}
    assert {(m.calendar or {}).get("sequence") for m in cancels} == {2}
    assert current_meeting(session, saisine) is None
    # cancelled meetings do not count in the rotation
    assert proposed_host(session, cell.clsm.id or 0).name == "CCAS"
    assert "meeting.cancelled" in [e.action for e in case_events(session, "saisine", saisine.id)]

    second = plan_meeting(
        session=session,
        saisine=saisine,
        starts_at=now + timedelta(days=14),
        host_organisation_id=cell.org_id("CCAS"),
        invited_ids=[cell.org_id("MDPH")],
        actor=COORD,
    )
    with pytest.raises(DomainError, match="réunion"):
        record_decision(
            session=session, saisine=saisine, meeting=second, text="x", actions=[], actor=COORD
        )
    clock.advance(session=session, delta=timedelta(days=15))
    mark_meeting_held(session=session, meeting=second, actor=COORD)
    assert second.status is MeetingStatus.HELD
    due = clock.now(session).date() + timedelta(days=30)
    record_decision(
        session=session,
        saisine=saisine,
        meeting=second,
        text="Réunion de concertation annuelle organisée par le DAC",
        actions=[
            ActionPlan("Organiser la réunion", cell.contacts["DAC-PTA"].id or 0, due),
            ActionPlan("Informer le médecin traitant", cell.contacts["CHL"].id or 0, due),
        ],
        actor=COORD,
    )
    assert saisine.status is SaisineStatus.DECIDED
    with pytest.raises(DomainError, match="motif"):
        close_saisine(session=session, saisine=saisine, reason="", actor=COORD)
    for name in ("DAC-PTA", "CHL"):
        link = link_of(
            session, CaseType.SAISINE, saisine.id, Step.ACTION, cell.contacts[name].id or 0
        )
        answer_link(session, link, {"note": "fait"})
    close_saisine(session=session, saisine=saisine, reason="", actor=COORD)
    assert saisine.status is SaisineStatus.CLOSED
    _no_description_in_mails(session)
    assert verify_case(session, "saisine", saisine.id) is None
    assert verify_case(session, "meeting", meeting.id) is None

    report = yearly_report(session, cell.clsm.id or 0, clock.now(session).year)
    [row] = report.rows
    assert row.decisions == (
        "Niveau 2 : réunion de cellule. Décision : "
        "Réunion de concertation annuelle organisée par le DAC"
    )
    assert row.note == "Membres invités : MDPH ; Réunion de cellule annulée"
    assert report.counts[ReportLevel.LEVEL2] == 1
    actions = [
        e
        for e in case_events(session, "saisine", saisine.id)
        if e.action == "status.changed" and (e.payload or {}).get("entity") == "action"
    ]
    assert [(e.payload or {})["to"] for e in actions] == [ActionStatus.DONE.value] * 2


def test_closed_saisines_are_purged_after_retention_and_the_chain_still_verifies(
    session: Session, cell: Cell
) -> None:
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    recent = open_saisine(session=session, intake=intake(), actor=COORD)
    urgent = open_saisine(session=session, intake=intake(urgent=True), actor=COORD)
    close_saisine(session=session, saisine=saisine, reason="sans suite", actor=COORD)
    clock.advance(session=session, delta=timedelta(days=365 * 5 + 2))
    close_saisine(session=session, saisine=recent, reason="sans suite", actor=COORD)
    assert purge_closed_saisines(session=session, older_than_years=5) == [
        saisine.reference,
        urgent.reference,
    ]
    assert saisine.id is not None and recent.id is not None
    purged = session.get(Saisine, saisine.id)
    assert purged is not None
    assert (purged.initials, purged.difficulty, purged.commune) == (None, None, None)
    assert session.get(Saisine, recent.id).difficulty == DIFFICULTY  # type: ignore[union-attr]
    events = case_events(session, "saisine", saisine.id)
    assert all(e.payload is None for e in events[:-1])
    assert events[-1].action == "personal-data.erased"
    assert verify_case(session, "saisine", saisine.id) is None
    assert purge_closed_saisines(session=session, older_than_years=5) == []


def test_yearly_report_csv_has_the_table_and_the_counts(session: Session, cell: Cell) -> None:
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    open_saisine(session=session, intake=intake(urgent=True), actor=COORD)
    consult_partners(
        session=session, saisine=saisine, organisation_ids=[cell.org_id("CHL")], actor=COORD
    )
    record_orientation(
        session=session,
        saisine=saisine,
        kind=OrientationKind.HOME_INTERVENTION,
        who_acts="CHL et DAC-PTA",
        detail="",
        follow_up_on=None,
        actor=COORD,
    )
    text = yearly_report_csv(session, cell.clsm.id or 0, clock.now(session).year)
    lines = text.splitlines()
    assert lines[0] == "Réunion;Saisine (source);Décisions;Note;Référence;Niveau"
    assert "Niveau 1 : Intervention au domicile (CHL et DAC-PTA)" in text
    assert "Intervention bilatérale au domicile" in text
    assert "Total niveau 1;1" in lines and "Total urgence;1" in lines
    assert session.exec(select(OutboxMessage)).first() is not None


def test_yearly_report_csv_carries_no_live_formula(session: Session, cell: Cell) -> None:
    hostile = '=HYPERLINK("http://evil.example/x";"Zoé")'
    open_saisine(
        session=session, intake=replace(intake(), referring_structure=hostile),
        actor=COORD,
    )  # fmt: skip
    text = yearly_report_csv(session, cell.clsm.id or 0, clock.now(session).year)
    cells = [c for row in csv.reader(io.StringIO(text), delimiter=";") for c in row]
    assert "'" + hostile in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)


def test_two_writers_of_the_same_saisine_cannot_both_win(db_url: str) -> None:
    from sqlalchemy.orm.exc import StaleDataError

    from models.core import db

    with db.session_scope() as setup:
        build_cell(setup)
        saisine_id = open_saisine(session=setup, intake=intake(), actor=COORD).id
    engine = db.get_engine()
    with Session(engine, expire_on_commit=False) as first, Session(engine) as second:
        mine = first.get(Saisine, saisine_id)
        first.commit()  # read, transaction over: the page is shown
        theirs = second.get(Saisine, saisine_id)
        assert mine is not None and theirs is not None
        theirs.close_reason = "autre"
        second.commit()
        mine.close_reason = "moi"
        with pytest.raises(StaleDataError):
            first.commit()


def test_two_saisines_examined_at_one_meeting_share_its_events(
    session: Session, cell: Cell
) -> None:
    first = open_saisine(session=session, intake=intake(), actor=COORD)
    second = open_saisine(session=session, intake=intake(), actor=COORD)
    for saisine in (first, second):
        escalate_to_level2(session=session, saisine=saisine, actor=COORD, reason="complexe")
    now = clock.now(session)
    meeting = plan_meeting(
        session=session,
        saisine=first,
        starts_at=now + timedelta(days=7),
        host_organisation_id=cell.org_id("CHL"),
        invited_ids=[cell.org_id("MDPH")],
        actor=COORD,
    )
    plan_meeting(
        session=session,
        saisine=second,
        starts_at=None,
        host_organisation_id=None,
        invited_ids=[cell.org_id("UDAF")],
        actor=COORD,
        meeting=meeting,
    )
    members = meeting_members(session, meeting)
    assert len(members) == 6  # four permanent, one invited for each saisine
    convocations = [m for m in outbox(session) if m.template == "saisine_convocation"]
    assert len(convocations) == 6  # the UDAF joins; the others are not mailed twice
    clock.advance(session=session, delta=timedelta(days=8))
    mark_meeting_held(session=session, meeting=meeting, actor=COORD)
    for saisine in (first, second):
        assert saisine.id is not None
        actions = [e.action for e in case_events(session, "saisine", saisine.id)]
        assert "meeting.held" in actions
        record_decision(
            session=session,
            saisine=saisine,
            meeting=meeting,
            text="Suivi conjoint",
            actions=[],
            actor=COORD,
        )
    report = yearly_report(session, cell.clsm.id or 0, clock.now(session).year)
    # each row names the members invited for its own situation
    assert [r.note for r in report.rows] == ["Membres invités : MDPH", "Membres invités : UDAF"]
