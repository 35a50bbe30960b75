"""The session dashboard: who is placed where, each signature with its time, who is late,
the waiting list; the read is audited; another CLSM's session is a 404; closed: read-only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from models.core import db
from models.core.audit import AuditEvent
from models.core.people import Contact
from models.immersion.states import ApplicationStatus
from models.immersion.tables import Application
from service.main import create_app
from tests.service.session_world import SessionWorld, build_session, close_session
from tests.support.service_kit import PASSWORD, login_data


@pytest.fixture
def world(db_url: str) -> SessionWorld:
    with db.session_scope() as session:
        return build_session(session)


@pytest.fixture
def client(world: SessionWorld) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def _login(client: TestClient, email: str) -> None:
    response = client.post("/login", data=login_data(client, email, PASSWORD))
    assert response.status_code in (200, 303), response.text


def _reads(session_id: int) -> list[AuditEvent]:
    with db.session_scope() as session:
        return list(
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.case_type == "session",
                    AuditEvent.case_id == session_id,
                    AuditEvent.action == "case.read",
                )
            )
        )


def _waiting_names(session_id: int) -> list[str]:
    with db.session_scope() as session:
        query = select(Application).where(
            Application.session_id == session_id,
            Application.status == ApplicationStatus.WAITLISTED,
        )
        rows = sorted(session.exec(query), key=lambda a: a.waitlist_rank or 0)
        return [c.name for a in rows if (c := session.get(Contact, a.contact_id)) is not None]


def test_the_dashboard_shows_placements_signatures_lateness_and_waiting_list(
    client: TestClient, world: SessionWorld
) -> None:
    _login(client, world.coordinator)
    case_page = client.get(f"/cases/session/{world.session_id}")
    assert f'href="/cases/session/{world.session_id}/dashboard"' in case_page.text
    before = len(_reads(world.session_id))
    response = client.get(f"/cases/session/{world.session_id}/dashboard")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    # participants with home and host, days, signatures with their time
    assert "Élodie Bérenger" in page and "Jérôme Lefèvre" in page
    assert "CCAS" in page and "Département" in page
    assert page.count("signée le ") == 5  # six signatures, the last one awaited
    assert "en retard (attendu le " in page
    assert page.count('<tr class="late">') == 1
    assert "1 participant avec une réponse en retard" in page
    # the waiting list, in rank order
    waiting = page.split("<h2>Liste d'attente</h2>")[1]
    ranked = _waiting_names(world.session_id)
    assert len(ranked) == 2
    assert 0 <= waiting.index(ranked[0]) < waiting.index(ranked[1])
    # the read is audited, naming the page
    reads = _reads(world.session_id)
    assert len(reads) == before + 1
    assert reads[-1].payload == {"page": "tableau de bord"}
    assert reads[-1].actor_label.startswith("Utilisateur")


def test_a_closed_session_dashboard_is_read_only(client: TestClient, world: SessionWorld) -> None:
    with db.session_scope() as session:
        close_session(session, world.session_id)
    _login(client, world.coordinator)
    page = client.get(f"/cases/session/{world.session_id}/dashboard").text
    assert "lecture seule" in page
    assert "<form" not in page.split("<main")[1]  # no action on a closed session
    case_page = client.get(f"/cases/session/{world.session_id}").text
    assert "Déplacer" not in case_page and "Annuler la session" not in case_page


def test_dashboard_statuses_are_problem_json_in_french(
    client: TestClient, world: SessionWorld
) -> None:
    path = f"/cases/session/{world.session_id}/dashboard"
    json = {"Accept": "application/json"}
    anonymous = client.get(path, headers=json, follow_redirects=False)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    _login(client, world.other_coordinator)
    before = len(_reads(world.session_id))
    foreign = client.get(path, headers=json)
    assert foreign.status_code == 404
    assert foreign.json()["detail"] == "Ce dossier n'existe pas."
    missing = client.get("/cases/session/999999/dashboard", headers=json)
    assert missing.status_code == 404
    invalid = client.get("/cases/session/abc/dashboard", headers=json)
    assert invalid.status_code == 422
    assert invalid.headers["content-type"].startswith("application/problem+json")
    assert len(_reads(world.session_id)) == before  # nothing read, nothing recorded


def test_an_auditor_reads_the_dashboard_without_actions(
    client: TestClient, world: SessionWorld
) -> None:
    _login(client, world.auditor)
    page = client.get(f"/cases/session/{world.session_id}/dashboard")
    assert page.status_code == 200
    assert "actions de la coordination" not in page.text


def test_pending_mails_are_listed_in_french_with_recipient_structure_and_step(
    client: TestClient, world: SessionWorld
) -> None:
    _login(client, world.coordinator)
    page = client.get(f"/cases/session/{world.session_id}").text
    mails = page.split("E-mails en attente d'envoi")[1]
    assert "immersion_agreement" not in mails and "immersion_" not in mails
    assert "convention de stage à signer" in mails
    assert "signer la convention de stage" in mails  # the step asked of the recipient
    row = next(r for r in mails.split("<tr>") if "Tuteur·rice 2" in r)
    assert "Département" in row  # the tutor's structure
    api = client.get(f"/api/cases/session/{world.session_id}")
    assert api.status_code == 200
    listed = api.json()["undelivered_mails"]
    tutor = next(m for m in listed if m["recipient_name"] == "Tuteur·rice 2")
    assert tutor["recipient_structure"] == "Département"
    assert tutor["step"] == "signer la convention de stage"
