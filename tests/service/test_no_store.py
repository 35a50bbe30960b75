"""Pages and API answers that can show personal data are never kept by a cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from models.catalogue import CASE_KINDS, STEP_KINDS
from models.core import db
from models.core.enums import CaseType
from service.main import create_app
from tests.support.service_kit import (
    PASSWORD,
    PROBE_STEP,
    STEP,
    TEST_CASES,
    World,
    build_world,
    login_data,
    new_link,
)


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setitem(STEP_KINDS, STEP, PROBE_STEP)
    monkeypatch.setitem(CASE_KINDS, CaseType.SESSION, TEST_CASES)
    with db.session_scope() as session:
        return build_world(session)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def test_every_page_and_api_answer_says_no_store(client: TestClient, world: World) -> None:
    with db.session_scope() as session:
        token = new_link(session, world)
    link = client.get(f"/r/{token}")
    assert link.status_code == 200 and link.headers["cache-control"] == "no-store"
    client.post("/login", data=login_data(client, world.coordinator.email, PASSWORD))
    for path in (
        "/cases",
        "/cases/session/101",
        "/cases/session/101/history",
        "/cases/session/101/history.json",
        "/cases/session/101/history.csv",
        "/api/cases",
        "/api/me",
        "/cases/session/999",  # an error page too
    ):
        response = client.get(path)
        assert response.headers.get("cache-control") == "no-store", path
    static = client.get("/static/style.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")
