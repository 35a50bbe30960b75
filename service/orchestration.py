"""Talking to Prefect from outside a flow: readiness, work pool, deployments, new runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from models.core.settings import get_settings

WORK_POOL = "clsm"


def wait_for_prefect(timeout: float) -> bool:
    """Poll the Prefect API health endpoint until it answers or timeout seconds pass."""
    url = f"{get_settings().prefect_api_url}/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def _prefect_cli(*args: str, cwd: Path | None = None) -> None:
    prefect = Path(sys.executable).with_name("prefect")
    settings = get_settings()
    env = {
        **os.environ,
        "PREFECT_API_URL": settings.prefect_api_url,
        "PREFECT_API_AUTH_STRING": settings.prefect_auth,
    }
    subprocess.run(
        [str(prefect), "--no-prompt", *args],
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def ensure_work_pool() -> None:
    """Create the process work pool `clsm` unless it exists (the worker may create it too)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async def create() -> None:
        async with get_client() as client:
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))

    asyncio.run(create())


def deploy_all(project_dir: Path) -> None:
    """`prefect deploy --all` from prefect.yaml (idempotent: deployments are upserted)."""
    _prefect_cli("deploy", "--all", cwd=project_dir)


async def start_run(
    deployment: str,
    parameters: dict[str, Any],
    *,
    name: str | None = None,
    tags: list[str] | None = None,
) -> UUID:
    """Create a flow run of `flow-name/deployment-name` without waiting for it."""
    from prefect.deployments.flow_runs import arun_deployment

    run = await arun_deployment(
        deployment, parameters=parameters, timeout=0, flow_run_name=name, tags=tags
    )
    run_id: UUID = run.id
    return run_id
