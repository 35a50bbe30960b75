"""A real Prefect server and process worker for the whole test session.

The server runs on a free port with its own home under the session's temp dir; the
work pool `clsm` gets the deployments of prefect.yaml plus the test probes; one process
worker executes them. Each test passes its own database URL to its runs through the
deployment's job variables, so tests stay isolated while sharing one server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from tests.support.env import PREFECT_API_URL, ROOT, TMP

BIN = ROOT / ".venv" / "bin"


def _bin(name: str) -> str:
    candidate = BIN / name
    return str(candidate) if candidate.exists() else name


class PrefectStack:
    def __init__(self) -> None:
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.logs = TMP / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- server ---------------------------------------------------------------------
    def start_server(self) -> None:
        log = (self.logs / "prefect-server.log").open("ab")
        self.server = subprocess.Popen(
            [
                _bin("prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                PREFECT_API_URL.rsplit(":", 1)[1].split("/")[0],
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            start_new_session=True,
        )
        try:  # minutes on a loaded machine; a server that dies is reported at once
            self.wait_healthy(float(os.environ.get("TEST_PREFECT_START_SECONDS", "600")))
        except BaseException:
            self.stop_server()  # never leave a server behind a failed start
            raise

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{PREFECT_API_URL}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError("Prefect server exited; see " + str(self.logs))
            time.sleep(0.5)
        raise TimeoutError("Prefect server did not become healthy")

    def stop_server(self) -> None:
        _stop(self.server)
        self.server = None

    # -- deployments and worker ----------------------------------------------------
    def deploy(self) -> None:
        env = os.environ.copy()
        subprocess.run(
            [
                _bin("prefect"),
                "--no-prompt",
                "work-pool",
                "create",
                "clsm",
                "--type",
                "process",
                "--overwrite",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        result = subprocess.run(
            [_bin("prefect"), "--no-prompt", "deploy", "--all"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"prefect deploy failed:\n{result.stdout}\n{result.stderr}")
        self.deploy_file(ROOT / "tests" / "support" / "probes.prefect.yaml")

    def deploy_file(self, path: Path) -> None:
        """Deploy the deployments of one more prefect.yaml-like file."""
        result = subprocess.run(
            [_bin("prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", str(path)],
            cwd=ROOT,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"deploy of {path} failed:\n{result.stdout}\n{result.stderr}")

    def start_worker(self) -> None:
        self.worker = self.spawn_worker("test-worker")

    def spawn_worker(
        self, name: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start one more process worker on the pool (the caller stops it with `stop_process`);
        `cwd` and `env` make it look like a worker of another machine."""
        log = (self.logs / f"prefect-{name}.log").open("ab")
        return subprocess.Popen(
            [
                _bin("prefect"),
                "worker",
                "start",
                "--pool",
                "clsm",
                "--type",
                "process",
                "--name",
                name,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def stop_worker(self) -> None:
        _stop(self.worker)
        self.worker = None

    def stop(self) -> None:
        self.stop_worker()
        drain_prefect_clients()
        self.stop_server()


def drain_prefect_clients(timeout: float = 15) -> None:
    """Send what this process still holds for the Prefect API (events, logs) while the
    server (or relay) it talks to is up: otherwise Prefect's services retry a closed port at
    interpreter exit, for minutes."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        for service in (EventsWorker, APILogWorker):
            service.drain_all(timeout=timeout)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    _stop(process)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


# -- helpers for tests ----------------------------------------------------------------
async def run(
    deployment: str,
    parameters: Mapping[str, Any],
    env: Mapping[str, str],
    tags: list[str] | None = None,
) -> UUID:
    """Create a flow run of a deployment, with the test's own environment for its process."""
    from prefect.deployments.flow_runs import arun_deployment

    flow_run = await arun_deployment(
        deployment,
        parameters=dict(parameters),
        timeout=0,
        job_variables={"env": dict(env)},
        tags=tags,
    )
    return flow_run.id


async def state_of(run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return (await client.read_flow_run(run_id)).state


async def wait_for_state(run_id: UUID, *names: str, timeout: float = 90) -> Any:
    """Poll until the run's state type or name is one of names (e.g. PAUSED, COMPLETED)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = await state_of(run_id)
        if state is not None and (state.type.value in names or state.name in names):
            return state
        if (
            state is not None
            and state.type.value in ("FAILED", "CRASHED")
            and "FAILED" not in names
        ):
            raise AssertionError(f"run {run_id} ended in {state.type.value}: {state.message}")
        await asyncio.sleep(0.5)
    raise AssertionError(f"run {run_id} did not reach {names} in {timeout}s (last: {state})")


async def settle(run_ids: list[UUID], *names: str, timeout: float, rescue_after: float = 60) -> int:
    """Wait until every run is in one of names, as an installation would get there.

    Under load the Prefect server (SQLite) may answer 503 to a worker, which then reports
    the run CRASHED before it started; in production `tick` hands such runs back to the pool
    after CLSM_STUCK_RUN_SECONDS. Here the same rescue runs every few seconds with
    `rescue_after` seconds as that setting. Returns how many runs were handed back.
    """
    from models.core.runs import reschedule_stuck_runs

    deadline = time.monotonic() + timeout
    rescued = 0
    waiting = list(run_ids)
    while waiting:
        states = {r: await state_of(r) for r in waiting}
        failed = [r for r, s in states.items() if s is not None and s.type.value == "FAILED"]
        if failed and "FAILED" not in names:
            raise AssertionError(f"runs failed: {failed}")
        waiting = [
            r
            for r, s in states.items()
            if s is None or (s.type.value not in names and s.name not in names)
        ]
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(waiting)} runs did not reach {names} in {timeout}s")
        if any(s is not None and s.type.value in ("CRASHED", "PENDING") for s in states.values()):
            rescued += await reschedule_stuck_runs(rescue_after)
        await asyncio.sleep(2)
    return rescued


async def form_schema(run_id: UUID, timeout: float = 30) -> dict[str, Any]:
    """The schema of the form a paused run waits on, once the run has written it.

    Prefect marks the run PAUSED before it stores the form's schema; a resume in between is
    refused ("Run input schema not found"). The Prefect UI shows the form only once the
    schema is there: so do the tests before answering.
    """
    import json

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.input.run_input import keyset_from_paused_state

    state = await wait_for_state(run_id, "PAUSED")
    keyset = keyset_from_paused_state(state)
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            try:
                schema: dict[str, Any] = json.loads(
                    await client.read_flow_run_input(run_id, keyset["schema"])
                )
                return schema
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def run_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment a flow run of one test needs (its own app database)."""
    return {"CLSM_DATABASE_URL": db_url, **extra}


def run_processes(stack: PrefectStack, run_id: object = None) -> list[str]:
    """Command lines of the flow-run processes the worker has running now.

    With `run_id`, only the process of that flow run (other tests or benchmarks may share
    the worker and have runs of their own still going).
    """
    import psutil

    if stack.worker is None:
        return []
    try:
        children = psutil.Process(stack.worker.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    lines = []
    for child in children:
        try:
            line = " ".join(child.cmdline())
            if run_id is not None and child.environ().get("PREFECT__FLOW_RUN_ID") != str(run_id):
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        lines.append(line)
    return [line for line in lines if "prefect.engine" in line or "flow_run" in line]


async def wait_no_run_process(
    stack: PrefectStack, run_id: object = None, timeout: float = 60
) -> list[str]:
    """Wait until the worker holds no process (of `run_id`, if given); returns what is left."""
    deadline = time.monotonic() + timeout
    left = run_processes(stack, run_id)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        left = run_processes(stack, run_id)
    return left


__all__ = [
    "Path",
    "PrefectStack",
    "drain_prefect_clients",
    "form_schema",
    "run",
    "run_env",
    "run_processes",
    "settle",
    "state_of",
    "wait_for_state",
    "wait_no_run_process",
]
