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
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from models.catalogue import metadata
from models.core import db
from models.core.audit import AuditEvent, verify_all
from models.core.people import Clsm, Contact
from models.saisine.common import actions_of, consultations, meetings_of, orientations
from models.saisine.states import SaisineStatus
from models.saisine.tables import Saisine
from service.cli import PROJECT_DIR, app
from tests.conftest import use_database

FIXTURES = Path(__file__).parents[1] / "fixtures"
DUMPS = sorted(FIXTURES.glob("app_*.sql"))


def _head() -> str:
    config = Config(str(PROJECT_DIR / "migrations" / "alembic.ini"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _cases(session: Session) -> dict[str, dict[str, Any]]:
    """What a coordinator or an auditor reads of each saisine."""
    found = {}
    for saisine in session.exec(select(Saisine).order_by(col(Saisine.reference))):
        found[saisine.reference] = {
            "saisine": saisine.model_dump(),
            "consultations": [c.model_dump() for c in consultations(session, saisine)],
            "orientations": [o.model_dump() for o in orientations(session, saisine)],
            "meetings": [m.model_dump() for m in meetings_of(session, saisine)],
            "actions": [a.model_dump() for a in actions_of(session, saisine)],
        }
    return found


@pytest.mark.parametrize("dump", DUMPS, ids=[d.stem for d in DUMPS])
def test_an_installation_at_an_earlier_revision_upgrades_with_its_cases(
    dump: Path, tmp_path: Path
) -> None:
    database = tmp_path / "installed.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(dump.read_text(encoding="utf-8"))
    use_database(f"sqlite:///{database}")
    with Session(db.get_engine()) as session:
        before = _cases(session)
        contacts = len(session.exec(select(Contact)).all())
        events = len(session.exec(select(AuditEvent.id)).all())
    assert len(before) == 6
    assert all(c["saisine"]["status"] is SaisineStatus.CLOSED for c in before.values())
    assert all(c["saisine"]["difficulty"] for c in before.values())  # the description kept

    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "Base de données à jour." in result.output

    db.get_engine().dispose()
    with Session(db.get_engine()) as session:
        version = session.connection().exec_driver_sql("SELECT version_num FROM alembic_version")
        assert [row[0] for row in version] == [_head()]
        assert _cases(session) == before
        assert len(session.exec(select(Contact)).all()) == contacts
        assert session.exec(select(Clsm.slug)).all() == ["poitiers"]
        report = verify_all(session)
        assert report.ok, report
        assert report.events == events


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
