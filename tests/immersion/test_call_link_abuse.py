"""The call for applications (a multi-use link) cannot be used to send mail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.core import clock
from models.core.audit import Actor
from models.core.links import StepLink, link_token
from models.core.outbox import OutboxMessage
from models.immersion.call import create_session, open_call
from models.immersion.tables import ImmersionSessionCreate
from notifications.render import render_message
from service.deps import FailureLimiter
from service.main import create_app
from tests.support.immersion import build_clsm, session_dates


@pytest.fixture
def call_tokens(session: Session) -> dict[str, str]:
    clsm, _ = build_clsm(session)
    data = ImmersionSessionCreate(
        clsm_slug=clsm.slug,
        title="Immersions 2022 — session 2",
        capacity=4,
        structures=["CCAS", "chl", "Département", "DAC", "UDAF"],
        **session_dates(clock.now(session)),
    )
    row = create_session(session=session, data=data, flow_run_id="run-1", actor=Actor.system())
    open_call(session=session, row=row, actor=Actor.system())
    session.commit()
    calls = session.exec(select(OutboxMessage).where(OutboxMessage.template == "immersion_call"))
    tokens = {}
    for message in calls:
        link = session.get(StepLink, (message.context or {})["link_id"])
        assert link is not None and link.multi_use
        tokens[message.recipient_email.split("@")[1]] = link_token(link)
    session.rollback()  # no transaction left open while the service writes
    return tokens


@pytest.fixture
def client(call_tokens: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def _application(n: int, name: str = "") -> dict[str, str | list[str]]:
    return {
        "name": name or f"Candidat {n}",
        "email": f"victime{n}@ailleurs.example",
        "function": "Travailleur social",
        "manager_name": "Cheffe",
        "manager_email": f"cheffe{n}@ailleurs.example",
        "motivation": "Mieux connaître les partenaires",
        "wishes": ["CHL"],
        "availability": "mardis",
    }


def _received(session: Session) -> list[OutboxMessage]:
    session.expire_all()
    query = select(OutboxMessage).where(OutboxMessage.template == "immersion_application_received")
    found = list(session.exec(query))
    session.rollback()
    return found


def test_applications_are_limited_per_link_and_per_address(
    client: TestClient, call_tokens: dict[str, str], session: Session
) -> None:
    client.app.state.limiters["apply-link"] = FailureLimiter(3, 3600, scope="apply-link")  # type: ignore[attr-defined]
    client.app.state.limiters["apply-address"] = FailureLimiter(5, 3600, scope="apply-address")  # type: ignore[attr-defined]
    ccas = call_tokens["ccas.example"]
    statuses = [client.post(f"/r/{ccas}", data=_application(n)).status_code for n in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    udaf = call_tokens["udaf.example"]  # another link, the same address
    statuses = [client.post(f"/r/{udaf}", data=_application(n)).status_code for n in (10, 11, 12)]
    assert statuses == [200, 200, 429]
    assert len(_received(session)) == 5  # one confirmation per accepted application only


def test_the_confirmation_to_a_typed_address_carries_nothing_typed(
    client: TestClient, call_tokens: dict[str, str], session: Session
) -> None:
    spam = "Gagnez 1000 euros sur http://arnaque.example"
    page = client.post(f"/r/{call_tokens['ccas.example']}", data=_application(1, spam))
    assert page.status_code == 200
    (message,) = _received(session)
    mail = render_message(session=session, message=message)
    session.rollback()
    assert "arnaque" not in mail.subject + mail.text + mail.html
    assert "\n\nBonjour,\n\n" in mail.text  # no name: it was typed by whoever applied
