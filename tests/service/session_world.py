"""A session in its agreements phase, built through its steps: two participants placed, one
agreement fully signed, one waiting for its tutor past the deadline, two on the waiting list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from models.catalogue import STEP_KINDS
from models.core import clock
from models.core.audit import Actor
from models.core.enums import Role
from models.core.links import StepLink, consume
from models.core.outbox import OutboxMessage
from models.core.people import Contact
from models.immersion.agreements import ensure_agreements
from models.immersion.call import start_selection
from models.immersion.common import advance_to, placements
from models.immersion.plan import signature_deadline
from models.immersion.selection import record_selection, selection_proposal
from models.immersion.states import SessionStatus
from models.immersion.tables import ACTIVE_PLACEMENT, ImmersionSession
from tests import factories
from tests.support.immersion import (
    build_clsm,
    immersion_days,
    open_session,
    review_as_proposed,
)
from tests.support.service_kit import PASSWORD

SYSTEM = Actor.system("test")
PEOPLE = [
    ("Élodie Bérenger", "elodie", "ccas"),
    ("Jérôme Lefèvre", "jerome", "chl"),
    ("Zoé Martin", "zoe", "dac"),
    ("Noël Dupré", "noel", "udaf"),
]


@dataclass(frozen=True)
class SessionWorld:
    session_id: int
    coordinator: str  # e-mail; password PASSWORD
    auditor: str
    other_coordinator: str  # of another CLSM
    clsm_id: int


def _mails(session: Session, template: str) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.template == template)
    return list(session.exec(query.order_by(OutboxMessage.id)))  # type: ignore[arg-type]


def answer(session: Session, link_id: int, data: dict[str, Any]) -> None:
    """A partner's answer, recorded as the service does."""
    link = session.get(StepLink, link_id)
    assert link is not None
    kind = STEP_KINDS[link.step]
    if not link.multi_use:
        consume(session=session, link=link)
    person = session.get(Contact, link.contact_id)
    assert person is not None and person.id is not None
    kind.record(
        session, link, kind.form.model_validate(data), Actor.contact(person.id, person.name)
    )


def build_session(session: Session, *, late: bool = True) -> SessionWorld:
    clsm, _ = build_clsm(session)
    coordinator = factories.user(session, clsm, Role.COORDINATOR, PASSWORD)
    auditor = factories.user(session, clsm, Role.AUDITOR, PASSWORD)
    other = factories.clsm(session)
    stranger = factories.user(session, other, Role.COORDINATOR, PASSWORD)
    row = open_session(
        session, clsm, title="Immersions 2027 — session 1", capacity=2, flow_run_id="run-dashboard"
    )
    assert row.id is not None
    calls = {m.recipient_email.split("@")[1]: m for m in _mails(session, "immersion_call")}
    for name, mailbox, home in PEOPLE:
        answer(
            session,
            calls[f"{home}.example"].context["link_id"],
            {
                "name": name,
                "email": f"{mailbox}@{home}.example",
                "function": "Infirmier de secteur",
                "manager_name": f"Cheffe {home.upper()}",
                "manager_email": f"cheffe@{home}.example",
                "motivation": "Découvrir les partenaires du territoire",
                "wishes": ["Département"],
            },
        )
    clock.advance(session=session, delta=timedelta(days=11))
    start_selection(session=session, row=row, actor=SYSTEM)
    record_selection(
        session=session, row=row, decisions=selection_proposal(session, row), actor=SYSTEM
    )
    review_as_proposed(session, row)
    for i, placement in enumerate(placements(session, row.id, *ACTIVE_PLACEMENT)):
        host = next(
            m
            for m in _mails(session, "immersion_host_request")
            if m.dedup_key == f"placement-{placement.id}-host-request"
        )
        answer(
            session,
            host.context["link_id"],
            {
                "answer": "accepter",
                "tutor_name": f"Tuteur·rice {i + 1}",
                "tutor_email": f"tuteur{i + 1}@accueil.example",
                "days": immersion_days(row.window_start, 2, i),
                "may_observe": "réunions",
                "may_not_observe": "consultations",
            },
        )
    advance_to(session=session, row=row, to=SessionStatus.AGREEMENTS, actor=SYSTEM)
    ensure_agreements(session=session, row=row, actor=SYSTEM)
    agreements = _mails(session, "immersion_agreement")
    # every signature but the last one (the second placement's tutor)
    for message in agreements[:-1]:
        answer(session, message.context["link_id"], {"agree": True, "confidentiality": True})
    if late:
        clock.advance(
            session=session,
            delta=signature_deadline(row) + timedelta(hours=1) - clock.now(session),
        )
    return SessionWorld(
        session_id=row.id,
        coordinator=coordinator.email,
        auditor=auditor.email,
        other_coordinator=stranger.email,
        clsm_id=clsm.id or 0,
    )


def close_session(session: Session, session_id: int) -> None:
    row = session.get(ImmersionSession, session_id)
    assert row is not None
    advance_to(session=session, row=row, to=SessionStatus.CANCELLED, actor=SYSTEM)
