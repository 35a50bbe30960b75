"""Test-only step and case kinds, a world of users and links, and a real uvicorn service.

The service is generic: these kinds stand for the domain processes. A test case is opened
by an audit event `test.case-opened` (its payload names the CLSM), so every process sees
the same cases without a table of its own. The step `test-probe` records `probe.ready`,
which is what the `probe-until` flow of tests/support/probes.py waits for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from models.catalogue import CASE_KINDS, STEP_KINDS
from models.core.audit import Actor, AuditEvent, case_events, record_event
from models.core.enums import CaseType, Role
from models.core.kinds import CaseKind, CaseSummary, StepKind, StepPage
from models.core.links import StepLink, issue_link, link_token
from models.core.people import Clsm, Contact, MailAddress, User
from tests import factories
from tests.support.env import ROOT, free_port

PASSWORD = "mot-de-passe-de-test"
STEP = "test-probe"
WAIT_STEP = "probe-until"  # the wait of tests/support/probes.py:probe_until


class ProbeAnswer(BaseModel):
    """Every kind of input the generic form knows."""

    places: int = Field(title="Nombre de places", description="Entre 0 et 20.", ge=0, le=20)
    choice: Literal["oui", "non", "peut-être"] = Field(title="Participation")
    available: bool = Field(default=False, title="Je confirme ma disponibilité")
    start: date | None = Field(default=None, title="Premier jour possible")
    meeting: datetime | None = Field(default=None, title="Rendez-vous proposé")
    email: MailAddress | None = Field(default=None, title="Adresse de la personne référente")
    names: list[str] = Field(default_factory=list, title="Professionnels présents")
    comment: str = Field(
        default="", title="Commentaire", description="Facultatif.", max_length=2000
    )


def _page(session: Session, link: StepLink) -> StepPage:
    return StepPage(
        title="Étape de test",
        case_label=f"Dossier de test n°{link.case_id}",
        paragraphs=["Merci d'indiquer vos disponibilités."],
        details=[("Étape", link.step)],
    )


def _record(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
    assert isinstance(answer, ProbeAnswer)
    record_event(
        session=session,
        case_type=CaseType(link.case_type),
        case_id=link.case_id,
        action="probe.ready",
        actor=actor,
        payload={"link_id": link.id, **answer.model_dump(mode="json")},
    )
    return f"Merci, votre réponse ({answer.places} place(s)) est enregistrée."


PROBE_STEP = StepKind(
    name=STEP,
    form=ProbeAnswer,
    page=_page,
    record=_record,
    wait_step=lambda _s, _l: WAIT_STEP,
    initial=lambda _s, _l: {"places": 2},
    submit_label="Envoyer ma réponse",
)


def _summary_of(event: AuditEvent) -> CaseSummary:
    payload = event.payload or {}
    return CaseSummary(
        case_type=CaseType(event.case_type),
        case_id=event.case_id,
        reference=str(payload["reference"]),
        status="en cours",
        clsm_id=int(payload["clsm_id"]),
        opened_at=event.at,
        flow_run_id=payload.get("flow_run_id"),
    )


def _opened(session: Session) -> list[AuditEvent]:
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "test.case-opened")
            .order_by(col(AuditEvent.id))
        )
    )


TEST_CASES = CaseKind(
    case_type=CaseType.SESSION,
    label="dossier de test",
    summaries=lambda s, clsm_id: [
        _summary_of(e) for e in _opened(s) if (e.payload or {}).get("clsm_id") == clsm_id
    ],
    summary=lambda s, case_id: next(
        (_summary_of(e) for e in _opened(s) if e.case_id == case_id), None
    ),
)


def register_kinds(monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """Register the test kinds: undone after the test when given its monkeypatch (the
    real SESSION kind must come back), for good in a process of its own."""
    if monkeypatch is None:
        STEP_KINDS[STEP] = PROBE_STEP
        CASE_KINDS[CaseType.SESSION] = TEST_CASES
        return
    monkeypatch.setitem(STEP_KINDS, STEP, PROBE_STEP)
    monkeypatch.setitem(CASE_KINDS, CaseType.SESSION, TEST_CASES)


def open_case(session: Session, case_id: int, owner: Clsm, flow_run_id: str = "") -> None:
    record_event(
        session=session,
        case_type=CaseType.SESSION,
        case_id=case_id,
        action="test.case-opened",
        actor=Actor.system(),
        payload={
            "reference": f"Dossier de test n°{case_id}",
            "clsm_id": owner.id,
            **({"flow_run_id": flow_run_id} if flow_run_id else {}),
        },
    )


@dataclass
class World:
    clsm_a: Clsm
    clsm_b: Clsm
    contact: Contact
    coordinator: User
    auditor: User
    coordinator_b: User
    admin: User
    case_a: int
    case_b: int


def build_world(session: Session) -> World:
    """Two CLSMs with a case each, a partner contact of A, one account per role."""
    clsm_a = factories.clsm(session, name="CLSM A")
    clsm_b = factories.clsm(session, name="CLSM B")
    organisation = factories.organisation(session, clsm_a, "Structure partenaire")
    contact = factories.contact(session, organisation, "Camille Partenaire")
    world = World(
        clsm_a=clsm_a,
        clsm_b=clsm_b,
        contact=contact,
        coordinator=factories.user(session, clsm_a, Role.COORDINATOR, PASSWORD),
        auditor=factories.user(session, clsm_a, Role.AUDITOR, PASSWORD),
        coordinator_b=factories.user(session, clsm_b, Role.COORDINATOR, PASSWORD),
        admin=factories.user(session, None, Role.ADMIN, PASSWORD),
        case_a=101,
        case_b=202,
    )
    open_case(session, world.case_a, clsm_a)
    open_case(session, world.case_b, clsm_b)
    return world


def new_link(session: Session, world: World, case_id: int | None = None, **extra: Any) -> str:
    """Issue a probe link to the world's contact; returns its token."""
    assert world.contact.id is not None
    link = issue_link(
        session=session,
        contact_id=world.contact.id,
        case_type=CaseType.SESSION,
        case_id=case_id or world.case_a,
        step=STEP,
        **extra,
    )
    return link_token(link)


def actions(session: Session, case_id: int) -> list[str]:
    return [e.action for e in case_events(session, CaseType.SESSION.value, case_id)]


VALID_ANSWER = {"places": "3", "choice": "oui", "available": "1", "comment": "Volontiers"}

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login_data(client: Any, email: str, password: str) -> dict[str, str]:
    """The login form as a browser sends it: opened first (its CSRF cookie and field)."""
    return {"email": email, "password": password, "csrf_token": csrf_of(client.get("/login").text)}


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


class ServiceProcess:
    """The service under uvicorn in its own process, with the test kinds registered."""

    def __init__(
        self, db_url: str, factory: str = "tests.support.service_app:create_test_app", **env: str
    ) -> None:
        self.factory = factory  # "service.main:create_app": the real kinds only
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CLSM_DATABASE_URL": db_url,
            "CLSM_BASE_URL": self.url,
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcess:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                self.factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        deadline = time.monotonic() + float(os.environ.get("TEST_SERVICE_START_SECONDS", "240"))
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("the service exited at start")
            time.sleep(0.2)
        self.process.kill()
        self.process.wait()
        raise TimeoutError("the service did not start")

    def __exit__(self, *_: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


def running_service(db_url: str, **env: str) -> Iterator[ServiceProcess]:
    with ServiceProcess(db_url, **env) as service:
        yield service
