"""Abusive applications: refusals by the call link's limits are counted without what was
typed; a coordinator flags an application and purges it (contacts it created anonymised,
audit payloads erased, audited in their name, never selected); purge refused after the
selection; CSRF and roles as on other coordinator forms; the page's read is audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from models.core import clock, db
from models.core.audit import AuditEvent, verify_case
from models.core.links import LinkState, StepLink, link_state
from models.core.outbox import OutboxMessage
from models.core.people import Contact
from models.immersion.abuse import ERASED_NAME
from models.immersion.call import start_selection
from models.immersion.common import get_session
from models.immersion.selection import record_selection, selection_proposal
from models.immersion.states import ApplicationStatus, Step
from models.immersion.tables import Application, RefusedApplications
from service.deps import FailureLimiter
from service.main import create_app
from tests.service.abuse_world import AbuseWorld, application, build_abuse_world
from tests.service.session_world import SYSTEM
from tests.support.service_kit import PASSWORD, csrf_of, login_data


@pytest.fixture
def world(any_db_url: str) -> AbuseWorld:
    with db.session_scope() as session:
        return build_abuse_world(session)


@pytest.fixture
def client(world: AbuseWorld) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def _login(client: TestClient, email: str) -> None:
    response = client.post("/login", data=login_data(client, email, PASSWORD))
    assert response.status_code in (200, 303), response.text


def _apply(client: TestClient, world: AbuseWorld, n: int, **typed: str) -> int:
    return client.post(
        f"/r/{world.calls['ccas.example']}", data=application(n, **typed)
    ).status_code


def _applications(session_id: int) -> dict[int, Application]:
    with db.session_scope() as session:
        rows = session.exec(select(Application).where(Application.session_id == session_id))
        return {a.number: a for a in rows}


def _events(session_id: int, action: str) -> list[AuditEvent]:
    with db.session_scope() as session:
        query = select(AuditEvent).where(
            AuditEvent.case_id == session_id,
            AuditEvent.case_type == "session",
            AuditEvent.action == action,
        )
        return list(session.exec(query))


def _abuse_page(client: TestClient, world: AbuseWorld) -> str:
    page = client.get(f"/cases/session/{world.session_id}/abuse")
    assert page.status_code == 200, page.text
    return page.text


def _flag(client: TestClient, world: AbuseWorld, application_id: int, reason: str) -> int:
    token = csrf_of(_abuse_page(client, world))
    url = f"/cases/session/{world.session_id}/applications/{application_id}/flag"
    response = client.post(
        url, data={"csrf_token": token, "reason": reason}, follow_redirects=False
    )
    return response.status_code


def test_refused_applications_are_counted_without_what_was_typed(
    client: TestClient, world: AbuseWorld
) -> None:
    client.app.state.limiters["apply-link"] = FailureLimiter(2, 3600, scope="apply-link")  # type: ignore[attr-defined]
    assert [_apply(client, world, n, name="Gagnez 1000 euros") for n in range(5)] == [
        200,
        200,
        429,
        429,
        429,
    ]
    with db.session_scope() as session:
        (burst,) = session.exec(select(RefusedApplications))
        assert burst.count == 3 and burst.session_id == world.session_id
        assert len(burst.client_hash) == 16 and "testclient" not in burst.client_hash
    _login(client, world.coordinator)
    reads = len(_events(world.session_id, "case.read"))
    text = _abuse_page(client, world)
    assert "3 candidatures refusées" in text and burst.client_hash in text
    assert len(_events(world.session_id, "case.read")) == reads + 1  # the read is audited
    case_page = client.get(f"/cases/session/{world.session_id}/dashboard").text
    assert f'href="/cases/session/{world.session_id}/abuse"' in case_page


def test_a_flagged_application_is_purged_and_never_reaches_selection(
    client: TestClient, world: AbuseWorld
) -> None:
    # the first one reuses a contact of the directory: a purge must leave it alone
    assert _apply(client, world, 1, name="Spam", email="referent@ccas.example") == 200
    assert _apply(client, world, 2, name="Gagnez 1000 euros") == 200
    assert _apply(client, world, 3) == 200
    first, spam, honest = (_applications(world.session_id)[n] for n in (1, 2, 3))
    _login(client, world.coordinator)
    assert _flag(client, world, first.id or 0, "Adresse d'un référent détournée") == 303
    assert _flag(client, world, spam.id or 0, "Publicité") == 303
    assert _flag(client, world, spam.id or 0, "encore") == 409  # already flagged
    text = _abuse_page(client, world)
    assert "Publicité" in text and "Effacer la candidature n°2" in text
    token = csrf_of(text)
    base = f"/cases/session/{world.session_id}/applications"
    assert client.post(f"{base}/{spam.id}/purge", data={}).status_code == 403  # no CSRF token
    for row in (first, spam):
        response = client.post(
            f"{base}/{row.id}/purge", data={"csrf_token": token}, follow_redirects=False
        )
        assert response.status_code == 303, response.text
    after = _applications(world.session_id)
    assert after[2].status is ApplicationStatus.PURGED and after[2].motivation == ""
    with db.session_scope() as session:
        created = [session.get(Contact, c) for c in spam.created_contacts]
        assert len(created) == 2  # the applicant and the manager typed with it
        assert all(c and c.name == ERASED_NAME and c.email.endswith("@invalid") for c in created)
        kept = session.get(Contact, first.contact_id)
        assert kept is not None and kept.name == "Référent CCAS"  # not created by it
        mails = session.exec(select(OutboxMessage).where(OutboxMessage.case_id == world.session_id))
        assert not [m for m in mails if "victime2" in m.recipient_email]
        row = get_session(session, world.session_id)
        proposal = selection_proposal(session, row)
        assert [d.application_id for d in proposal] == [honest.id]
        assert verify_case(session, "session", world.session_id) is None
    purged = _events(world.session_id, "application.purged")
    erased = _events(world.session_id, "personal-data.erased")
    assert len(purged) == len(erased) == 2
    assert {e.actor_label for e in purged + erased} == {world.coordinator_name}
    assert all((e.payload or {}).get("events_erased", 0) >= 2 for e in erased)
    flagged = _events(world.session_id, "application.flagged")
    assert [e.payload for e in flagged] == [None, None]  # the reasons typed went with them
    with db.session_scope() as session:  # the applicant's personal link no longer opens
        (personal,) = session.exec(
            select(StepLink).where(StepLink.step == Step.CHANGE, StepLink.subject_id == spam.id)
        )
        assert link_state(session, personal) is LinkState.EXPIRED
    # the call link of the referent whose address was typed in the first one still works
    assert client.get(f"/r/{world.calls['ccas.example']}").status_code == 200
    assert _apply(client, world, 4) == 200


def test_purge_is_refused_once_the_selection_is_done(client: TestClient, world: AbuseWorld) -> None:
    for n in (1, 2):
        assert _apply(client, world, n) == 200
    spam = _applications(world.session_id)[1]
    _login(client, world.coordinator)
    assert _flag(client, world, spam.id or 0, "x") == 422  # a reason of a few words at least
    assert _applications(world.session_id)[1].flagged_at is None
    assert _flag(client, world, spam.id or 0, "Envoi en série") == 303
    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=11))
        row = get_session(session, world.session_id)
        start_selection(session=session, row=row, actor=SYSTEM)
        decisions = selection_proposal(session, row)
        record_selection(session=session, row=row, decisions=decisions, actor=SYSTEM)
    text = _abuse_page(client, world)
    assert "La sélection de cette session est faite" in text
    assert "Effacer la candidature" not in text
    url = f"/cases/session/{world.session_id}/applications/{spam.id}/purge"
    refused = client.post(url, data={"csrf_token": csrf_of(text)})
    assert refused.status_code == 409
    assert "La sélection de la session est faite" in refused.text
    problem = client.post(
        url, data={"csrf_token": csrf_of(text)}, headers={"Accept": "application/json"}
    )
    assert problem.status_code == 409
    assert problem.headers["content-type"].startswith("application/problem+json")
    assert "ne peut plus être effacée" in problem.json()["detail"]
    assert _applications(world.session_id)[1].status is ApplicationStatus.SELECTED


def test_an_auditor_reads_the_page_but_cannot_flag(client: TestClient, world: AbuseWorld) -> None:
    assert _apply(client, world, 1) == 200
    spam = _applications(world.session_id)[1]
    _login(client, world.auditor)
    text = _abuse_page(client, world)
    assert "Signaler la candidature" not in text
    assert _flag(client, world, spam.id or 0, "Abus") == 403
    assert _applications(world.session_id)[1].flagged_at is None


def test_a_purge_after_the_proposal_was_shown_is_skipped_by_its_approval(
    client: TestClient, world: AbuseWorld
) -> None:
    for n in (1, 2, 3):
        assert _apply(client, world, n) == 200
    spam = _applications(world.session_id)[2]
    with db.session_scope() as session:  # the call closes; the proposal is shown in Prefect
        clock.advance(session=session, delta=timedelta(days=11))
        row = get_session(session, world.session_id)
        start_selection(session=session, row=row, actor=SYSTEM)
        shown = selection_proposal(session, row)
    assert spam.id in [d.application_id for d in shown]
    _login(client, world.coordinator)
    assert _flag(client, world, spam.id or 0, "Envoi en série") == 303
    url = f"/cases/session/{world.session_id}/applications/{spam.id}/purge"
    token = csrf_of(_abuse_page(client, world))
    purged = client.post(url, data={"csrf_token": token}, follow_redirects=False)
    assert purged.status_code == 303
    with db.session_scope() as session:  # the coordinator approves what was shown
        row = get_session(session, world.session_id)
        record_selection(session=session, row=row, decisions=shown, actor=SYSTEM)
        decisions = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.case_id == world.session_id,
                col(OutboxMessage.dedup_key).endswith("-decision"),
            )
        )
        keys = sorted(m.dedup_key for m in decisions)
    apps = _applications(world.session_id)
    assert keys == [f"application-{apps[n].id}-decision" for n in (1, 3)]
    statuses = {n: a.status for n, a in apps.items()}
    assert statuses[2] is ApplicationStatus.PURGED
    assert statuses[1] is statuses[3] is ApplicationStatus.SELECTED
