"""The yearly report of the cell's saisines, as a page and as CSV."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from models.core import db
from models.core.enums import Role
from service.demo import load_demo, load_saisine_demo
from service.main import create_app
from tests import factories
from tests.support.service_kit import PASSWORD, login_data


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    load_demo()
    load_saisine_demo(start_open_run=False)
    with TestClient(create_app()) as test_client:
        yield test_client


def _login(client: TestClient, role: Role, clsm_slug: str | None = "poitiers") -> None:
    from sqlmodel import select

    from models.core.people import Clsm

    with db.session_scope() as session:
        clsm = session.exec(select(Clsm).where(Clsm.slug == clsm_slug)).first()
        user = factories.user(session, clsm, role, PASSWORD)
    response = client.post(
        "/login", data=login_data(client, user.email, PASSWORD), follow_redirects=False
    )
    assert response.status_code == 303


def test_the_2022_table_of_poitiers(client: TestClient) -> None:
    _login(client, Role.AUDITOR)
    page = client.get("/reports/saisines/2022")
    assert page.status_code == 200
    assert "ICF Habitat" in page.text and "Réunion de cellule annulée" in page.text
    assert "Niveau 2 : réunion de cellule. Décision" in page.text
    csv = client.get("/reports/saisines/2022.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("Réunion;Saisine (source);Décisions;Note")
    assert sum(1 for line in lines[1:] if line.count(";") >= 5) == 6  # six saisines in 2022


def test_each_read_of_the_yearly_report_is_in_the_history_of_its_saisines(
    client: TestClient,
) -> None:
    from sqlmodel import Session, col, select

    from models.core.audit import AuditEvent
    from models.saisine.tables import Saisine

    _login(client, Role.AUDITOR)
    assert client.get("/reports/saisines/2022").status_code == 200
    assert client.get("/reports/saisines/2022.csv").status_code == 200
    with Session(db.get_engine()) as session:
        of_2022 = {s.id for s in session.exec(select(Saisine)) if s.reference.startswith("2022-")}
        reads = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "report.read")
        ).all()
    assert len(of_2022) == 6
    for form in ("html", "csv"):
        read = [e for e in reads if (e.payload or {}).get("format") == form]
        assert {e.case_id for e in read} == of_2022
        assert all(e.case_type == "saisine" and e.actor_kind == "user" for e in read)
        assert all((e.payload or {}).get("report") == "bilan 2022" for e in read)


def test_report_needs_an_account_and_a_valid_year(client: TestClient) -> None:
    assert client.get("/reports/saisines/2022", follow_redirects=False).status_code in (303, 401)
    _login(client, Role.COORDINATOR)
    assert client.get("/reports/saisines/19").status_code == 422
    assert client.get("/reports/saisines/2022").status_code == 200


def test_admin_names_the_clsm(client: TestClient) -> None:
    _login(client, Role.ADMIN, clsm_slug=None)
    assert client.get("/reports/saisines/2022").status_code == 404
    assert "ICF Habitat" in client.get("/reports/saisines/2022?clsm=poitiers").text
