"""The production installation's memory while cases wait: Prefect's server on PostgreSQL.

`waiting_on_postgresql` runs the waiting_cost series (bench/waiting.py: probe runs
suspended on a partner's answer, 10 → 100 → 500) with the app database and Prefect's own
on PostgreSQL, and beside Prefect's server and worker it runs the other programs of the
deployment guide (two service processes `clsm serve`, the heartbeat `python -m
flows.tick`) and PostgreSQL itself. At each level every process is listed with its
proportional memory (PSS: shared pages, e.g. PostgreSQL's shared_buffers, divided among
the processes that map them, so that the sum is what the machine holds).

Counts: `BENCH_WAITING_LEVELS=10,30` (development on a shared machine) replaces the levels.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from bench.run import ROOT, Context, Result, Target
from bench.waiting import (
    ANSWER_DEPLOYMENT,
    MIB,
    create_runs,
    launch,
    open_cases,
    restart_server,
    seed_partner,
    states,
    through_worker,
    wait_all,
)

GROWTH_TARGET_PERCENT = 5.0
WHOLE_TARGET_MIB = 512.0


async def _not_suspended(run_ids: Iterable[UUID]) -> int:
    """How many of the runs are not suspended (left behind by a launcher)."""
    found = await states(run_ids)
    return sum(1 for state in found.values() if state is None or state.name != "Suspended")


def _levels(ctx: Context) -> list[int]:
    chosen = os.environ.get("BENCH_WAITING_LEVELS", "")
    if chosen:
        return [int(x) for x in chosen.split(",")]
    return [1, 3] if ctx.smoke else [10, 100, 500]


def _tree(pid: int) -> list[Any]:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _pss_mib(pid: int) -> tuple[float, int]:
    """Proportional memory of a process and its descendants (MiB), and how many they are."""
    import psutil

    total, count = 0, 0
    for process in _tree(pid):
        try:
            total += process.memory_full_info().pss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return round(total / MIB, 1), count


def _postmaster(ctx: Context) -> int:
    data = ctx.postgres().data
    return int((Path(data) / "postmaster.pid").read_text().splitlines()[0])


def _programs(
    ctx: Context, extra: dict[str, subprocess.Popen[bytes]], stack: Any
) -> dict[str, int]:
    return {
        "prefect_server": stack.server.pid,
        "prefect_worker": stack.worker.pid,
        "postgresql": _postmaster(ctx),
        **{name: process.pid for name, process in extra.items()},
    }


def _snapshot(programs: dict[str, int], samples: int) -> dict[str, Any]:
    """Per program the median PSS of `samples` readings a second apart, and the total."""
    readings: dict[str, list[float]] = {name: [] for name in programs}
    counts: dict[str, int] = {}
    for index in range(samples):
        if index:
            time.sleep(1)
        for name, pid in programs.items():
            mib, counts[name] = _pss_mib(pid)
            readings[name].append(mib)
    by_program = {
        name: {"pss_mib": round(statistics.median(values), 1), "processes": counts[name]}
        for name, values in readings.items()
    }
    return {
        "programs": by_program,
        "total_mib": round(sum(p["pss_mib"] for p in by_program.values()), 1),
    }


def _connect(url: str) -> Any:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database
    )


def _prefect_database_mib(url: str) -> float | None:
    """Size of Prefect's PostgreSQL database (None on a shared SQLite stack: smoke)."""
    return database_footprint(url, ())["mib"] if url.startswith("postgresql") else None


PREFECT_TABLES = ("flow_run", "task_run", "flow_run_state", "task_run_state", "log", "events")


def database_footprint(url: str, tables: tuple[str, ...] = PREFECT_TABLES) -> dict[str, Any]:
    """A PostgreSQL database's size (MiB) and the rows of some of its tables."""
    with _connect(url) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        rows: dict[str, int] = {}
        for table in tables:
            exists = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if exists is not None and exists[0] is not None:
                counted = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                rows[table] = int(counted[0]) if counted else 0
    return {"mib": round(int(row[0]) / MIB, 2), "rows": rows}


def _spawn(
    name: str, command: list[str], env: dict[str, str], logs: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdout=(logs / f"{name}.log").open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def _wait_http(url: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer")


def waiting_on_postgresql(ctx: Context) -> Result:
    """Every process of the installation while 10 → 500 cases wait, both databases on
    PostgreSQL; the growth while working and the whole installation's memory."""
    from tests.support.env import free_port
    from tests.support.prefect_stack import run_env, stop_process

    levels = _levels(ctx)
    samples = 1 if ctx.smoke else 3
    db_url = ctx.database("postgresql")
    partner = seed_partner()
    env = run_env(db_url)
    due_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()

    def params(first: int, last: int) -> dict[int, dict[str, Any]]:
        return {
            i: {"case_id": i, "contact_id": partner.contact_id, "due_at": due_at}
            for i in range(first, last + 1)
        }

    figures: dict[str, Any] = {"levels": {}}
    logs = ctx.tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    extra: dict[str, subprocess.Popen[bytes]] = {}
    with ctx.prefect("postgresql") as stack:
        prefect_url = ctx.prefect_database_url
        program_env = {**os.environ, "CLSM_DATABASE_URL": db_url}
        try:
            for n in (1,) if ctx.smoke else (1, 2):
                port = free_port()
                extra[f"service_{n}"] = _spawn(
                    f"service-{n}",
                    [str(ROOT / ".venv" / "bin" / "clsm"), "serve", "--port", str(port)],
                    program_env,
                    logs,
                )
                _wait_http(f"http://127.0.0.1:{port}/login")
            extra["heartbeat"] = _spawn(
                "heartbeat",
                [str(ROOT / ".venv" / "bin" / "python"), "-m", "flows.tick"],
                program_env,
                logs,
            )
            open_cases(partner, range(1, levels[-1] + 1))
            runs, batch = asyncio.run(
                through_worker(
                    stack, ANSWER_DEPLOYMENT, params(1, levels[0]), env, "Suspended", 300
                )
            )
            figures["worker_batch"] = batch.__dict__
            # as waiting_cost: the series starts from the server restarted with the first
            # runs waiting, then it works (creating and suspending the others) unrestarted
            restart_server(stack, runs.values())
            done = levels[0]
            for level in levels:
                if level > done:
                    pending = asyncio.run(
                        create_runs(
                            ANSWER_DEPLOYMENT, params(done + 1, level), env, for_worker=False
                        )
                    )
                    launch(list(pending.values()), db_url)
                    allowed = len(pending) // 100  # at most 1 %, counted in the figures
                    asyncio.run(
                        wait_all(pending.values(), "Suspended", timeout=300, allowed_late=allowed)
                    )
                    runs.update(pending)
                    done = level
                snapshot = _snapshot(_programs(ctx, extra, stack), samples)
                snapshot["prefect_database_mib"] = _prefect_database_mib(prefect_url)
                snapshot["runs_not_suspended"] = asyncio.run(_not_suspended(runs.values()))
                figures["levels"][str(level)] = snapshot
        finally:
            for process in extra.values():
                stop_process(process)

    low, high = figures["levels"][str(levels[0])], figures["levels"][str(levels[-1])]
    growth = round((high["total_mib"] - low["total_mib"]) / low["total_mib"] * 100, 1)
    figures["growth_percent"] = growth
    figures["growth_percent_by_program"] = {
        name: round(
            (high["programs"][name]["pss_mib"] - value["pss_mib"]) / value["pss_mib"] * 100, 1
        )
        for name, value in low["programs"].items()
    }
    listed = ", ".join(f"{name} {value['pss_mib']}" for name, value in high["programs"].items())
    return Result(
        figures=figures,
        targets=[
            Target(
                f"memory growth {levels[0]} → {levels[-1]} waiting cases while working, "
                "Prefect on PostgreSQL",
                f"≤ {GROWTH_TARGET_PERCENT:g} %",
                growth,
                "%",
                met=growth <= GROWTH_TARGET_PERCENT,
                note="every program of the installation, PSS, server not restarted",
            ),
            Target(
                f"whole installation's memory with {levels[-1]} waiting cases",
                f"≤ {WHOLE_TARGET_MIB:g} MiB",
                high["total_mib"],
                "MiB",
                met=high["total_mib"] <= WHOLE_TARGET_MIB,
                note=f"MiB by program: {listed}",
            ),
        ],
        settings={
            "levels": levels,
            "app_database": "postgresql",
            "prefect_server_database": "postgresql (asyncpg)",
            "programs": "Prefect server, 1 process worker, PostgreSQL (both databases), "
            "2 service processes (1 in smoke), the heartbeat",
            "memory": "PSS (smaps), median of readings 1 s apart, run processes exited",
        },
        notes=[
            "runs: the waiting_cost probe (a case waiting on a partner's answer, suspended); "
            f"the first {levels[0]} through the worker, the others by the launcher of "
            "bench/waiting.py (the same engine calls in one process)",
            "PostgreSQL: every backend of the server (postmaster tree), both databases; its "
            "shared_buffers count once in PSS",
        ],
    )
