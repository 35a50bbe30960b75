"""Production: no demo account, the API's map behind login."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from models.core import db
from models.core.enums import Role
from models.core.settings import get_settings
from service.demo import DEMO_PASSWORD, DemoRefused, load_demo
from service.main import create_app
from tests import factories
from tests.support.service_kit import PASSWORD, build_world, login_data


@pytest.fixture
def production(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLSM_ENV", "production")
    monkeypatch.setenv("CLSM_SECRET_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("CLSM_AUDIT_KEY", secrets.token_urlsafe(32))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_no_demo_data_nor_account_is_created_in_production(production: None) -> None:
    with pytest.raises(DemoRefused):
        load_demo()


def test_a_demo_account_is_refused_in_production(production: None) -> None:
    with db.session_scope() as session:
        world = build_world(session)
        demo = factories.user(session, world.clsm_a, Role.ADMIN, DEMO_PASSWORD)
        demo.email = "admin@clsm.example"
        session.add(demo)
        email = world.coordinator.email
    with TestClient(create_app()) as client:
        refused = client.post(
            "/login", data=login_data(client, "admin@clsm.example", DEMO_PASSWORD)
        )
        assert refused.status_code == 401
        accepted = client.post(
            "/login", data=login_data(client, email, PASSWORD), follow_redirects=False
        )
        assert accepted.status_code == 303


def test_the_api_documentation_needs_an_account_in_production(production: None) -> None:
    with db.session_scope() as session:
        world = build_world(session)
        email = world.auditor.email
    with TestClient(create_app()) as client:
        assert client.get("/docs", follow_redirects=False).status_code == 303
        assert client.get("/openapi.json").status_code == 401
        client.post("/login", data=login_data(client, email, PASSWORD))
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"].startswith("CLSM")


def test_the_api_documentation_is_open_in_development(db_url: str, session: Session) -> None:
    session.close()
    with TestClient(create_app()) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").status_code == 200
