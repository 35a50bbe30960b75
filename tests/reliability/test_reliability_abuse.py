"""Abuse: hostile form values, guessable tokens, missing security headers."""

from __future__ import annotations

import hmac
import math
from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from models.core import db
from models.core.enums import CaseType
from models.core.links import find_link, issue_link, link_token
from service.main import create_app
from tests.support.figures import record
from tests.support.service_kit import (
    PASSWORD,
    VALID_ANSWER,
    World,
    actions,
    build_world,
    login_data,
    new_link,
    register_kinds,
)

pytestmark = pytest.mark.reliability

HOSTILE = {
    "vide": "",
    "espaces": "   \t  ",
    "script": "<script>alert('x')</script>",
    "attribut": '" onmouseover="alert(1)',
    "trop long": "é" * 100_000,
    "nul": "abc\x00def",
    "bidi": "\u202eevil\u202c",
    "zéro largeur": "\u200b\u200b",
    "emoji": "🙂" * 50,
    "nombre énorme": "9" * 400,
    "négatif": "-1",
    "flottant": "1.5e308",
    "mauvais type": "['liste']",
}


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    register_kinds(monkeypatch)
    with db.session_scope() as session:
        return build_world(session)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def test_hostile_values_in_every_field_get_french_errors_and_store_nothing(
    client: TestClient, world: World
) -> None:
    statuses: Counter[int] = Counter()
    for field in VALID_ANSWER | {"email": "", "start": "", "names": ""}:
        for label, value in HOSTILE.items():
            with db.session_scope() as session:
                token = new_link(session, world)
            response = client.post(f"/r/{token}", data={**VALID_ANSWER, field: value})
            statuses[response.status_code] += 1
            assert response.status_code in (200, 413, 422), (field, label)
            assert "<script>alert" not in response.text, (field, label)
            assert "Traceback" not in response.text
            if response.status_code != 200:
                assert "erreur" in response.text.lower() or "trop" in response.text.lower()
            with Session(db.get_engine()) as session:
                link = find_link(session, token)
                assert link is not None
                stored = actions(session, world.case_a).count("probe.ready")
                # a refused answer leaves the link unused; an accepted one uses it once
                assert (link.used_at is None) == (response.status_code != 200)
    with Session(db.get_engine()) as session:
        answers = actions(session, world.case_a).count("probe.ready")
    record(
        "hostile_form_values",
        requests=sum(statuses.values()),
        accepted=answers,
        statuses={str(k): v for k, v in sorted(statuses.items())},
    )
    assert answers == statuses[200] == stored


def test_link_tokens_are_long_random_and_compared_in_constant_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert world.contact.id is not None
    with db.session_scope() as session:
        tokens = [
            link_token(
                issue_link(
                    session=session,
                    contact_id=world.contact.id,
                    case_type=CaseType.SESSION,
                    case_id=world.case_a,
                    step="x",
                )
            )
            for _ in range(200)
        ]
    assert len(set(tokens)) == 200
    assert min(len(t) for t in tokens) >= 43  # 256 bits, URL-safe base64
    alphabet = Counter("".join(tokens))
    entropy = -sum(
        n / sum(alphabet.values()) * math.log2(n / sum(alphabet.values()))
        for n in alphabet.values()
    )
    assert entropy > 5.8  # close to log2(64) = 6 bits per character
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with Session(db.get_engine()) as session:
        assert find_link(session, tokens[0]) is not None
    assert calls, "the token is compared with hmac.compare_digest"


def test_every_page_and_error_carries_the_security_headers(
    client: TestClient, world: World
) -> None:
    openapi = client.get("/openapi.json").json()
    paths = {p for p, ops in openapi["paths"].items() if "get" in ops}
    paths |= {"/", "/docs", "/static/style.css", "/nulle-part"}
    client.post("/login", data=login_data(client, world.coordinator.email, PASSWORD))
    checked = 0
    for path in sorted(paths):
        url = (
            path.replace("{token}", "inconnu")
            .replace("{case_type}", "session")
            .replace("{case_id}", str(world.case_a))
            .replace("{mail_id}", "1")
        )
        response = client.get(url)
        checked += 1
        assert response.headers.get("x-content-type-options") == "nosniff", url
        assert response.headers.get("x-frame-options") == "DENY", url
        assert "content-security-policy" in response.headers, url
    assert checked >= 10
