"""Upgrades keep every case: an installation at an earlier revision (a dump of the demo
database, tests/fixtures/app_<revision>.sql) is upgraded with `clsm db upgrade` to the
newest head; an installation of an earlier release with a suspended run
(tests/fixtures/suspended_<revision>/: both databases) is upgraded and its run carried to
its end by the new code; and the models agree with the migrations on PostgreSQL."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.catalogue import metadata
from models.core import db
from models.core.audit import verify_all
from models.core.people import Clsm
from models.saisine.states import SaisineStatus
from service.cli import PROJECT_DIR, app
from tests.conftest import use_database
from tests.support import env
from tests.support.prefect_stack import stop_process, wait_for_state
from tests.support.smtp import SmtpServer

FIXTURES = Path(__file__).parents[1] / "fixtures"
DUMPS = sorted(FIXTURES.glob("app_*.sql"))
SUSPENDED = sorted(FIXTURES.glob("suspended_*"))


def _head() -> str:
    config = Config(str(PROJECT_DIR / "migrations" / "alembic.ini"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


# what a coordinator or an auditor reads of each case, as rows of the earlier release
CASE_TABLES = (
    "clsm",
    "organisation",
    "contact",
    "partnership",
    "saisine",
    "consultation",
    "orientation",
    "cell_meeting",
    "meeting_item",
    "meeting_member",
    "decision",
    "decision_action",
    "followup",
    "audit_event",
)


# columns a later revision moved elsewhere on purpose (0008: a refused coordinator answer
# is kept on its wait, not on the saisine)
MOVED = {("saisine", "form_seq"), ("saisine", "last_form_error")}


def _columns(connection: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def _snapshot(database: Path, columns: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Every row of the case tables, read with the given columns (all by default)."""
    with sqlite3.connect(database) as connection:
        tables: dict[str, Any] = {}
        for table in CASE_TABLES:
            names = (columns or {}).get(table) or _columns(connection, table)
            rows = connection.execute(
                f"SELECT {', '.join(names)} FROM {table} ORDER BY {names[0]}"
            ).fetchall()
            tables[table] = {"columns": names, "rows": rows}
    return tables


def _kept(before: dict[str, Any], database: Path) -> dict[str, list[str]]:
    """The earlier columns still there after the upgrade; only the moved ones are gone."""
    with sqlite3.connect(database) as connection:
        now = {table: set(_columns(connection, table)) for table in CASE_TABLES}
    gone = {(t, c) for t, kept in before.items() for c in kept["columns"] if c not in now[t]}
    assert gone <= MOVED, gone
    return {t: [c for c in kept["columns"] if c in now[t]] for t, kept in before.items()}


def _project(snapshot: dict[str, Any], columns: dict[str, list[str]]) -> dict[str, Any]:
    """The snapshot restricted to `columns` (in their order)."""
    projected = {}
    for table, kept in snapshot.items():
        index = [kept["columns"].index(c) for c in columns[table]]
        rows = [tuple(row[i] for i in index) for row in kept["rows"]]
        projected[table] = {"columns": columns[table], "rows": rows}
    return projected


@pytest.mark.parametrize("dump", DUMPS, ids=[d.stem for d in DUMPS])
def test_an_installation_at_an_earlier_revision_upgrades_with_its_cases(
    dump: Path, tmp_path: Path
) -> None:
    database = tmp_path / "installed.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(dump.read_text(encoding="utf-8"))
    use_database(f"sqlite:///{database}")
    before = _snapshot(database)
    saisines = before["saisine"]
    status = saisines["columns"].index("status")
    difficulty = saisines["columns"].index("difficulty")
    assert len(saisines["rows"]) == 6
    assert all(row[status] == SaisineStatus.CLOSED.name for row in saisines["rows"])
    assert all(row[difficulty] for row in saisines["rows"])  # the description kept

    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "Base de données à jour." in result.output

    db.get_engine().dispose()
    with Session(db.get_engine()) as session:
        version = session.connection().exec_driver_sql("SELECT version_num FROM alembic_version")
        assert [row[0] for row in version] == [_head()]
        assert session.exec(select(Clsm.slug)).all() == ["poitiers"]
        report = verify_all(session)
        assert report.ok, report
        assert report.events == len(before["audit_event"]["rows"])
    db.get_engine().dispose()
    columns = _kept(before, database)
    # every row of every case table as it was, audit events included (the seal and the
    # key id are new columns beside them)
    assert _snapshot(database, columns) == _project(before, columns)


def _differences(url: str) -> list[Any]:
    from service.cli import migrate

    migrate(url)
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_migrations_build_exactly_the_models_on_postgresql(postgres_server: Any) -> None:
    """(SQLite: tests/core/test_architecture.py.)"""
    assert _differences(postgres_server.create_database()) == []


def test_the_dumps_of_earlier_releases_are_there() -> None:
    """The parametrised upgrade test above runs once per dump: it must not silently run
    none (tests/fixtures/make_app_dump.py writes one before a release's first migration)."""
    assert {d.stem for d in DUMPS} >= {"app_0001", "app_0002"}


@contextmanager
def released_prefect(work: Path, database: Path) -> Iterator[str]:
    """Prefect as the earlier release left it (its database restored from the dump), on a
    port of its own, upgraded as the README says (`prefect deploy --all` from the new
    code), with one process worker whose environment names the upgraded app database.
    Yields the API URL."""
    port = env.free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}",
        "PREFECT_LOCAL_STORAGE_PATH": str(work / "storage"),
    }
    prefect = str(env.ROOT / ".venv" / "bin" / "prefect")
    logs = env.TMP / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=(logs / "released-prefect-server.log").open("ab"),
        stderr=subprocess.STDOUT,
        env=base,
        start_new_session=True,
    )
    worker = None
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, "the released Prefect server exited (see its log)"
            assert time.monotonic() < deadline, "the released Prefect server did not answer"
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        deployed = subprocess.run(
            [prefect, "--no-prompt", "deploy", "--all"],
            cwd=env.ROOT,
            env=base,
            capture_output=True,
            text=True,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        worker = subprocess.Popen(
            [prefect, "worker", "start", "--pool", "clsm", "--type", "process"],
            stdout=(logs / "released-prefect-worker.log").open("ab"),
            stderr=subprocess.STDOUT,
            env=base,
            cwd=work,
            start_new_session=True,
        )
        yield api
    finally:
        stop_process(worker)
        stop_process(server)


@pytest.mark.prefect
@pytest.mark.parametrize("installed", SUSPENDED, ids=[d.name for d in SUSPENDED])
async def test_a_suspended_run_of_an_earlier_release_goes_on_after_the_upgrade(
    installed: Path, tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier release suspended a saisine's run on the coordinator's first form; after
    `clsm db upgrade` and the new deployments, the new code carries it to its end."""
    from fastapi.testclient import TestClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from models.core.runs import deliver_resumes
    from service.main import create_app
    from tests.mail.test_mail_at_once import PARTNERS, REFERRER, _inbox, _link
    from tests.saisine.test_saisine_flow import moved_on, resume_form, the_saisine

    manifest = json.loads((installed / "manifest.json").read_text())
    monkeypatch.setenv("CLSM_AUDIT_KEY", manifest["audit_key"])  # the installation's key
    database = tmp_path / "installed.db"
    with sqlite3.connect(database) as connection:
        connection.executescript((installed / "app.sql").read_text(encoding="utf-8"))
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == manifest["revision"] != _head()
    prefect_db = tmp_path / "prefect.db"
    with (
        sqlite3.connect(prefect_db) as connection,
        gzip.open(installed / "prefect.sql.gz", "rt", encoding="utf-8") as dump,
    ):
        connection.executescript(dump.read())
    use_database(f"sqlite:///{database}")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    db.get_engine().dispose()

    run_id = UUID(manifest["flow_run_id"])
    with released_prefect(tmp_path, prefect_db) as api, temporary_settings({PREFECT_API_URL: api}):
        suspended = await wait_for_state(run_id, "PAUSED")
        assert the_saisine(run_id).reference == manifest["saisine"]
        await resume_form(run_id, {"partners": list(PARTNERS)})
        consultations = await _inbox(smtp_server, 0, 2, time.monotonic())
        before = await moved_on(run_id, suspended, "PAUSED")
        with TestClient(create_app()) as service:
            for mail in consultations:
                done = service.post(
                    _link(mail), data={"knows_situation": "oui", "proposal": "Visite conjointe"}
                )
                assert done.status_code == 200, done.text
        await deliver_resumes()  # the heartbeat's pass (the service's own try had no context)
        await moved_on(run_id, before, "PAUSED")
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
        await wait_for_state(run_id, "COMPLETED", timeout=300)

    assert the_saisine(run_id).status is SaisineStatus.CLOSED
    with Session(db.get_engine()) as session:
        report = verify_all(session)
        assert report.ok, report
    db.get_engine().dispose()


def test_a_dump_with_a_suspended_run_is_there() -> None:
    """(tests/fixtures/make_suspended_dump.py writes one from a release's code.)"""
    assert SUSPENDED, "no tests/fixtures/suspended_<revision>/"


def test_sessions_past_the_selection_at_the_upgrade_go_on_without_a_review(
    tmp_path: Path,
) -> None:
    """0012: a session whose host requests already went out is marked reviewed (later
    arrivals placed as before); one still before its placements will be reviewed."""
    _upgrade_marks_sessions_past_the_selection(f"sqlite:///{tmp_path / 'app.db'}")


@pytest.mark.postgres
def test_sessions_past_the_selection_at_the_upgrade_on_postgresql(postgres_server: Any) -> None:
    """The same on PostgreSQL, where the status is of an enum type."""
    _upgrade_marks_sessions_past_the_selection(postgres_server.create_database())


def _upgrade_marks_sessions_past_the_selection(url: str) -> None:
    from alembic import command

    from models.immersion.states import SessionStatus
    from models.immersion.tables import ImmersionSession
    from service.cli import migrate
    from tests.support.immersion import build_clsm, open_session

    migrate(url)
    use_database(url)
    with db.session_scope() as session:
        clsm, _orgs = build_clsm(session)
        for title, status in (
            ("avant", SessionStatus.SELECTION),
            ("après", SessionStatus.AGREEMENTS),
        ):
            row = open_session(session, clsm, title=title, capacity=2, flow_run_id=title)
            row.status = status
            session.add(row)
    db.get_engine().dispose()
    config = Config(str(PROJECT_DIR / "migrations" / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    command.downgrade(config, "0011")  # as an installation of the earlier release
    command.upgrade(config, "head")
    with db.session_scope() as session:
        reviewed = {
            r.title: r.placements_reviewed_at is not None
            for r in session.exec(select(ImmersionSession))
        }
    assert reviewed == {"avant": False, "après": True}
