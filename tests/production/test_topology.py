"""Key scenarios on the production topology (tests/production/conftest.py): the app
database and Prefect's on PostgreSQL, two workers with their own working directories.

A saisine is carried end to end while the Prefect server is restarted under its
suspended run; a run's machine (worker and run process) is lost mid-step and the other
machine's worker finishes it.
"""

from __future__ import annotations

import asyncio
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from models.core import db
from models.core.audit import case_events, verify_all
from models.core.outbox import OutboxMessage, OutboxStatus
from models.core.settings import get_settings
from models.saisine.states import SaisineStatus
from tests.mail.test_mail_at_once import PARTNERS, REFERRER, _inbox, _link
from tests.production.conftest import MACHINES, Topology
from tests.reliability.test_reliability_machine_lost import _first_heartbeat
from tests.saisine.test_saisine_flow import intake_parameters, resume_form, the_saisine
from tests.support.figures import record
from tests.support.postgres import _pg_bin
from tests.support.prefect_stack import run, run_env, state_of, wait_for_state
from tests.support.saisine import build_cell
from tests.support.smtp import SmtpServer

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


@pytest.fixture
def service(pg_url: str, smtp_server: SmtpServer) -> Iterator[TestClient]:
    from service.main import create_app

    with TestClient(create_app()) as client:
        yield client


async def test_a_saisine_end_to_end_across_a_prefect_restart(
    topology: Topology, pg_url: str, smtp_server: SmtpServer, service: TestClient
) -> None:
    assert pg_url.startswith("postgresql")
    with db.session_scope() as session:
        build_cell(session)
    env = run_env(pg_url, CLSM_SMTP_PORT=str(smtp_server.port))
    run_id = await run("saisine/saisine", intake_parameters(), env)
    await wait_for_state(run_id, "PAUSED", timeout=SLOW)
    await resume_form(run_id, {"partners": list(PARTNERS)})
    consultations = await _inbox(smtp_server, 0, 2, time.monotonic())
    before = await wait_for_state(run_id, "PAUSED", timeout=SLOW)
    assert _prefect_rows(topology, "flow_run") >= 1

    # the Prefect server goes down and comes back while the run is suspended
    topology.stack.stop_server()
    topology.stack.start_server()

    for mail in consultations:
        done = service.post(
            _link(mail), data={"knows_situation": "oui", "proposal": "Visite conjointe"}
        )
        assert done.status_code == 200, done.text
    before = await _moved_on(run_id, before)
    await resume_form(
        run_id,
        {
            "outcome": "Mise en lien avec la coordinatrice de parcours",
            "who_acts": "CHL",
            "follow_up_days": 0,
        },
    )
    outcome = await _inbox(smtp_server, 2, 3, time.monotonic())
    assert sorted(m.recipients[0] for m in outcome) == sorted([REFERRER, *PARTNERS.values()])
    await wait_for_state(run_id, "COMPLETED", timeout=SLOW)

    assert the_saisine(run_id).status is SaisineStatus.CLOSED
    with Session(db.get_engine()) as session:
        rows = list(session.exec(select(OutboxMessage)))
        assert [(r.status, r.attempts) for r in rows] == [(OutboxStatus.SENT, 1)] * 5
        assert verify_all(session).ok
    assert len(smtp_server.messages) == 5


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
