"""Key scenarios on the production topology (tests/production/conftest.py): the app
database and Prefect's on PostgreSQL, two workers with their own working directories, two
service processes, an SMTP relay with STARTTLS and authentication.

A saisine is carried end to end, its partners answering through both service processes
while the Prefect server is down under its suspended run; a run's machine (worker and run
process) is lost mid-step and the other machine's worker finishes it; the two service
processes share sessions and the login limit; a backup holds both databases.
"""

from __future__ import annotations

import asyncio
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psutil
import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from models.core import db
from models.core.audit import case_events, verify_all
from models.core.enums import Role
from models.core.outbox import OutboxMessage, OutboxStatus
from models.core.settings import get_settings
from models.core.waits import Wait
from models.saisine.states import SaisineStatus
from service.security import SESSION_COOKIE
from tests import factories
from tests.mail.test_mail_at_once import PARTNERS, REFERRER, _inbox, _link
from tests.production.conftest import MACHINES, SMTP_LOGIN, Services, Topology, mail_env
from tests.reliability.test_reliability_machine_lost import _first_heartbeat
from tests.saisine.test_saisine_flow import (
    describe_as_the_coordinator,
    intake_parameters,
    resume_form,
    the_saisine,
)
from tests.support.figures import record
from tests.support.postgres import _pg_bin
from tests.support.prefect_stack import run, run_env, state_of, wait_for_state
from tests.support.saisine import build_cell
from tests.support.service_kit import csrf_of
from tests.support.smtp import ReceivedMail, SmtpServer

PASSWORD = "Une phrase de passe assez longue"

# a loaded 2-core machine may take a minute to start a run's process: generous bounds
SLOW = 300.0


async def _moved_on(run_id: UUID, before: Any) -> Any:
    """The run left the state `before` and is suspended again."""
    deadline = time.monotonic() + SLOW
    while (await state_of(run_id)).id == before.id:
        assert time.monotonic() < deadline, f"run {run_id} stayed in {before.name}"
        await asyncio.sleep(0.5)
    return await wait_for_state(run_id, "PAUSED", timeout=SLOW)


pytestmark = [
    pytest.mark.production,
    pytest.mark.prefect,
    pytest.mark.postgres,
    pytest.mark.asyncio(loop_scope="session"),
]


def _prefect_rows(topology: Topology, table: str) -> int:
    """Rows of one table of Prefect's own database (it is PostgreSQL, not a SQLite file)."""
    url = make_url(topology.prefect_database_url)
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database
    ) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


async def _answered_while_down(
    services: Services, consultations: list[ReceivedMail]
) -> list[tuple[int, str]]:
    """Each partner answers through another service process while Prefect is stopped; the
    pages confirm, the answers are stored and their resumes wait for the heartbeat."""
    async with httpx.AsyncClient(timeout=60) as client:
        for url, mail in zip(services.urls, consultations, strict=True):
            form = await client.get(url + _link(mail))
            assert form.status_code == 200, form.text
            done = await client.post(
                url + _link(mail), data={"knows_situation": "oui", "proposal": "Visite conjointe"}
            )
            assert done.status_code == 200, done.text
            assert "Traceback" not in done.text
    deadline = time.monotonic() + 60
    while True:  # the service tried at once (after its answer): Prefect did not answer
        with Session(db.get_engine()) as session:
            waits = list(session.exec(select(Wait).where(col(Wait.resume_pending).is_(True))))
        if waits and all(w.last_error for w in waits):
            return [(w.id or 0, w.last_error) for w in waits]
        assert time.monotonic() < deadline, [(w.id, w.last_error) for w in waits]
        await asyncio.sleep(0.5)


async def test_a_saisine_end_to_end_answered_while_prefect_is_down(
    topology: Topology, pg_url: str, smtp_server: SmtpServer, services: Services
) -> None:
    """Both databases on PostgreSQL, mail through STARTTLS with a login, two service
    processes: the partners answer while the Prefect server is stopped (its suspended run
    waits in its database); after the restart, the heartbeat's pass resumes the run, which
    goes on, and the next step's mails reach the relay."""
    from flows.tick import heartbeat

    assert pg_url.startswith("postgresql")
    with db.session_scope() as session:
        build_cell(session)
    env = run_env(pg_url, **mail_env(smtp_server))
    run_id = await run("saisine/saisine", intake_parameters(), env)
    await describe_as_the_coordinator(run_id)
    await wait_for_state(run_id, "PAUSED", timeout=SLOW)
    await resume_form(run_id, {"partners": list(PARTNERS)})
    consultations = await _inbox(smtp_server, 1, 2, time.monotonic())  # after the alert
    before = await wait_for_state(run_id, "PAUSED", timeout=SLOW)
    assert _prefect_rows(topology, "flow_run") >= 1

    topology.stack.stop_server()
    try:
        pending = await _answered_while_down(services, consultations)
    finally:
        topology.stack.start_server()
    assert pending and all("Connect" in error for _, error in pending), pending
    assert (await state_of(run_id)).id == before.id  # nothing woke the run meanwhile

    woken = await heartbeat()
    assert woken["resumed"] >= 1, woken
    before = await _moved_on(run_id, before)
    await resume_form(
        run_id,
        {
            "outcome": "Mise en lien avec la coordinatrice de parcours",
            "who_acts": "CHL",
            "follow_up_days": 0,
        },
    )
    outcome = await _inbox(smtp_server, 3, 3, time.monotonic())
    assert sorted(m.recipients[0] for m in outcome) == sorted([REFERRER, *PARTNERS.values()])
    await wait_for_state(run_id, "COMPLETED", timeout=SLOW)

    assert the_saisine(run_id).status is SaisineStatus.CLOSED
    with Session(db.get_engine()) as session:
        rows = list(session.exec(select(OutboxMessage)))
        assert [(r.status, r.attempts) for r in rows] == [(OutboxStatus.SENT, 1)] * 6
        assert verify_all(session).ok
        answers = [
            e
            for e in case_events(session, "saisine", the_saisine(run_id).id or 0)
            if e.actor_kind == "contact" and e.channel == "link"
        ]
    assert len(smtp_server.messages) == 6
    # the relay accepts mail only after STARTTLS and a login: each sending process logged in
    assert smtp_server.logins and set(smtp_server.logins) == {SMTP_LOGIN}
    assert len(answers) >= 2


def _machine_of(topology: Topology, run_id: str) -> tuple[str, psutil.Process]:
    """The machine whose worker runs `run_id`, and the run's process."""
    for machine, worker in topology.workers.items():
        for child in psutil.Process(worker.pid).children(recursive=True):
            try:
                if child.environ().get("PREFECT__FLOW_RUN_ID") == run_id:
                    return machine, child
            except psutil.NoSuchProcess:
                continue
    raise AssertionError(f"no worker runs {run_id}")


async def test_a_machine_lost_mid_step_the_other_worker_finishes_the_run(
    topology: Topology, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.tick import heartbeat

    monkeypatch.setenv("CLSM_SILENT_RUN_SECONDS", "40")
    monkeypatch.setenv("CLSM_STUCK_RUN_SECONDS", "0.1")
    get_settings.cache_clear()
    run_id = await run("probe-lost/probe-lost", {"case_id": 7}, run_env(pg_url))
    await wait_for_state(run_id, "RUNNING", timeout=SLOW)
    await _first_heartbeat(str(run_id))
    lost, process = _machine_of(topology, str(run_id))
    worker = psutil.Process(topology.workers[lost].pid)
    worker.suspend()  # the machine is gone: its worker reports nothing, ever
    process.kill()
    lost_at = time.monotonic()
    try:
        rescued = 0
        while not rescued and time.monotonic() - lost_at < 240:
            await asyncio.sleep(5)  # the heartbeat process's pass
            rescued = (await heartbeat())["rescued"]
        assert rescued == 1
        await wait_for_state(run_id, "COMPLETED", timeout=SLOW)
    finally:
        worker.kill()  # the machine is replaced: the supervisor starts its worker again
        topology.workers[lost].wait(10)
    with db.session_scope() as session:
        done = [e.payload for e in case_events(session, "session", 7) if e.action == "probe.done"]
    assert done == [{"attempt": 2}]  # by the other machine's worker, once
    (survivor,) = [m for m in MACHINES if m != lost]
    log = (topology.stack.logs / f"prefect-worker-{survivor}.log").read_text()
    assert str(run_id) in log
    record("production_machine_lost", handed_back_after=round(time.monotonic() - lost_at, 1))


async def test_a_backup_holds_both_postgresql_databases(
    topology: Topology, pg_url: str, tmp_path: Path
) -> None:
    """`clsm backup` on this topology: pg_dump of Prefect's database, then of the app's."""
    from typer.testing import CliRunner

    from service.cli import app

    snapshot = tmp_path / "clsm.backup"
    result = CliRunner().invoke(app, ["backup", str(snapshot)])
    assert result.exit_code == 0, result.output
    with tarfile.open(snapshot) as archive:
        assert sorted(archive.getnames()) == ["app.pgdump", "manifest.json", "prefect.pgdump"]
        archive.extractall(tmp_path, filter="data")
    for part, table in (("prefect", "flow_run"), ("app", "audit_event")):
        listing = subprocess.run(
            [_pg_bin("pg_restore"), "--list", str(tmp_path / f"{part}.pgdump")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert f"TABLE public {table} " in listing, listing[:2000]


async def test_two_service_processes_share_sessions_and_the_login_limit(
    pg_url: str, services: Services
) -> None:
    """A session opened on one process is known to the other and ends on both at logout;
    wrong passwords count once across both processes (the account's limit is 10)."""
    with db.session_scope() as session:
        clsm = factories.clsm(session, name="CLSM de Poitiers")
        coordinator = factories.user(session, clsm, Role.COORDINATOR, PASSWORD).email
        targeted = factories.user(session, clsm, Role.COORDINATOR, PASSWORD).email
    first, second = services.urls
    async with (
        httpx.AsyncClient(base_url=first, timeout=60) as on_first,
        httpx.AsyncClient(base_url=second, timeout=60) as on_second,
    ):
        login = await on_first.get("/login")
        done = await on_first.post(
            "/login",
            data={"email": coordinator, "password": PASSWORD, "csrf_token": csrf_of(login.text)},
        )
        assert done.status_code == 303, done.text
        on_second.cookies.set(SESSION_COOKIE, on_first.cookies[SESSION_COOKIE])
        cases = await on_second.get("/cases")
        assert cases.status_code == 200, cases.text  # the other process knows the session
        out = await on_second.post("/logout", data={"csrf_token": csrf_of(cases.text)})
        assert out.status_code == 303, out.text
        again = await on_first.get("/cases")
        assert again.status_code in (302, 303, 307), again.text  # logged out everywhere
        assert "/login" in again.headers["location"]

        # ten wrong passwords, alternately on each process: the eleventh is refused on both
        for attempt in range(10):
            client = (on_first, on_second)[attempt % 2]
            page = await client.get("/login")
            wrong = await client.post(
                "/login",
                data={"email": targeted, "password": "faux", "csrf_token": csrf_of(page.text)},
            )
            assert wrong.status_code == 401 and "incorrect" in wrong.text
        for client in (on_first, on_second):
            page = await client.get("/login")
            refused = await client.post(
                "/login",
                data={"email": targeted, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
            )
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) > 0
