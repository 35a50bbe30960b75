"""A year of operation: one CLSM's year, then a regional installation's month, clock moved.

Both go through the real stack with the drivers of bench/whole.py (partners answer mailed
links through the service, the coordinator answers Prefect forms, the clock is moved with
`models.core.clock`), both databases on PostgreSQL and Prefect's server with the retention
of deploy/env/prefect-server.env.example. The heartbeat runs as in production (`heartbeat()`
of flows/tick.py, the pass of the `python -m flows.tick` process: no flow run), as soon as
every run is suspended.

- one CLSM's year: immersion sessions (16 places; the second one six months after the first)
  and saisines launched each quarter (every third escalated to level 2: meeting, decision,
  action), the clock moved to the end of the year at last (reminders queued on the way);
- a regional installation: 30 CLSMs of one app database, one month of their activity (one
  saisine each, every third escalated).

Reported for each: the size of both databases at the start and the end and per case,
Prefect's flow runs (in all, by flow, `tick` included) against the passes the cases made,
Prefect's rows by table; at the end of the year, the history page's p95 through a
`clsm serve` process and the memory (PSS) of every process of the installation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from uuid import UUID

from bench.drive import Installation, installation, passes
from bench.run import ROOT, Context, Result, Target, distribution, settings_env
from bench.whole import drive_saisines, drive_session

PASSWORD = "mot-de-passe-du-banc"
HISTORY_TARGET_MS = 100.0
# deploy/env/prefect-server.env.example (README, "A year of operation: what Prefect keeps")
RETENTION = {
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
    "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": "2592000",
    "PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES": (
        '{"prefect.flow-run.heartbeat": 86400}'
    ),
    "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": "P7D",
}
MONTH = timedelta(days=365 / 12)


class Heartbeat(Installation):
    """An installation whose heartbeat is the production process's pass, not the `tick` flow."""

    async def tick(self) -> None:
        from flows.tick import heartbeat

        with self.actions.timing("heartbeat"):
            await heartbeat()
        self.actions.ticks += 1


@contextlib.asynccontextmanager
async def heartbeat_installation(db_url: str) -> Any:
    from tests.support.env import PREFECT_API_URL

    async with installation(db_url, PREFECT_API_URL) as inst:
        yield Heartbeat(**{f.name: getattr(inst, f.name) for f in dataclasses.fields(inst)})


# -- sizes and counts ---------------------------------------------------------------------
def sizes(ctx: Context, app_url: str) -> dict[str, Any]:
    """Both databases: size (MiB) and rows of their main tables (Prefect's: None when the
    stack is shared with the test suite)."""
    from bench.installation import database_footprint

    app = database_footprint(app_url, ("audit_event", "outbox", "wait", "step_link"))
    prefect_url = ctx.prefect_database_url if ctx._shared_stack is None else ""
    prefect = database_footprint(prefect_url) if prefect_url.startswith("postgresql") else None
    return {"app": app, "prefect": prefect}


def growth(start: dict[str, Any], end: dict[str, Any], cases: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ("app", "prefect"):
        if start[name] is None or end[name] is None:
            found[name] = None
            continue
        grown = end[name]["mib"] - start[name]["mib"]
        found[name] = {
            "mib": round(grown, 2),
            "kib_per_case": round(grown * 1024 / cases, 1),
            "rows_per_case": {
                table: round((n - start[name]["rows"].get(table, 0)) / cases, 1)
                for table, n in end[name]["rows"].items()
            },
        }
    return found


async def flow_runs(inst: Installation, run_ids: list[UUID]) -> dict[str, Any]:
    """Prefect's flow runs: in all and by flow (`tick` listed even at 0), and those of the
    cases driven here with their passes."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterId

    observer = inst.observer
    by_flow: dict[str, int] = {"tick": 0}
    for flow in await observer.read_flows():
        by_flow[flow.name] = await observer.count_flow_runs(
            flow_filter=FlowFilter(id=FlowFilterId(any_=[flow.id]))
        )
    found = await passes(observer, run_ids)
    return {
        "total": await observer.count_flow_runs(),
        "by_flow": by_flow,
        "cases_runs": len(run_ids),
        "passes": len(found),
        "crashed_passes": sum(p.outcome == "CRASHED" for p in found),
    }


def mails_by_template() -> dict[str, int]:
    from sqlmodel import select

    from models.core.db import session_scope
    from models.core.outbox import OutboxMessage

    with session_scope() as session:
        return dict(Counter(session.exec(select(OutboxMessage.template)).all()).most_common())


def clock_days(start: float) -> float:
    from models.core import clock
    from models.core.db import session_scope

    with session_scope() as session:
        return round((clock.now(session).timestamp() - start) / 86400, 1)


def now_timestamp() -> float:
    from models.core import clock
    from models.core.db import session_scope

    with session_scope() as session:
        return clock.now(session).timestamp()


# -- one CLSM's year ------------------------------------------------------------------------
@contextlib.contextmanager
def next_session(slug: str) -> Iterator[None]:
    """drive_session again in the same database: the CLSM already built, and only the mails
    queued from now on (the first session's are answered)."""
    from sqlmodel import select

    import tests.support.immersion as support
    from models.core.people import Clsm

    first = support.outbox()
    marker = max((m.id for m in first), default=0)
    every_mail = support.outbox

    def existing(session: Any) -> tuple[Any, list[Any]]:
        return session.exec(select(Clsm).where(Clsm.slug == slug)).one(), []

    def since(template: str | None = None) -> list[Any]:
        return [m for m in every_mail(template) if m.id > marker]

    with (
        mock.patch.object(support, "build_clsm", existing),
        mock.patch.object(support, "outbox", since),
    ):
        yield


@contextlib.contextmanager
def cell_once() -> Iterator[None]:
    """drive_saisines again in the same database: the cell is built the first time only."""
    import tests.support.saisine as support

    build = support.build_cell
    built: list[Any] = []

    def once(session: Any, slug: str = "poitiers") -> Any:
        if not built:
            built.append(build(session, slug))
        return built[0]

    with mock.patch.object(support, "build_cell", once):
        yield


def session_slug(run_id: UUID) -> str:
    from models.core.db import session_scope
    from models.core.people import Clsm
    from models.immersion.common import session_by_run

    with session_scope() as session:
        row = session_by_run(session, str(run_id))
        assert row is not None
        clsm = session.get(Clsm, row.clsm_id)
        assert clsm is not None
        return clsm.slug


async def drive_year(inst: Installation, plan: dict[str, int], run_ids: list[UUID]) -> Any:
    """Sessions at months 0 and 6, saisines each quarter, then the clock to the year's end."""
    start = now_timestamp()
    timeline: list[tuple[float, str]] = [(6.0 * n, "session") for n in range(plan["sessions"])]
    timeline += [(3.0 * q, "saisines") for q in range(plan["quarters"])]
    per_quarter = plan["saisines"] // plan["quarters"]
    done: dict[str, Any] = {"sessions": [], "saisines": Counter()}
    slug = ""
    with cell_once():
        for month, kind in sorted(timeline, key=lambda e: (e[0], e[1] != "saisines")):
            inst.move_clock_past(_at(start, month))
            print(f"year: month {month:g}, {kind}", flush=True)
            if kind == "session":
                ids: list[UUID] = []
                with next_session(slug) if slug else contextlib.nullcontext():
                    status = await drive_session(
                        inst, plan["participants"], ids, whole=bool(plan["whole_sessions"])
                    )
                slug = slug or session_slug(ids[0])
                done["sessions"].append(status)
            else:
                ids = []
                closed = await drive_saisines(inst, per_quarter, plan["level2_every"], ids)
                done["saisines"].update(closed)
            run_ids.extend(ids)
    inst.move_clock_past(_at(start, 12.0))
    await inst.settle(run_ids)
    done["saisines"] = dict(done["saisines"])
    done["clock_days"] = clock_days(start)
    return done


def _at(start: float, month: float) -> datetime:
    return datetime.fromtimestamp(start, UTC) + MONTH * month


# -- the regional installation ---------------------------------------------------------------
@contextlib.contextmanager
def region(count: int) -> Iterator[list[str]]:
    """drive_saisines over `count` CLSMs: every cell built, each saisine in the next one."""
    import tests.saisine.test_saisine_flow as flow_tests
    import tests.support.saisine as support

    slugs = [f"clsm-region-{n:02d}" for n in range(1, count + 1)]
    build = support.build_cell
    make = flow_tests.intake_parameters
    turn = iter(range(10**6))

    def every_cell(session: Any, slug: str = "") -> Any:
        cells = [build(session, s) for s in slugs]
        return cells[0]

    def intake(*, urgent: bool = False) -> dict[str, Any]:
        parameters = make(urgent=urgent)
        parameters["intake"]["clsm"] = slugs[next(turn) % count]
        return parameters

    with (
        mock.patch.object(support, "build_cell", every_cell),
        mock.patch.object(flow_tests, "intake_parameters", intake),
    ):
        yield slugs


# -- at the end: the history page and every process -----------------------------------------
def history_p95(db_url: str, rounds: int, logs: Any) -> dict[str, Any]:
    """p50/p95 of every case's history page (HTML), its coordinator logged in, through a
    `clsm serve` process; that process is left running for the memory reading."""
    import httpx
    from sqlmodel import select

    from bench.installation import _spawn, _wait_http
    from models.core.db import session_scope
    from models.core.enums import Role
    from models.core.people import Clsm
    from models.immersion.tables import ImmersionSession
    from models.saisine.tables import Saisine
    from tests import factories
    from tests.support.env import free_port
    from tests.support.service_kit import login_data

    cases: dict[str, list[str]] = {}  # coordinator's e-mail -> history paths
    with session_scope() as session:
        for clsm in session.exec(select(Clsm)).all():
            paths = [
                f"/cases/session/{s.id}/history"
                for s in session.exec(
                    select(ImmersionSession).where(ImmersionSession.clsm_id == clsm.id)
                )
            ] + [
                f"/cases/saisine/{s.id}/history"
                for s in session.exec(select(Saisine).where(Saisine.clsm_id == clsm.id))
            ]
            if paths:
                user = factories.user(session, clsm, Role.COORDINATOR, PASSWORD)
                cases[user.email] = paths
    port = free_port()
    process = _spawn(
        "service",
        [str(ROOT / ".venv" / "bin" / "clsm"), "serve", "--port", str(port)],
        {**os.environ, "CLSM_DATABASE_URL": db_url},
        logs,
    )
    base = f"http://127.0.0.1:{port}"
    _wait_http(f"{base}/login")
    durations: list[float] = []
    for email, paths in cases.items():
        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.post("/login", data=login_data(client, email, PASSWORD))
            if login.status_code not in (200, 303):
                raise RuntimeError(f"login refused {login.status_code}")
            for path in paths:  # warm up and check
                page = client.get(path)
                if page.status_code != 200:
                    raise RuntimeError(f"{path}: {page.status_code} {page.text[:200]}")
            for _ in range(rounds):
                for path in paths:
                    started = time.perf_counter()
                    client.get(path)
                    durations.append((time.perf_counter() - started) * 1000)
    return {
        "process": process,
        "cases": sum(len(p) for p in cases.values()),
        "pages": distribution(durations),
    }


def memory(ctx: Context, stack: Any, extra: dict[str, subprocess.Popen[bytes]]) -> dict[str, Any]:
    """PSS of every program at the end (the driver: this process alone, which held the
    service's TestClient and ran the heartbeat's passes)."""
    import psutil

    from bench.installation import MIB, _postmaster, _snapshot

    programs = {"prefect_server": stack.server.pid, "postgresql": _postmaster(ctx)}
    if stack.worker is not None:
        programs["prefect_worker"] = stack.worker.pid
    programs.update({name: process.pid for name, process in extra.items()})
    snapshot = _snapshot(programs, 1 if ctx.smoke else 3)
    driver = round(psutil.Process().memory_full_info().pss / MIB, 1)
    snapshot["programs"]["bench_driver"] = {"pss_mib": driver, "processes": 1}
    snapshot["total_with_driver_mib"] = round(snapshot["total_mib"] + driver, 1)
    return snapshot


# -- the benchmark -------------------------------------------------------------------------
def _period(ctx: Context, plan: dict[str, int], regional: bool) -> dict[str, Any]:
    from bench.installation import _spawn
    from tests.support.prefect_stack import stop_process

    figures: dict[str, Any] = {"plan": dict(plan)}
    with settings_env(**RETENTION), ctx.prefect("postgresql") as stack:
        db_url = ctx.database("postgresql")
        figures["start"] = sizes(ctx, db_url)
        run_ids: list[UUID] = []

        async def drive() -> None:
            started = time.perf_counter()
            async with heartbeat_installation(db_url) as inst:
                if regional:
                    with region(plan["clsms"]):
                        closed = await drive_saisines(
                            inst, plan["clsms"], plan["level2_every"], run_ids
                        )
                    start = now_timestamp()
                    inst.move_clock_past(_at(start, 1.0))
                    await inst.settle(run_ids)
                    figures["done"] = {"saisines": closed}
                else:
                    figures["done"] = await drive_year(inst, plan, run_ids)
                figures["wall_seconds"] = round(time.perf_counter() - started, 1)
                figures["driver"] = inst.actions.figures()
                figures["prefect_flow_runs"] = await flow_runs(inst, run_ids)
                figures["mails_by_template"] = mails_by_template()

        print(f"year: {'regional month' if regional else 'one CLSM'} starts", flush=True)
        asyncio.run(drive())
        cases = len(run_ids)
        figures["cases"] = cases
        figures["end"] = sizes(ctx, db_url)
        figures["growth"] = growth(figures["start"], figures["end"], cases)
        if regional:
            return figures
        logs = ctx.tmp / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        extra: dict[str, subprocess.Popen[bytes]] = {}
        try:
            history = history_p95(db_url, ctx.scale(20, 2), logs)
            extra["service"] = history.pop("process")
            figures["history"] = history
            extra["heartbeat"] = _spawn(
                "heartbeat",
                [str(ROOT / ".venv" / "bin" / "python"), "-m", "flows.tick"],
                {**os.environ, "CLSM_DATABASE_URL": db_url},
                logs,
            )
            time.sleep(3)  # its imports done and a first pass made
            figures["memory_at_the_end"] = memory(ctx, stack, extra)
        finally:
            for process in extra.values():
                stop_process(process)
    return figures


def year(ctx: Context) -> Result:
    """One CLSM's year, then 30 CLSMs' month, through the real stack with the clock moved."""
    one = {
        "sessions": ctx.scale(2, 1),
        "participants": ctx.scale(16, 4),
        "saisines": ctx.scale(12, 2),
        "quarters": ctx.scale(4, 1),
        "level2_every": ctx.scale(3, 2),
        "whole_sessions": ctx.scale(1, 0),  # smoke: each session up to its selection
    }
    regional = {"clsms": ctx.scale(30, 2), "level2_every": ctx.scale(3, 0)}
    figures = {
        "one_clsm_year": _period(ctx, one, regional=False),
        "regional_month": _period(ctx, regional, regional=True),
    }
    targets = []
    for name, label in (("one_clsm_year", "a year of one CLSM"), ("regional_month", "")):
        period = figures[name]
        runs = period["prefect_flow_runs"]
        # on its own server every run there is the period's; a shared one (smoke in the
        # test suite) also holds other tests' runs
        own = ctx._shared_stack is None
        kept = runs["total"] if own else runs["cases_runs"] + runs["by_flow"]["tick"]
        bound = runs["passes"]
        label = label or f"a month of {regional['clsms']} CLSMs"
        targets.append(
            Target(
                f"{label}: Prefect runs kept",
                "≤ cases × passes + a bounded housekeeping tail",
                kept,
                "runs",
                met=kept <= bound,
                note=(
                    f"{period['cases']} cases, {runs['passes']} passes, tick runs "
                    f"{runs['by_flow']['tick']}; runs on the server {runs['total']}; "
                    + _sizes_note(period)
                ),
            )
        )
    history = figures["one_clsm_year"]["history"]["pages"]
    memory_end = figures["one_clsm_year"]["memory_at_the_end"]
    targets.append(
        Target(
            "history page p95 at the end of the year",
            f"p95 < {HISTORY_TARGET_MS:g} ms (as history_volume)",
            history["p95"],
            "ms",
            met=history["p95"] < HISTORY_TARGET_MS,
            note=f"{figures['one_clsm_year']['history']['cases']} cases, through `clsm serve`",
        )
    )
    targets.append(
        Target(
            "memory of every process at the end of the year",
            "reported",
            memory_end["total_with_driver_mib"],
            "MiB",
            met=True,
            note="MiB by program: "
            + ", ".join(f"{n} {v['pss_mib']}" for n, v in memory_end["programs"].items()),
        )
    )
    return Result(
        figures=figures,
        targets=targets,
        settings={
            "one_clsm_year": one,
            "regional_month": regional,
            "app_database": "postgresql",
            "prefect_server_database": "postgresql (asyncpg)"
            if ctx._shared_stack is None
            else "shared stack (smoke in the test suite)",
            "prefect_retention": RETENTION,
            "heartbeat": "flows.tick.heartbeat() in the driver as soon as every run is "
            "suspended (the production process's pass; no flow run)",
        },
        notes=[
            "runs kept: Prefect's vacuum removes finished runs 30 days after their end in "
            "real time; the clock moved here is the app's, so every run of the period is "
            "still kept at the end (the worst case: a year with no vacuum at all)",
            "the bound: each case's run counts once however many passes it made; the "
            "heartbeat adds no run (tick runs 0), so the housekeeping tail is empty",
            "one CLSM's year: the sessions are driven for the CLSM of tests.support.immersion"
            " and the saisines for the cell of tests.support.saisine, in the same app "
            "database and installation",
            "regional month: one saisine per CLSM, no immersion session (a session spans "
            "three months; two a year per CLSM)",
            "history p95: every case's HTML history page, its CLSM's coordinator logged in, "
            "through a `clsm serve` process on the year's PostgreSQL database",
        ],
    )


def _sizes_note(period: dict[str, Any]) -> str:
    parts = []
    for name in ("app", "prefect"):
        start, end, grown = period["start"][name], period["end"][name], period["growth"][name]
        if start is None or end is None or grown is None:
            continue
        parts.append(f"{name} {start['mib']} → {end['mib']} MiB ({grown['kib_per_case']} KiB/case)")
    return "; ".join(parts)
