"""A saisine's run sends its cell meeting's convocations before it waits, not at the next tick.

The convocations are filed under the meeting (its own case), not under the saisine whose
run queued them; the run's immediate send (`flows.mail.send_case_mail`) covers both.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from flows.mail import send_case_mail
from models.core import clock
from models.core.audit import Actor
from models.core.enums import CaseType, Channel
from models.core.outbox import OutboxStatus
from models.saisine.common import escalate_to_level2
from models.saisine.intake import open_saisine
from models.saisine.meetings import cancel_meeting, plan_meeting
from tests.support.saisine import build_cell, intake, outbox
from tests.support.smtp import SmtpServer

COORD = Actor.user(1, "Inès Moreau (coordination)", Channel.PREFECT_UI)


def test_the_saisine_run_sends_the_meeting_mail_it_queued(
    session: Session, smtp_server: SmtpServer
) -> None:
    cell = build_cell(session)
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    escalate_to_level2(session=session, saisine=saisine, actor=COORD, reason="complexe")
    meeting = plan_meeting(
        session=session,
        saisine=saisine,
        starts_at=clock.now(session) + timedelta(days=7),
        host_organisation_id=cell.org_id("CCAS"),
        invited_ids=[cell.org_id("MDPH")],
        actor=COORD,
    )
    session.commit()
    assert saisine.id is not None and meeting.id is not None

    send_case_mail(CaseType.SAISINE, saisine.id)  # as the run does before it suspends
    [convocation] = smtp_server.to("referent@mdph.example")
    assert "METHOD:REQUEST" in convocation.calendar()
    assert len(smtp_server.to("referent@ccas.example")) == 1

    cancel_meeting(session=session, meeting=meeting, reason="quorum non atteint", actor=COORD)
    session.commit()
    send_case_mail(CaseType.SAISINE, saisine.id)
    assert "METHOD:CANCEL" in smtp_server.to("referent@mdph.example")[-1].calendar()
    session.expire_all()
    assert {m.case_type for m in outbox(session)} == {"meeting"}  # not the saisine's
    assert {m.status for m in outbox(session)} == {OutboxStatus.SENT}
