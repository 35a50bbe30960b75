"""The saisine's pages in the service: the description typed by the coordinator (never in
Prefect), the coordinator's page of the saisine, and the partners' consultation page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from models.core import clock, db
from models.core.audit import Actor, AuditEvent
from models.core.enums import CaseType, Channel, Role
from models.core.links import link_token
from models.core.people import User
from models.core.waits import Wait, find_wait, open_wait
from models.saisine.common import escalate_to_level2
from models.saisine.intake import DESCRIPTION_STEP, open_saisine
from models.saisine.level1 import CONSULTATION_STEP, consult_partners, next_in_level1
from models.saisine.meetings import back_to_level1, cancel_meeting, plan_meeting
from models.saisine.plan import Next
from models.saisine.states import ConsultationStatus, SaisineStatus, WaitName
from models.saisine.tables import Consultation, Saisine
from service.main import create_app
from tests import factories
from tests.support.saisine import DIFFICULTY, INITIALS, Cell, answer_link, build_cell, intake
from tests.support.service_kit import PASSWORD, csrf_of, login_data

COORD = Actor.user(1, "Inès Moreau (coordination)", Channel.PREFECT_UI)


@dataclass
class Setting:
    cell: Cell
    coordinator: User
    auditor: User
    other: User  # coordinator of another CLSM


@pytest.fixture
def setting(db_url: str) -> Setting:
    with db.session_scope() as session:
        cell = build_cell(session)
        other = factories.clsm(session, slug="niort")
        return Setting(
            cell=cell,
            coordinator=factories.user(session, cell.clsm, Role.COORDINATOR, PASSWORD),
            auditor=factories.user(session, cell.clsm, Role.AUDITOR, PASSWORD),
            other=factories.user(session, other, Role.COORDINATOR, PASSWORD),
        )


@pytest.fixture
def client(setting: Setting) -> Iterator[TestClient]:
    with TestClient(create_app(), follow_redirects=False) as test_client:
        yield test_client


def _login(client: TestClient, user: User) -> None:
    answer = client.post("/login", data=login_data(client, user.email, PASSWORD))
    assert answer.status_code == 303, answer.text


def _launched() -> int:
    """A saisine as its run leaves it: launched (ids and labels), waiting for the description."""
    with db.session_scope() as session:
        saisine = open_saisine(
            session=session,
            intake=replace(intake(), description=None),
            actor=COORD,
            flow_run_id="00000000-0000-4000-8000-000000000001",
        )
        assert saisine.id is not None and saisine.status is SaisineStatus.RECEIVED
        assert saisine.difficulty is None
        open_wait(
            session=session,
            case_type=CaseType.SAISINE,
            case_id=saisine.id,
            step=DESCRIPTION_STEP,
            flow_run_id=saisine.flow_run_id,
        )
        return saisine.id


def _events(saisine_id: int, action: str) -> list[AuditEvent]:
    with Session(db.get_engine()) as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.case_id == saisine_id, AuditEvent.action == action)
                .order_by(col(AuditEvent.seq))
            )
        )


GOOD = {
    "initials": "qz",
    "age_range": "41-60 ans",
    "commune": "Châtellerault",
    "difficulty": DIFFICULTY,
    "consent_note": "",
}


def test_the_description_is_typed_in_the_service_refused_then_corrected(
    client: TestClient, setting: Setting
) -> None:
    saisine_id = _launched()
    path = f"/saisines/{saisine_id}/description"
    assert client.get(path).status_code == 303  # to the login page
    _login(client, setting.coordinator)
    page = client.get(path)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "Initiales de la personne concernée" in page.text
    token = csrf_of(page.text)

    # without the form's token: refused, nothing written
    assert client.post(path, data=GOOD).status_code == 403
    # empty: 422, French reasons beside the fields
    empty = client.post(path, data={"csrf_token": token})
    assert empty.status_code == 422
    assert "Ce champ est obligatoire." in empty.text
    # no consent and no reason: refused, what was typed is kept, the reason beside its field
    refused = client.post(path, data={**GOOD, "csrf_token": token})
    assert refused.status_code == 422
    assert 'id="consent_note-erreur"' in refused.text
    assert "indiquez pourquoi" in refused.text
    assert "Châtellerault" in refused.text and DIFFICULTY in refused.text
    with Session(db.get_engine()) as session:
        unchanged = session.get(Saisine, saisine_id)
        assert unchanged is not None and unchanged.status is SaisineStatus.RECEIVED
        assert unchanged.difficulty is None
    # corrected: recorded (audited, by the coordinator), level 1 begins, the run is woken
    done = client.post(
        path, data={**GOOD, "consent_note": "personne injoignable", "csrf_token": token}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/saisines/{saisine_id}"
    with Session(db.get_engine()) as session:
        saisine = session.get(Saisine, saisine_id)
        assert saisine is not None and saisine.status is SaisineStatus.LEVEL1
        assert (saisine.initials, saisine.commune) == ("QZ", "Châtellerault")
        wait = find_wait(
            session=session, case_type=CaseType.SAISINE, case_id=saisine_id, step=DESCRIPTION_STEP
        )
        assert wait is not None and (wait.resume_pending or wait.status.value != "open")
    (described,) = _events(saisine_id, "saisine.described")
    assert described.actor_ref == f"user:{setting.coordinator.id}"
    assert described.payload is not None and described.payload["difficulty"] == DIFFICULTY
    # the page is done: it leads to the saisine's page, which shows the description
    assert client.get(path).headers["location"] == f"/saisines/{saisine_id}"
    assert DIFFICULTY in client.get(f"/saisines/{saisine_id}").text


def test_an_auditor_or_another_clsm_cannot_type_the_description(
    client: TestClient, setting: Setting
) -> None:
    saisine_id = _launched()
    _login(client, setting.other)
    assert client.get(f"/saisines/{saisine_id}/description").status_code == 404
    assert client.get(f"/saisines/{saisine_id}").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/cases").text)})
    _login(client, setting.auditor)
    assert client.get(f"/saisines/{saisine_id}/description").status_code == 403


def test_the_coordinators_saisine_page_shows_the_case_and_audits_each_read(
    client: TestClient, setting: Setting
) -> None:
    cell = setting.cell
    with db.session_scope() as session:
        saisine = open_saisine(session=session, intake=intake(), actor=COORD)
        assert saisine.id is not None
        consult_partners(
            session=session,
            saisine=saisine,
            organisation_ids=[cell.org_id("CCAS"), cell.org_id("CHL")],
            actor=COORD,
        )
        ccas = session.exec(
            select(Consultation).where(Consultation.organisation_id == cell.org_id("CCAS"))
        ).one()
        from tests.support.saisine import link_of

        link = link_of(
            session, CaseType.SAISINE, saisine.id, CONSULTATION_STEP.name, ccas.contact_id
        )
        answer_link(session, link, {"knows_situation": "oui", "proposal": "Visite conjointe"})
        saisine_id = saisine.id
    _login(client, setting.coordinator)
    page = client.get(f"/saisines/{saisine_id}")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    text = page.text
    assert INITIALS in text and DIFFICULTY in text
    assert "Visite conjointe" in text and "répondue" in text
    # what is awaited, from whom: the CHL has not answered
    assert "Référent CHL (CHL)" in text
    assert len(_events(saisine_id, "case.read")) == 1
    client.get(f"/saisines/{saisine_id}")
    assert len(_events(saisine_id, "case.read")) == 2
    # linked from the case page
    assert f'href="/saisines/{saisine_id}"' in client.get(f"/cases/saisine/{saisine_id}").text


def test_a_closed_saisine_reads_only(client: TestClient, setting: Setting) -> None:
    from models.saisine.common import close_saisine

    with db.session_scope() as session:
        saisine = open_saisine(session=session, intake=intake(), actor=COORD)
        close_saisine(session=session, saisine=saisine, reason="sans suite", actor=COORD)
        saisine_id = saisine.id
    _login(client, setting.coordinator)
    text = client.get(f"/saisines/{saisine_id}").text
    assert "cette page se lit seulement" in text and "sans suite" in text
    assert '<form method="post" action="/saisines' not in text
    assert "Rien : la saisine est close." in text


def test_a_consultation_link_empty_or_partial_post_consumes_nothing(
    client: TestClient, setting: Setting
) -> None:
    cell = setting.cell
    with db.session_scope() as session:
        saisine = open_saisine(session=session, intake=intake(), actor=COORD)
        assert saisine.id is not None
        consult_partners(
            session=session, saisine=saisine, organisation_ids=[cell.org_id("CCAS")], actor=COORD
        )
        from tests.support.saisine import link_of

        link = link_of(
            session,
            CaseType.SAISINE,
            saisine.id,
            CONSULTATION_STEP.name,
            cell.contacts["CCAS"].id or 0,
        )
        token, saisine_id = link_token(link), saisine.id
    page = client.get(f"/r/{token}")
    assert page.status_code == 200
    assert "checked" not in page.text  # no answer preset
    assert "propose une orientation une fois toutes les structures consultées" in page.text
    # the partner's read of the description is audited, as that contact
    (read,) = _events(saisine_id, "case.read")
    assert read.actor_ref == f"contact:{cell.contacts['CCAS'].id}"
    assert client.post(f"/r/{token}", data={}).status_code == 422
    partial = client.post(f"/r/{token}", data={"proposal": "Visite possible"})
    assert partial.status_code == 422
    assert "Choisissez une réponse." in partial.text and "Visite possible" in partial.text
    with Session(db.get_engine()) as session:
        (consultation,) = session.exec(select(Consultation)).all()
        assert consultation.status is ConsultationStatus.ASKED
    done = client.post(f"/r/{token}", data={"knows_situation": "non", "proposal": ""})
    assert done.status_code == 200 and "Merci" in done.text


def test_after_a_cancelled_meeting_level1_offers_the_orientation_at_once(
    session: Session, setting: Setting
) -> None:
    """Item 6: the answers of the round stand; no new consultation round is forced."""
    cell = setting.cell
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    consult_partners(
        session=session, saisine=saisine, organisation_ids=[cell.org_id("CCAS")], actor=COORD
    )
    (consultation,) = session.exec(select(Consultation)).all()
    from models.saisine.level1 import record_consultation_answer

    record_consultation_answer(
        session=session, consultation=consultation, knows_situation=True, proposal="", actor=COORD
    )
    escalate_to_level2(session=session, saisine=saisine, actor=COORD, reason="complexe")
    meeting = plan_meeting(
        session=session,
        saisine=saisine,
        starts_at=clock.now(session) + timedelta(days=7),
        host_organisation_id=cell.org_id("CCAS"),
        invited_ids=[],
        actor=COORD,
    )
    cancel_meeting(session=session, meeting=meeting, reason="quorum non atteint", actor=COORD)
    back_to_level1(session=session, saisine=saisine, reason="retour", actor=COORD)
    assert (saisine.status, saisine.round) == (SaisineStatus.LEVEL1, 1)
    assert next_in_level1(session, saisine) == Next.until(WaitName.ORIENTATION)
    assert session.exec(select(Wait)).all() == []


def test_a_launched_saisine_waits_for_its_description_then_level1_begins(
    session: Session, setting: Setting
) -> None:
    from models.saisine.intake import describe_saisine, next_when_received
    from models.saisine.plan import Task
    from tests.support.saisine import description

    saisine = open_saisine(session=session, intake=replace(intake(), description=None), actor=COORD)
    waiting = next_when_received(session, saisine)
    assert (waiting.task, waiting.wait, waiting.step) == (
        Task.ASK_DESCRIPTION,
        WaitName.DESCRIPTION,
        DESCRIPTION_STEP,
    )
    received = session.exec(select(AuditEvent).where(AuditEvent.action == "saisine.received")).one()
    assert received.payload is not None and "difficulty" not in received.payload
    describe_saisine(session=session, saisine=saisine, description=description(), actor=COORD)
    assert next_when_received(session, saisine) != waiting  # the run's wait ends
    assert next_in_level1(session, saisine) == Next.until(WaitName.PARTNERS)
