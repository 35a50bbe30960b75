"""Backup and restore of the app database (SQLite online backup, pg_dump/pg_restore);
with Prefect's database: tests/test_backup_running.py."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session
from typer.testing import CliRunner

from models.core import db
from models.core.audit import Actor, case_events, record_event, verify_all
from models.core.enums import CaseType
from service.cli import app


def _write(n: int, case_id: int) -> None:
    with db.session_scope() as session:
        for i in range(n):
            record_event(
                session=session,
                case_type=CaseType.SAISINE,
                case_id=case_id,
                action="step",
                actor=Actor.system(),
                payload={"i": i},
            )


def test_backup_then_restore_round_trips(any_db_url: str, tmp_path: Path) -> None:
    _write(3, case_id=1)
    snapshot = tmp_path / "snapshot.bak"
    runner = CliRunner()
    result = runner.invoke(app, ["backup", str(snapshot), "--sans-prefect"])
    assert result.exit_code == 0, result.output
    _write(2, case_id=2)  # written after the snapshot: gone after the restore
    result = runner.invoke(app, ["restore", str(snapshot), "--sans-prefect"])
    assert result.exit_code == 0, result.output
    db.get_engine().dispose()
    with Session(db.get_engine()) as session:
        assert len(case_events(session, "saisine", 1)) == 3
        assert case_events(session, "saisine", 2) == []
        assert verify_all(session).ok


def test_restore_of_a_missing_file_is_refused(db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["restore", str(tmp_path / "absent.bak")])
    assert result.exit_code == 1
    assert "Sauvegarde introuvable" in result.output
