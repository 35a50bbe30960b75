"""Backup of a running installation with an open case (both databases, taken while it
runs); the installation restored from it resumes the suspended run."""

from __future__ import annotations

import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from models.core import clock, db
from models.core.audit import case_events, verify_all
from service.cli import app
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of, wait_for_state

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="session"),
]


def _woken() -> list[str]:
    with Session(db.get_engine()) as session:
        return [e.action for e in case_events(session, "session", 41)]


async def test_restored_installation_resumes_the_suspended_run(
    prefect_stack: PrefectStack, db_url: str, tmp_path: Path
) -> None:
    from flows.tick import tick

    with db.session_scope() as session:
        due_at = clock.now(session) + timedelta(days=2)
    run_id = await run(
        "probe-until/probe-until", {"case_id": 41, "due_at": due_at.isoformat()}, run_env(db_url)
    )
    await wait_for_state(run_id, "PAUSED")
    snapshot = tmp_path / "installation.backup"
    runner = CliRunner()
    result = runner.invoke(app, ["backup", str(snapshot)])  # while everything runs
    assert result.exit_code == 0, result.output
    with tarfile.open(snapshot) as archive:
        assert sorted(archive.getnames()) == ["app.db", "manifest.json", "prefect.db"]

    # after the snapshot the case goes to its end, in both databases
    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=3))
    assert (await tick())["due"] == 1
    await wait_for_state(run_id, "COMPLETED")
    assert _woken() == ["probe.woken"]

    # the installation is stopped, restored, started again
    prefect_stack.stop_server()
    try:
        result = runner.invoke(app, ["restore", str(snapshot)])
    finally:
        prefect_stack.start_server()
    assert result.exit_code == 0, result.output
    assert "Base(s) restaurée(s) : Prefect, application" in result.output
    db.get_engine().dispose()
    assert (await state_of(run_id)).type.value == "PAUSED"  # Prefect's side came back too
    assert _woken() == []

    # and the restored installation carries the waiting run to its end, once
    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=3))
    assert (await tick())["due"] == 1
    await wait_for_state(run_id, "COMPLETED")
    assert _woken() == ["probe.woken"]
    with Session(db.get_engine()) as session:
        assert verify_all(session).ok
