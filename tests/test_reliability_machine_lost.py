"""A run lost with its machine (its process and its worker gone at once, nobody reporting
anything) is marked CRASHED by the silent-runs automation, then handed back by tick."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from models import db
from models.audit import case_events
from models.settings import get_settings
from service.orchestration import SILENT_RUNS_AUTOMATION
from tests.support.env import ROOT
from tests.support.figures import record
from tests.support.prefect_stack import PrefectStack, run, run_env, wait_for_state

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="session"),
]


def _run_process(stack: PrefectStack, run_id: str) -> psutil.Process:
    assert stack.worker is not None
    for child in psutil.Process(stack.worker.pid).children(recursive=True):
        try:
            if child.environ().get("PREFECT__FLOW_RUN_ID") == run_id:
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no process runs {run_id}")


async def _first_heartbeat(run_id: str, timeout: float = 60) -> None:
    """Wait until the server holds a heartbeat of the run (it is known to be alive)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    body = {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
        },
        "limit": 1,
    }
    async with get_client() as client:
        while time.monotonic() < deadline:
            response = await client._client.post("/events/filter", json=body)
            if response.json()["events"]:
                return
            await asyncio.sleep(1)
    raise AssertionError(f"no heartbeat of {run_id} in {timeout}s")


async def test_a_run_lost_with_its_machine_is_crashed_then_handed_back(
    prefect_stack: PrefectStack, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    from flows.tick import tick

    async with get_client() as client:
        assert len(await client.read_automations_by_name(SILENT_RUNS_AUTOMATION)) == 1
    prefect_stack.deploy_file(ROOT / "tests" / "support" / "lost.prefect.yaml")
    run_id = await run("probe-lost/probe-lost", {"case_id": 7}, run_env(db_url))
    await wait_for_state(run_id, "RUNNING", timeout=120)
    await _first_heartbeat(str(run_id))
    process = _run_process(prefect_stack, str(run_id))
    assert prefect_stack.worker is not None
    worker = psutil.Process(prefect_stack.worker.pid)
    worker.suspend()  # the machine is gone: its worker will report nothing
    try:
        process.kill()
        lost_at = time.monotonic()
        state = await wait_for_state(run_id, "CRASHED", timeout=300)
        silent_seconds = round(time.monotonic() - lost_at, 1)
    finally:
        worker.resume()
    assert "signe de vie" in (state.message or "")

    monkeypatch.setenv("CLSM_STUCK_RUN_SECONDS", "0.1")
    get_settings.cache_clear()
    summary = await tick()
    assert summary["rescued"] >= 1
    await wait_for_state(run_id, "COMPLETED", timeout=180)
    with db.session_scope() as session:
        done = [e.payload for e in case_events(session, "session", 7) if e.action == "probe.done"]
    assert done == [{"attempt": 2}]  # the lost attempt recorded nothing, the second once
    record(
        "machine_lost",
        crashed_after_seconds=silent_seconds,
        silent_run_seconds=get_settings().silent_run_seconds,
        handed_back_by_tick=summary["rescued"],
    )
