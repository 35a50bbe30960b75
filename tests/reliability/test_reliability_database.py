"""A failing commit in the middle of a step leaves nothing half-written."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from models.core import db
from models.core.audit import Actor, AuditEvent, record_event
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.links import StepLink, issue_link
from models.core.outbox import OutboxMessage, Recipient, enqueue
from models.core.people import Contact, Organisation
from tests import factories
from tests.support.figures import record, scale

pytestmark = pytest.mark.reliability


def _step(session: Session, contact: Contact, case_id: int) -> None:
    """What a step does: a link, a mail, an audit event, all in one transaction."""
    assert contact.id is not None
    link = issue_link(
        session=session,
        contact_id=contact.id,
        case_type=CaseType.SAISINE,
        case_id=case_id,
        step="consultation",
    )
    organisation = session.get(Organisation, contact.organisation_id)
    assert organisation is not None
    enqueue(
        session=session,
        scope=CaseScope(CaseType.SAISINE, case_id, organisation.clsm_id, "Saisine de test"),
        to=Recipient(contact.email, contact.name, contact.id),
        template="saisine_consultation",
        context={"link_id": link.id},
        dedup_key=f"consultation-{contact.id}",
    )
    record_event(
        session=session,
        case_type=CaseType.SAISINE,
        case_id=case_id,
        action="consultation.asked",
        actor=Actor.system(),
        payload={"contact_id": contact.id},
    )


def test_failing_commit_leaves_no_link_no_mail_no_event(any_db_url: str) -> None:
    with db.session_scope() as session:
        owner = factories.clsm(session)
        contact = factories.contact(session, factories.organisation(session, owner))
    attempts = scale(50, 5)
    failures = 0
    for case_id in range(1, attempts + 1):

        def fail(_session: Session) -> None:
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

        with pytest.raises(OperationalError), db.session_scope() as session:
            event.listen(session, "before_commit", fail)
            _step(session, contact, case_id)
        failures += 1
    with Session(db.get_engine()) as session:
        left = {
            "events": len(session.exec(select(AuditEvent)).all()),
            "mails": len(session.exec(select(OutboxMessage)).all()),
            "links": len(session.exec(select(StepLink)).all()),
        }
    record(
        "database_commit_failure", dialect=any_db_url.split(":")[0], failed_commits=failures, **left
    )
    assert left == {"events": 0, "mails": 0, "links": 0}
    # the same step succeeds afterwards, exactly once
    with db.session_scope() as session:
        _step(session, contact, 1)
    with Session(db.get_engine()) as session:
        assert len(session.exec(select(OutboxMessage)).all()) == 1
