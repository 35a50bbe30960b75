"""Backup of a running installation with an open case; the restored copy resumes it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from models.core import clock, db
from models.core.audit import Actor, case_events, record_event, verify_all
from models.core.enums import CaseType
from service.cli import app
from tests.support.prefect_stack import PrefectStack, run, run_env, wait_for_state

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="session"),
]


async def test_restored_copy_resumes_the_suspended_run(
    prefect_stack: PrefectStack, db_url: str, tmp_path: Path
) -> None:
    from flows.tick import tick

    with db.session_scope() as session:
        due_at = clock.now(session) + timedelta(days=2)
    run_id = await run(
        "probe-until/probe-until", {"case_id": 41, "due_at": due_at.isoformat()}, run_env(db_url)
    )
    await wait_for_state(run_id, "PAUSED")
    snapshot = tmp_path / "snapshot.db"
    runner = CliRunner()
    assert runner.invoke(app, ["backup", str(snapshot)]).exit_code == 0  # while running
    with db.session_scope() as session:  # written after the snapshot: lost by the restore
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=41,
            action="after.snapshot",
            actor=Actor.system(),
            payload={},
        )
    result = runner.invoke(app, ["restore", str(snapshot)])
    assert result.exit_code == 0, result.output
    db.get_engine().dispose()
    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=3))
    summary = await tick()
    assert summary["due"] == 1
    await wait_for_state(run_id, "COMPLETED")
    with Session(db.get_engine()) as session:
        actions = [e.action for e in case_events(session, "session", 41)]
        assert actions == ["probe.woken"]
        assert verify_all(session).ok
