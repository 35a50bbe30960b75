"""From an empty installation, through the interfaces only: an admin creates the Bocage
Bressuirais CLSM and imports its network from the coordinator's .xlsx (`clsm` commands), then
an immersion session runs on it to its end: launched as a deployment of the Prefect server,
its coordinator's forms answered as proposed, its partners answering through the links they
receive on a real SMTP server, the clock moved forward; its report read on the service's
page by the CLSM's coordinator. The database is only read, to assert."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.core import db
from models.core.audit import verify_all
from models.core.outbox import OutboxMessage, OutboxStatus
from models.core.people import Organisation
from models.immersion.common import session_by_run
from models.immersion.meetings import immersion_end
from models.immersion.report import session_report
from models.immersion.states import SessionStatus
from models.immersion.tables import Placement
from notifications.send import drain
from service.cli import app
from tests.saisine.test_saisine_end_to_end import START, _advance_to
from tests.support.adoption import CONTACTS, SLUG, as_proposed, set_up_bocage
from tests.support.immersion import (
    advance_clock,
    immersion_days,
    launch_parameters,
    resume_form,
    session_dates,
    session_status,
    settle,
)
from tests.support.prefect_stack import PrefectStack, form_schema, run, run_env
from tests.support.service_kit import login_data
from tests.support.smtp import SmtpServer

# a resumed run starts a new process: on a loaded machine, minutes
STARTUP = 600
pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]

LINK = re.compile(r"https?://[^\s)\"<>]+(/r/[A-Za-z0-9_-]+)")
CONTACT = {structure: email for structure, _name, email in CONTACTS}
CHNDS, CCAS, UDAF = (CONTACT[s] for s, *_ in CONTACTS[:3])
FACILITATOR = "animation@ireps-na.example"
COORDINATOR, PASSWORD = "claire.menard@bocage.example", "bocage-bressuirais-2026"
# three applicants for two places, each through the call link of their own structure
APPLICANTS = [
    (CHNDS, "Sophie Morin", "sophie.morin@chnds.example", "Infirmière", "CCAS Bressuire"),
    (CCAS, "Julien Martin", "julien.martin@ccas-bressuire.example", "Travailleur social", "CHNDS"),
    (UDAF, "Chloé Petit", "chloe.petit@udaf79.example", "Mandataire", "CHNDS\nCCAS Bressuire"),
]  # fmt: skip


class Inbox:
    """The mails the SMTP server received, each with the outbox template it was sent from."""

    def __init__(self, server: SmtpServer, client: TestClient) -> None:
        self.server = server
        self.client = client

    async def deliver(self) -> None:
        while (await drain()).processed:
            pass

    async def mails(self, template: str) -> list[tuple[str, str]]:
        """(recipient, link path) of every mail of `template` received so far."""
        await self.deliver()
        with Session(db.get_engine()) as session:
            sent = {m.message_id: m.template for m in session.exec(select(OutboxMessage))}
        found = []
        for mail in self.server.messages:
            if sent.get(mail.message_id) == template:
                (recipient,) = mail.recipients
                link = LINK.search(mail.text())
                found.append((recipient, link.group(1) if link else ""))
        return found

    async def to(self, template: str) -> list[str]:
        return sorted(recipient for recipient, _link in await self.mails(template))

    def answer(self, path: str, values: dict[str, Any]) -> str:
        """Open the mailed link, then submit its form as a person would."""
        assert path, "the mail carries its link"
        assert self.client.get(path).status_code == 200
        done = self.client.post(path, data=values)
        assert done.status_code == 200, done.text[:2000]
        return done.text


@pytest.fixture
def inbox(db_url: str, smtp_server: SmtpServer) -> Iterator[Inbox]:
    from service.main import create_app

    with TestClient(create_app()) as client:
        yield Inbox(smtp_server, client)


async def _as_proposed(run_id: Any) -> None:
    """The coordinator opens the run's form in the Prefect UI and validates it as prefilled."""
    await resume_form(run_id, as_proposed(await form_schema(run_id)))


def _host_of(session: Session, placement: Placement) -> tuple[str, str]:
    host = session.get(Organisation, placement.host_organisation_id)
    assert host is not None
    return host.short_name, host.name


async def test_a_new_clsm_set_up_from_its_spreadsheet_carries_an_immersion_session_to_its_end(
    prefect_stack: PrefectStack, db_url: str, inbox: Inbox, tmp_path: Path
) -> None:
    _advance_to(START)
    set_up_bocage(tmp_path)
    cli = CliRunner()
    account = cli.invoke(
        app,
        [
            "users", "add", "--email", COORDINATOR, "--name", "Claire Ménard",
            "--role", "coordinator", "--clsm", SLUG, "--password", PASSWORD,
        ],
    )  # fmt: skip
    assert account.exit_code == 0, account.output

    # the coordinator launches the session from the deployment, inviting three structures
    dates = session_dates(START)
    parameters = launch_parameters(
        SLUG,
        dates,
        title="Immersions 2026 — Bocage",
        structures=["CHNDS", "CCAS Bressuire", "Udaf 79"],
        capacity=2,
        max_days=2,
        preparation_place="Maison de l'agglomération, Bressuire",
        facilitator_name="Ireps Nouvelle-Aquitaine",
        facilitator_email=FACILITATOR,
        restitution_place="CCAS de Bressuire",
    )
    run_id = await run("immersion-session/immersion-session", parameters, run_env(db_url))
    assert await settle(run_id, STARTUP) == "PAUSED"
    assert session_status(run_id) is SessionStatus.CALL_OPEN
    calls = dict(await inbox.mails("immersion_call"))
    assert sorted(calls) == sorted([CHNDS, CCAS, UDAF])  # not the uninvited housing provider

    for structure, name, email, function, wishes in APPLICANTS:
        home = email.split("@")[1]
        done = inbox.answer(
            calls[structure],
            {
                "name": name,
                "email": email,
                "function": function,
                "manager_name": f"Cadre de {name}",
                "manager_email": f"cadre@{home}",
                "motivation": "Connaître les partenaires du territoire",
                "wishes": wishes,
                "availability": "lundis et mardis",
            },
        )
        assert "candidature n°" in done
    applicants = sorted(email for _s, _n, email, _f, _w in APPLICANTS)
    assert await inbox.to("immersion_application_received") == applicants

    # the call closes; the coordinator approves the proposed selection as it comes
    advance_clock(dates["call_closes_at"])
    assert await settle(run_id, STARTUP) == "PAUSED"
    assert session_status(run_id) is SessionStatus.SELECTION
    # Sophie (CHNDS → CCAS) and Julien (CCAS → CHNDS) wish each other's structure: the form
    # proposes them as a binôme, which the coordinator accepts with the rest
    pairs = (await form_schema(run_id))["properties"]["pairs"]
    assert pairs["title"] == "Binômes"
    assert [
        (p["first"].split(" — ")[1], p["second"].split(" — ")[1]) for p in pairs["default"]
    ] == [("Sophie Morin (CHNDS)", "Julien Martin (CCAS Bressuire)")]
    assert len(pairs["items"]["properties"]["second"]["enum"]) == 3  # a select of applications
    await _as_proposed(run_id)
    assert await settle(run_id, STARTUP) == "PAUSED"
    assert session_status(run_id) is SessionStatus.PLACEMENT
    kept = await inbox.to("immersion_selected")
    waiting = await inbox.to("immersion_waitlisted")
    assert len(kept) == 2 and len(waiting) == 1 and sorted(kept + waiting) == applicants

    # the coordinator validates the proposed hosts (the binôme, each at the other's)
    hosts = (await form_schema(run_id))["properties"]["placements"]["default"]
    assert sorted(line["host"] for line in hosts) == ["CCAS Bressuire", "CHNDS"]
    await _as_proposed(run_id)
    assert await settle(run_id, STARTUP) == "PAUSED"

    # each host structure's immersion contact confirms by the link: tutor, days, frame
    requests = await inbox.mails("immersion_host_request")
    assert len(requests) == 2
    with Session(db.get_engine()) as session:
        hosts = [_host_of(session, p) for p in session.exec(select(Placement))]
    # to the wished structures' contacts of the directory
    assert sorted(r for r, _l in requests) == sorted(CONTACT[name] for _sigle, name in hosts)
    short = {CONTACT[name]: sigle for sigle, name in hosts}
    tutors = []
    for i, (recipient, path) in enumerate(requests):
        tutor = f"tutorat.{i}@{recipient.split('@')[1]}"
        tutors.append(tutor)
        inbox.answer(
            path,
            {
                "answer": "accepter",
                "tutor_name": f"Tuteur {short[recipient]}",
                "tutor_email": tutor,
                "capacity": "2",
                "days": "\n".join(
                    d.isoformat() for d in immersion_days(dates["window_start"], 2, i)
                ),
                "may_observe": "réunions d'équipe, entretiens d'accueil",
                "may_not_observe": "consultations médicales",
            },
        )
    assert await settle(run_id, STARTUP) == "PAUSED"
    assert session_status(run_id) is SessionStatus.AGREEMENTS

    # the three signatures of each agreement: participant, home manager, host tutor
    agreements = await inbox.mails("immersion_agreement")
    managers = [f"cadre@{email.split('@')[1]}" for email in kept]
    assert sorted(r for r, _l in agreements) == sorted([*kept, *managers, *tutors])
    for _recipient, path in agreements:
        inbox.answer(path, {"agree": "on", "confidentiality": "on"})
    assert await settle(run_id, STARTUP) == "PAUSED"
    assert session_status(run_id) is SessionStatus.PREPARATION
    assert await inbox.to("immersion_preparation") == sorted([*kept, FACILITATOR])

    # the preparation day passes; the coordinator validates the presences as proposed
    advance_clock(dates["preparation_end"])
    assert await settle(run_id, STARTUP) == "PAUSED"
    await _as_proposed(run_id)
    assert await settle(run_id, STARTUP) == "PAUSED"
    assert session_status(run_id) is SessionStatus.IMMERSION
    assert await inbox.to("immersion_days") == sorted([*kept, *tutors])

    # the immersion days go by; participants and tutors evaluate by their links
    with Session(db.get_engine()) as session:
        row = session_by_run(session, str(run_id))
        assert row is not None and row.id is not None
        row_id = row.id
        end = immersion_end(session, row)
    advance_clock(end)
    assert await settle(run_id, STARTUP) == "PAUSED"
    assert session_status(run_id) is SessionStatus.EVALUATION
    assert await inbox.to("immersion_day_reminder") == sorted([*kept, *tutors])
    evaluations = await inbox.mails("immersion_evaluation")
    assert sorted(r for r, _l in evaluations) == kept
    for _recipient, path in evaluations:
        inbox.answer(
            path,
            {"missions": "accueil", "practices": "entretiens", "limits": "secret", "rating": "5"},
        )
    host_evaluations = await inbox.mails("immersion_host_evaluation")
    assert sorted(r for r, _l in host_evaluations) == sorted(tutors)
    for _recipient, path in host_evaluations:
        inbox.answer(path, {"rating": "4", "useful": "regards croisés"})
    assert await settle(run_id, STARTUP) == "PAUSED"
    assert session_status(run_id) is SessionStatus.RESTITUTION

    # the restitution; the coordinator validates the presences as proposed; the report
    advance_clock(dates["restitution_end"])
    assert await settle(run_id, STARTUP) == "PAUSED"
    await _as_proposed(run_id)
    assert await settle(run_id, STARTUP) == "COMPLETED"
    assert session_status(run_id) is SessionStatus.CLOSED

    with Session(db.get_engine()) as session:
        figures = session_report(session, row_id).figures
        assert verify_all(session).ok
    assert (figures.applications, figures.kept, figures.promoted) == (3, 2, 0)
    assert (figures.waitlisted, figures.withdrawals) == (1, [])
    assert (figures.immersions_done, figures.days_total) == (2, 4)
    assert (figures.preparation_present, figures.restitution_present) == (2, 2)
    assert (figures.participant_rating, figures.host_rating) == (5.0, 4.0)
    hosted = {s.structure: s.hosted for s in figures.structures if s.hosted}
    assert sum(hosted.values()) == 2

    # the CLSM's coordinator reads the report on the service's page
    client = inbox.client
    login = client.post(
        "/login", data=login_data(client, COORDINATOR, PASSWORD), follow_redirects=False
    )
    assert login.status_code == 303
    page = client.get(f"/cases/session/{row_id}/report")
    assert page.status_code == 200
    for shown in (
        "Candidatures reçues : <strong>3</strong>",
        "Retenues à la sélection : <strong>2</strong>",
        "Sur liste d'attente à la clôture de l'appel : 1",
        "Promues depuis la liste d'attente : 0",
        "Immersions réalisées : <strong>2</strong>",
        "Jours d'immersion réalisés : 4",
        "Présents à la journée de préparation : 2 ; à la restitution : 2",
        "Binômes (accueils réciproques) : 1",
        "<li>Sophie Morin (CHNDS) et Julien Martin (CCAS Bressuire)</li>",
    ):
        assert shown in page.text, page.text

    # every queued mail was sent once, to its recipient's inbox only
    await inbox.deliver()
    with Session(db.get_engine()) as session:
        rows = list(session.exec(select(OutboxMessage)))
    assert {m.status for m in rows} == {OutboxStatus.SENT}
    received = {m.message_id: m.recipients for m in inbox.server.messages}
    assert len(inbox.server.messages) == len(rows) == len(received)
    for message in rows:
        assert received[message.message_id] == [message.recipient_email], message.template
    assert Counter(m.template for m in rows)["immersion_agreement"] == 6

    # the directory after a session (participants, managers and tutors filed with their
    # structures) goes out and comes back unchanged
    exported = tmp_path / "annuaire-export.xlsx"
    out = cli.invoke(app, ["directory", "export", "--clsm", SLUG, "-o", str(exported)])
    assert out.exit_code == 0, out.output
    again = cli.invoke(app, ["directory", "import", str(exported), "--clsm", SLUG, "--dry-run"])
    assert again.exit_code == 0, again.output
    assert "0 création(s), 0 mise(s) à jour," in again.output, again.output
