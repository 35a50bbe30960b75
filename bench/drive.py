"""Driving real flow runs end to end for the benchmarks, as the end-to-end tests do.

An `Installation` is one app database with a real SMTP server and the service (FastAPI
TestClient) in this process: partners answer the mailed links through the service, the
coordinator answers Prefect forms by resuming the run with its input, the clock is moved
with `models.core.clock` and the tick flow resumes what became due. `ApiCalls` counts the calls
each kind of Prefect client makes (bench.api_counter relays them to the server), and
`passes` reads from each run's state history where the time of each resumption went.
The driver polls run states on its own direct client: observing is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from bench.run import ROOT, distribution

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from prefect.client.orchestration import PrefectClient

    from tests.support.prefect_stack import PrefectStack
    from tests.support.smtp import SmtpServer

LABELS = ("driver", "worker", "flow-runs")
TICK_SECONDS = 60  # the tick deployment's schedule: every minute
IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# -- counting Prefect API calls per client -----------------------------------------------
class ApiCalls:
    """A bench.api_counter relay with one port per kind of client; the calls in a window.

    driver: this process (the service's resumes, the tick flow, the coordinator's forms and
    new runs); worker: the process worker(s) polling the pool; flow-runs: the processes the
    worker starts (their PREFECT_API_URL comes with the run's job variables).
    """

    def __init__(self, directory: Path) -> None:
        from tests.support.env import PREFECT_PORT, free_port

        self.log = directory / "prefect-api-calls.tsv"
        self.log.write_text("")
        ports = {label: free_port() for label in LABELS}
        self.urls = {label: f"http://127.0.0.1:{port}/api" for label, port in ports.items()}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.api_counter",
                str(self.log),
                str(PREFECT_PORT),
                *(f"{label}={port}" for label, port in ports.items()),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the Prefect API call counter did not start")

    def calls(self, since: float, until: float) -> list[tuple[float, str, str, str]]:
        found = []
        for line in self.log.read_text().splitlines():
            at, label, method, path = line.split("\t")
            if since <= float(at) <= until:
                found.append((float(at), label, method, path))
        return found

    def summary(self, since: float, until: float, steps: int) -> dict[str, Any]:
        """Calls by client and the busiest endpoints (ids folded), per step as well."""
        calls = self.calls(since, until)
        by_label = Counter(label for _, label, _, _ in calls)
        endpoints = Counter(
            f"{label} {method} {IDS.sub('{id}', path.split('?')[0])}"
            for _, label, method, path in calls
        )
        total = len(calls)
        return {
            "total": total,
            "steps": steps,
            "per_step": round(total / steps, 1) if steps else None,
            "by_client": {label: by_label.get(label, 0) for label in LABELS},
            "by_client_per_step": {
                label: round(by_label.get(label, 0) / steps, 1) if steps else None
                for label in LABELS
            },
            "busiest_endpoints": dict(endpoints.most_common(12)),
        }

    def close(self) -> None:
        from tests.support.prefect_stack import stop_process

        stop_process(self.process)


@contextlib.contextmanager
def prefect_api_url(url: str) -> Iterator[None]:
    """This process's Prefect clients (and the processes it starts) talk to url."""
    from prefect.context import refresh_global_settings_context

    from tests.support.prefect_stack import drain_prefect_clients

    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()
    try:
        yield
    finally:
        drain_prefect_clients()  # what was emitted for url goes there, not later elsewhere
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
        refresh_global_settings_context()


def spawn_workers(stack: PrefectStack, names: list[str], url: str) -> list[Any]:
    """Start process workers on the pool whose API calls go through url."""
    with prefect_api_url(url):
        return [stack.spawn_worker(name) for name in names]


def stop_workers(workers: list[Any]) -> None:
    from tests.support.prefect_stack import stop_process

    for worker in workers:
        stop_process(worker)


# -- where the time of each pass goes -----------------------------------------------------
@dataclass
class Pass:
    """One execution of a run, from SCHEDULED (new or resumed) to PAUSED or COMPLETED."""

    run_id: str
    scheduled: float
    pending: float | None
    running: float | None
    ended: float
    waited_before: float | None  # since the previous pass ended (people, driver, dates)
    outcome: str = "PAUSED"  # or COMPLETED, or CRASHED (then rescheduled by tick)

    @property
    def queue_wait(self) -> float | None:
        return self.pending - self.scheduled if self.pending else None

    @property
    def process_start(self) -> float | None:
        return self.running - self.pending if self.running and self.pending else None

    @property
    def flow_code(self) -> float | None:
        return self.ended - self.running if self.running else None

    @property
    def total(self) -> float:
        return self.ended - self.scheduled


async def passes(observer: PrefectClient, run_ids: list[UUID]) -> list[Pass]:
    found: list[Pass] = []
    for run_id in run_ids:
        states = sorted(await observer.read_flow_run_states(run_id), key=lambda s: s.timestamp)
        current: dict[str, float] = {}
        previous_end: float | None = None
        for state in states:
            kind = state.type.value
            at = state.timestamp.timestamp()
            if kind == "SCHEDULED":
                current = {"scheduled": at}
            elif kind in ("PENDING", "RUNNING") and current:
                current[kind.lower()] = at
            elif kind in ("PAUSED", "COMPLETED", "CRASHED") and current:
                scheduled = current["scheduled"]
                found.append(
                    Pass(
                        run_id=str(run_id),
                        scheduled=scheduled,
                        pending=current.get("pending"),
                        running=current.get("running"),
                        ended=at,
                        waited_before=scheduled - previous_end if previous_end else None,
                        outcome=kind,
                    )
                )
                previous_end, current = at, {}
    return found


def interpreter_start(modules: list[str], repeat: int = 2) -> dict[str, float]:
    """Seconds a new Python process takes to start bare, and to import `modules` (the bulk
    of a flow run's process start); the fastest of `repeat` tries."""

    def fastest(code: str) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
            times.append(time.perf_counter() - started)
        return round(min(times), 2)

    return {
        "bare_seconds": fastest("pass"),
        "importing_seconds": fastest("import " + ", ".join(modules)),
    }


def where_time_goes(found: list[Pass]) -> dict[str, Any]:
    """Per pass: queue wait (worker polling), process start, flow code; in seconds."""

    def values(name: str) -> list[float]:
        return [v for p in found if (v := getattr(p, name)) is not None]

    parts = {
        name: distribution(values(name), "s", 2)
        for name in ("queue_wait", "process_start", "flow_code", "total")
    }
    busy = sum(p.total for p in found)
    shares = {
        name: round(100 * sum(values(name)) / busy, 1) if busy else None
        for name in ("queue_wait", "process_start", "flow_code")
    }
    waited = values("waited_before")
    return {
        "passes": len(found),
        "crashed_passes": sum(p.outcome == "CRASHED" for p in found),
        **parts,
        "share_of_pass_time_percent": shares,
        "between_passes": distribution(waited, "s", 2),
    }


def resumes_by_wait() -> dict[str, int]:
    """Resumptions of runs waiting for answers or dates, by waiting step (numbers folded):
    each one spent a key (the wait's generation), whether the run moved on or waited again."""
    from sqlmodel import select

    from models.core.db import session_scope
    from models.core.waits import Wait

    counts: Counter[str] = Counter()
    with session_scope() as session:
        for step, generation in session.exec(select(Wait.step, Wait.generation)):
            if generation:
                counts[re.sub(r"\d+", "N", step)] += generation
    return dict(counts.most_common())


# -- one installation driven end to end ---------------------------------------------------
@dataclass
class Actions:
    """What the driver did, as people and the heartbeat would, and its seconds by kind."""

    links_answered: int = 0
    forms_answered: int = 0
    ticks: int = 0
    clock_moves: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timing(self, kind: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[kind] = self.seconds.get(kind, 0.0) + time.perf_counter() - started

    def figures(self) -> dict[str, Any]:
        return {
            "links_answered": self.links_answered,
            "forms_answered": self.forms_answered,
            "ticks": self.ticks,
            "clock_moves": self.clock_moves,
            "driver_seconds": {k: round(v, 1) for k, v in sorted(self.seconds.items())},
        }


@dataclass
class Installation:
    """One app database with its SMTP server and service; runs get `env` as job variables."""

    db_url: str
    smtp: SmtpServer
    client: TestClient
    observer: PrefectClient
    env: dict[str, str]
    actions: Actions = field(default_factory=Actions)
    answers_sent: int = 0

    async def start(self, deployment: str, parameters: Mapping[str, Any]) -> UUID:
        from tests.support.prefect_stack import run

        return await run(deployment, parameters, self.env)

    async def states(self, run_ids: list[UUID]) -> dict[UUID, Any]:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        runs = await self.observer.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)), limit=len(run_ids)
        )
        return {r.id: r.state for r in runs}

    async def suspended(self, run_ids: list[UUID], timeout: float = 600) -> dict[UUID, str]:
        """Wait until every run is PAUSED or COMPLETED; their state types."""
        with self.actions.timing("waiting for Prefect runs"):
            return await self._suspended(run_ids, timeout)

    async def _suspended(self, run_ids: list[UUID], timeout: float) -> dict[UUID, str]:
        """A CRASHED run is left to tick, run every minute meanwhile as its schedule does:
        it gives crashed runs back to the pool (flows are replay-safe)."""
        deadline = time.monotonic() + timeout
        last_tick = time.monotonic()
        while True:
            states = await self.states(run_ids)
            kinds = {i: s.type.value if s else "" for i, s in states.items()}
            broken = {i: k for i, k in kinds.items() if k in ("FAILED", "CANCELLED")}
            if broken:
                raise RuntimeError(f"runs ended badly: {broken}")
            if len(kinds) == len(run_ids) and all(
                k in ("PAUSED", "COMPLETED") for k in kinds.values()
            ):
                return kinds
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not suspended after {timeout} s: {kinds}")
            if time.monotonic() - last_tick >= TICK_SECONDS:
                await self.tick()
                last_tick = time.monotonic()
            await asyncio.sleep(0.2)

    async def settle(self, run_ids: list[UUID]) -> dict[UUID, str]:
        """Until every run is suspended with nothing due nor a wake-up pending (tick's work
        done as soon as needed: tick's minute is not waited for)."""
        from models.core.db import session_scope
        from models.core.waits import due_waits, pending_resumes

        while True:
            kinds = await self.suspended(run_ids)
            with session_scope() as session:
                waiting = bool(pending_resumes(session) or due_waits(session))
            if not waiting:
                return kinds
            await self.tick()

    async def tick(self) -> None:
        from flows.tick import tick

        with self.actions.timing("tick flow"):
            await tick()
        self.actions.ticks += 1

    async def resume_form(self, run_id: UUID, values: dict[str, Any]) -> None:
        """The coordinator's answer in the Prefect UI: the run resumed with its input."""
        from prefect.flow_runs import aresume_flow_run

        from tests.support.prefect_stack import form_schema

        with self.actions.timing("coordinator forms"):
            await form_schema(run_id)  # what the UI shows before anyone can answer
            await aresume_flow_run(run_id, run_input=values)
        self.actions.forms_answered += 1

    def move_clock_past(self, moment: datetime) -> None:
        from models.core import clock
        from models.core.db import session_scope

        with session_scope() as session:
            delta = moment - clock.now(session)
            if delta > timedelta(0):
                clock.advance(session=session, delta=delta + timedelta(minutes=1))
                self.actions.clock_moves += 1

    def post_link(self, token: str, values: dict[str, Any]) -> str:
        """A partner opens the mailed link (the page), then submits the form.

        Each answer comes from an address of its own, forwarded by the reverse proxy the
        service trusts (`installation`): people answer from their own machines, and the
        service's per-address limits (30 applications an hour) count each of them apart,
        as in production; from one address a year's second call would be refused (429)."""
        self.answers_sent += 1
        n = self.answers_sent
        address = {"x-forwarded-for": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}
        with self.actions.timing("partner links (page, answer, resume)"):
            page = self.client.get(f"/r/{token}", headers=address)
            if page.status_code != 200:
                raise RuntimeError(f"link page {page.status_code}: {page.text[:300]}")
            done = self.client.post(f"/r/{token}", data=values, headers=address)
        if done.status_code != 200:
            raise RuntimeError(f"answer refused {done.status_code}: {done.text[:500]}")
        self.actions.links_answered += 1
        return str(done.text)


@contextlib.asynccontextmanager
async def installation(db_url: str, flow_runs_api_url: str) -> AsyncIterator[Installation]:
    """The SMTP server and the service for the current app database (ctx.database)."""
    from fastapi.testclient import TestClient
    from prefect.client.orchestration import PrefectClient

    from bench.run import settings_env
    from service.main import create_app
    from tests.support.env import PREFECT_API_URL, PREFECT_AUTH
    from tests.support.prefect_stack import run_env
    from tests.support.smtp import SmtpServer

    with (
        SmtpServer() as smtp,
        settings_env(
            CLSM_SMTP_HOST=smtp.host,
            CLSM_SMTP_PORT=str(smtp.port),
            CLSM_SMTP_SECURITY="none",
            CLSM_TRUSTED_PROXIES="testclient",  # the TestClient's peer: see post_link
        ),
    ):
        async with PrefectClient(api=PREFECT_API_URL, auth_string=PREFECT_AUTH) as observer:
            with TestClient(create_app(), raise_server_exceptions=False) as client:
                yield Installation(
                    db_url=db_url,
                    smtp=smtp,
                    client=client,
                    observer=observer,
                    env=run_env(db_url, PREFECT_API_URL=flow_runs_api_url),
                )
