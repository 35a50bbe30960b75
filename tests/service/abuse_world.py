"""A session whose call is open, its call links known, a coordinator and an auditor: the
world of the tests of abusive applications (pages and browser)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from models.core.enums import Role
from models.core.links import StepLink, link_token
from models.core.outbox import OutboxMessage
from tests import factories
from tests.support.immersion import build_clsm, open_session
from tests.support.service_kit import PASSWORD


@dataclass(frozen=True)
class AbuseWorld:
    session_id: int
    coordinator: str
    coordinator_name: str
    auditor: str
    calls: dict[str, str]  # the call link's token, by the invited structure's mail domain


def build_abuse_world(session: Session) -> AbuseWorld:
    clsm, _ = build_clsm(session)
    coordinator = factories.user(session, clsm, Role.COORDINATOR, PASSWORD)
    auditor = factories.user(session, clsm, Role.AUDITOR, PASSWORD)
    row = open_session(
        session, clsm, title="Immersions 2027 — session 2", capacity=4, flow_run_id="run-abuse"
    )
    assert row.id is not None
    calls: dict[str, str] = {}
    for message in session.exec(
        select(OutboxMessage).where(OutboxMessage.template == "immersion_call")
    ):
        link = session.get(StepLink, (message.context or {})["link_id"])
        assert link is not None
        calls[message.recipient_email.split("@")[1]] = link_token(link)
    return AbuseWorld(
        session_id=row.id,
        coordinator=coordinator.email,
        coordinator_name=coordinator.name,
        auditor=auditor.email,
        calls=calls,
    )


def application(n: int, name: str = "", email: str = "") -> dict[str, str | list[str]]:
    """An application as the call's page sends it."""
    return {
        "name": name or f"Candidat {n}",
        "email": email or f"victime{n}@ailleurs.example",
        "function": "Travailleur social",
        "manager_name": f"Cheffe {n}",
        "manager_email": f"cheffe{n}@ailleurs.example",
        "motivation": "Gagnez 1000 euros sur http://arnaque.example",
        "wishes": ["CHL"],
        "availability": "mardis",
    }
