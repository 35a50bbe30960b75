"""Upgrades keep every case: an installation at an earlier revision (a dump of the demo
database, tests/fixtures/app_<revision>.sql) is upgraded with `clsm db upgrade` to the
newest head; and the models agree with the migrations on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

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

FIXTURES = Path(__file__).parents[1] / "fixtures"
DUMPS = sorted(FIXTURES.glob("app_*.sql"))


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
