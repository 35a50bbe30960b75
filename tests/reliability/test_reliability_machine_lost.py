"""A run lost with its machine (its process and its worker gone at once, nobody reporting
anything) is marked CRASHED by the silent-runs automation, then handed back by tick."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from models.core import db
from models.core.audit import case_events
from models.core.settings import get_settings
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

    monkeypatch.setenv("CLSM_SILENT_RUN_SECONDS", "45")
    monkeypatch.setenv("CLSM_STUCK_RUN_SECONDS", "0.1")
    get_settings.cache_clear()
    prefect_stack.deploy_file(ROOT / "tests" / "support" / "lost.prefect.yaml")
    run_id = await run("probe-lost/probe-lost", {"case_id": 7}, run_env(db_url))
    await wait_for_state(run_id, "RUNNING", timeout=120)
    await _first_heartbeat(str(run_id))
    process = _run_process(prefect_stack, str(run_id))
    assert prefect_stack.worker is not None
    worker = psutil.Process(prefect_stack.worker.pid)
    worker.suspend()  # the machine is gone: its worker will report nothing, ever
    try:
        process.kill()
        lost_at = time.monotonic()
        handed_back = 0
        while not handed_back and time.monotonic() - lost_at < 300:
            await asyncio.sleep(5)  # tick, as its cron would
            handed_back = (await tick())["rescued"]
        handed_back_after = round(time.monotonic() - lost_at, 1)
    finally:
        worker.kill()  # never comes back; another machine's worker takes over
        prefect_stack.worker.wait(10)
        prefect_stack.start_worker()
    assert handed_back == 1
    await wait_for_state(run_id, "COMPLETED", timeout=180)
    async with get_client() as client:
        states = await client.read_flow_run_states(run_id)
    assert [s.type.value for s in states].count("CRASHED") == 1
    assert any("signe de vie" in (s.message or "") for s in states)
    with db.session_scope() as session:
        done = [e.payload for e in case_events(session, "session", 7) if e.action == "probe.done"]
    assert done == [{"attempt": 2}]  # the lost attempt recorded nothing, the second once
    record(
        "machine_lost",
        handed_back_after_seconds=handed_back_after,
        silent_run_seconds=get_settings().silent_run_seconds,
        handed_back_by_tick=handed_back,
    )


async def test_a_suspended_run_is_never_taken_for_a_silent_one(
    prefect_stack: PrefectStack, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that beat, then suspended (no process, no heartbeat): tick leaves it alone."""
    from models.core.runs import crash_silent_runs

    run_id = await run("probe-ask/probe-ask", {"case_id": 8}, run_env(db_url))
    await wait_for_state(run_id, "PAUSED", timeout=120)
    await _first_heartbeat(str(run_id))
    await asyncio.sleep(3)
    assert await crash_silent_runs(silent_seconds=1) == 0
    assert (await wait_for_state(run_id, "PAUSED")).name == "Suspended"
