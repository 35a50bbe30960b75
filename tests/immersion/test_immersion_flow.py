"""One whole immersion session through the real stack: Prefect server and worker, the
service's links (FastAPI TestClient), a real SMTP server, the clock moved forward."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.core import clock, db
from models.core.audit import case_events, verify_case
from models.core.outbox import OutboxMessage, OutboxStatus
from models.immersion.common import get_session, session_by_run
from models.immersion.meetings import immersion_end
from models.immersion.report import report_participants_csv, session_report
from models.immersion.selection import selection_proposal
from models.immersion.states import SessionStatus
from models.immersion.tables import Placement
from notifications.mime import ascii_address
from notifications.send import drain
from tests.support.immersion import (
    advance_clock,
    answer_as_shown,
    build_clsm,
    choices,
    immersion_days,
    launch_parameters,
    outbox,
    session_dates,
    session_status,
    settle,
)
from tests.support.prefect_stack import PrefectStack, form_schema, run, run_env
from tests.support.smtp import ReceivedMail, SmtpServer

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]

NAMES = ["CCAS", "CHL", "Département", "DAC", "UDAF"]
LINK = re.compile(r"https?://[^\s)\"<>]+/r/([A-Za-z0-9_-]+)")


@pytest.fixture
def client(db_url: str, smtp_server: SmtpServer) -> Iterator[TestClient]:
    from service.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


class Mailbox:
    """What the SMTP server received, matched to the outbox rows by Message-ID."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def deliver(self) -> None:
        while (await drain()).processed:
            pass

    def received(self, message: OutboxMessage) -> ReceivedMail:
        (mail,) = [m for m in self.server.messages if m.message_id == message.message_id]
        # an internationalised domain (Département) travels in its IDNA form
        assert mail.recipients == [ascii_address(message.recipient_email)]
        return mail

    def token(self, message: OutboxMessage) -> str:
        found = LINK.search(self.received(message).text())
        assert found, f"no link in {message.template}"
        return found.group(1)


def post(client: TestClient, token: str, data: dict[str, Any]) -> str:
    page = client.post(f"/r/{token}", data=data)
    assert page.status_code == 200, page.text[:2000]
    return page.text


async def test_a_whole_session_through_links_forms_and_mail(
    prefect_stack: PrefectStack, db_url: str, smtp_server: SmtpServer, client: TestClient
) -> None:
    mailbox = Mailbox(smtp_server)
    with db.session_scope() as session:
        clsm, _orgs = build_clsm(session)
        dates = session_dates(clock.now(session))
        slug = clsm.slug
    parameters = launch_parameters(
        slug,
        dates,
        title="Immersions 2022 — session 2",
        structures=["CCAS, CHL", "Département", "DAC", "UDAF"],
        capacity=16,
        host_capacity=6,
        preparation_place=dates["preparation_place"],
        facilitator_name="CODES 34",
        facilitator_email="animation@codes.example",
        restitution_place=dates["restitution_place"],
    )
    run_id = await run("immersion-session/immersion-session", parameters, run_env(db_url))
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.CALL_OPEN
    calls = {m.recipient_email: m for m in outbox("immersion_call")}
    assert sorted(calls) == sorted(f"referent@{n.lower()}.example" for n in NAMES)

    # 20 applicants, 4 per structure, through the call's multi-use link of their structure
    for n in range(1, 21):
        home = NAMES[(n - 1) % 5].lower()
        token = mailbox.token(calls[f"referent@{home}.example"])
        assert "Candidater" in client.get(f"/r/{token}").text
        done = post(
            client,
            token,
            {
                "name": f"Candidat {n}",
                "email": f"candidat{n}@{home}.example",
                "function": "Travailleur social",
                "manager_name": f"Cheffe {home}",
                "manager_email": f"cheffe@{home}.example",
                "motivation": "Mieux connaître les partenaires",
                "wishes": f"{NAMES[n % 5]}\n{NAMES[(n + 1) % 5]}",
                "availability": "mardis et jeudis",
            },
        )
        assert f"candidature n°{n}" in done
    await mailbox.deliver()
    confirmations = {m.context["number"]: m for m in outbox("immersion_application_received")}
    assert len(confirmations) == 20

    # the call closes: the coordinator approves the prefilled proposal in the Prefect UI form
    advance_clock(dates["call_closes_at"])
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.SELECTION
    with db.session_scope() as session:
        row = session_by_run(session, str(run_id))
        assert row is not None and row.id is not None
        row_id = row.id
        proposal = selection_proposal(session, row)
    kept = [d.number for d in proposal if d.outcome.value == "selected"]
    waiting = sorted(
        (d for d in proposal if d.outcome.value == "waitlisted"), key=lambda d: d.waitlist_rank or 0
    )
    assert len(kept) == 16 and len(waiting) == 4
    schema = await answer_as_shown(run_id)  # the proposal, submitted as prefilled
    assert schema["properties"]["kept"]["title"] == "Candidatures retenues"
    assert len(choices(schema, "kept")) == 20  # every application, by its label
    shown = schema["properties"]["kept"]["default"]
    assert [int(label.split()[1]) for label in shown] == kept
    assert shown[0] == f"n° {kept[0]} — Candidat {kept[0]} ({NAMES[(kept[0] - 1) % 5]})"
    waitlist = schema["properties"]["waitlist"]["default"]
    assert [int(label.split()[1]) for label in waitlist] == [d.number for d in waiting]
    assert set(schema["required"]) == {"kept", "waitlist", "pairs"}  # no "(Optional)"
    assert schema["properties"]["pairs"]["default"] == []  # nobody wishes each other's structure
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.PLACEMENT
    assert len(outbox("immersion_selected")) == 16
    assert len(outbox("immersion_waitlisted")) == 4

    # the coordinator validates the proposed hosts: only then do the host requests go out
    assert not outbox("immersion_host_request")
    schema = await answer_as_shown(run_id)
    assert schema["properties"]["placements"]["title"] == "Accueils"
    assert len(schema["properties"]["placements"]["default"]) == 16
    assert await settle(run_id) == "PAUSED"
    assert len(outbox("immersion_host_request")) == 16

    # a participant withdraws by their personal link: the 1st of the waiting list is offered
    first = kept[0]
    post(
        client,
        mailbox.token(confirmations[first]),
        {"action": "retirer", "reason": "arrêt maladie"},
    )
    await mailbox.deliver()
    (offer,) = outbox("immersion_offer")
    assert offer.context["number"] == waiting[0].number
    assert "place est confirmée" in post(
        client, mailbox.token(offer), {"answer": "j'accepte la place"}
    )
    await mailbox.deliver()

    # every host confirms by link: tutor, days inside the window, observation frame
    window_start = dates["window_start"]
    requests = [m for m in outbox("immersion_host_request")]
    assert len(requests) == 17  # 16 kept + the promoted one (the withdrawn's was cancelled)
    for i, request in enumerate(requests):
        placement_id = int(request.dedup_key.split("-")[1])
        with db.session_scope() as session:
            placement = session.get(Placement, placement_id)
            assert placement is not None
            if placement.status.value == "cancelled":
                continue  # the accueil of the participant who withdrew
        post(
            client,
            mailbox.token(request),
            {
                "answer": "accepter",
                "tutor_name": f"Tuteur {i}",
                "tutor_email": f"tuteur{i}@accueil.example",
                "capacity": "6",
                "days": "\n".join(d.isoformat() for d in immersion_days(window_start, 3, i % 10)),
                "may_observe": "réunions d'équipe, entretiens d'accueil",
                "may_not_observe": "consultations médicales",
            },
        )
    await mailbox.deliver()
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.AGREEMENTS
    agreements = outbox("immersion_agreement")
    assert len(agreements) == 48  # participant, home manager, host tutor × 16
    for message in agreements:
        post(client, mailbox.token(message), {"agree": "on", "confidentiality": "on"})
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.PREPARATION
    invitations = outbox("immersion_preparation")
    assert "animation@codes.example" in {m.recipient_email for m in invitations}
    withdrawn = f"candidat{first}@{NAMES[(first - 1) % 5].lower()}.example"
    (goodbye,) = [m for m in outbox("immersion_withdrawal") if m.recipient_email == withdrawn]
    assert withdrawn in {m.recipient_email for m in invitations}  # invited before withdrawing
    assert "METHOD:CANCEL" in mailbox.received(goodbye).calendar()
    assert len(invitations) == 18  # 17 participants over time + the facilitator

    # the preparation day passes; the coordinator records who came
    advance_clock(dates["preparation_end"])
    assert await settle(run_id) == "PAUSED"
    schema = await form_schema(run_id)
    everyone = schema["properties"]["present"]["default"]
    assert len(everyone) == 16 and choices(schema, "present") == everyone
    assert schema["properties"]["withdrawn"]["default"] == []
    await answer_as_shown(run_id, present=everyone[:-1])
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.IMMERSION
    days = outbox("immersion_days")
    assert len(days) == 32  # participant and tutor of each signed agreement
    assert all("METHOD:REQUEST" in mailbox.received(m).calendar() for m in days)

    # the immersions happen; reminders went out before; evaluations are asked by link
    with db.session_scope() as session:
        end = immersion_end(session, get_session(session, row_id))
    advance_clock(end)
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.EVALUATION
    assert len(outbox("immersion_day_reminder")) == 32
    for message in outbox("immersion_evaluation"):
        post(
            client,
            mailbox.token(message),
            {"missions": "accueil", "practices": "entretiens", "limits": "secret", "rating": "5"},
        )
    for message in outbox("immersion_host_evaluation"):
        post(client, mailbox.token(message), {"rating": "4", "useful": "regards croisés"})
    assert await settle(run_id) == "PAUSED"
    assert session_status(run_id) is SessionStatus.RESTITUTION

    advance_clock(dates["restitution_end"])
    assert await settle(run_id) == "PAUSED"
    schema = await answer_as_shown(run_id)  # everyone came to the restitution
    assert "withdrawn" not in schema["properties"]  # withdrawals only at the preparation day
    assert await settle(run_id) == "COMPLETED"
    assert session_status(run_id) is SessionStatus.CLOSED

    with db.session_scope() as session:
        report = session_report(session, row_id)
        assert verify_case(session, "session", row_id) is None
        events = Counter(e.action for e in case_events(session, "session", row_id))
        csv_text = report_participants_csv(report)
    f = report.figures
    assert (f.applications, f.kept, f.promoted, f.waitlisted) == (20, 16, 1, 4)
    assert f.withdrawals == [(f"Candidat {first}", "arrêt maladie")]
    assert (f.immersions_done, f.days_total) == (16, 48)
    assert (f.preparation_present, f.restitution_present) == (15, 16)
    assert (f.participant_rating, f.host_rating) == (5.0, 4.0)
    assert events["report.created"] == 1
    assert sum(s.hosted for s in f.structures) == 16
    assert "arrêt maladie" in csv_text

    # every queued mail was sent once, to its recipient (and only to them)
    await mailbox.deliver()
    rows = outbox()
    assert {m.status for m in rows} == {OutboxStatus.SENT}
    for message in rows:
        mailbox.received(message)
    assert len(smtp_server.messages) == len(rows)
    assert Counter(m.message_id for m in smtp_server.messages).most_common(1)[0][1] == 1
