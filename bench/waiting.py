"""Waiting on partners: what an open case costs while it waits, and how fast an answer acts.

`waiting_cost`: memory of the Prefect worker and server with 10, 100 and 500 cases waiting,
our way (suspended runs: no process kept) against `pause_flow_run` (one live process each).
`answer_latency`: a partner's POST on a link until the confirmation page, and until the next
step's mail is in the outbox, while Prefect and the worker resume the previous answers.

A process worker starts a fresh Python process per run, which costs seconds of CPU on this
machine. To reach hundreds of suspended runs within the time budget, the runs beyond the
first batch are executed by launcher processes (`python -m bench.waiting RUN_ID...`, one per core):
the same Prefect engine calls the worker's process makes (`load_flow_run`, `run_flow`),
without paying the interpreter start-up per run. A suspended run holds the same records
either way; the worker's own rate is measured and reported beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from bench.run import ROOT, Context, Result, Target, distribution

if TYPE_CHECKING:
    from tests.support.prefect_stack import PrefectStack
    from tests.support.smtp import SmtpServer

ANSWER_DEPLOYMENT = "probe-answer/probe-answer"
PAUSE_DEPLOYMENT = "probe-pause/probe-pause"
MIB = 1024 * 1024


# -- processes and their memory ---------------------------------------------------------
@dataclass
class Footprint:
    """Resident memory of a process and all its descendants, and how many they are."""

    rss_mib: float
    processes: int
    descendants: int  # of a worker: the processes of its runs (supervisor and engine)


def footprint(pid: int) -> Footprint:
    import psutil

    root = psutil.Process(pid)
    rss = root.memory_info().rss
    processes = 1
    for child in root.children(recursive=True):
        try:
            rss += child.memory_info().rss
            processes += 1
        except psutil.NoSuchProcess:
            continue
    return Footprint(round(rss / MIB, 1), processes, processes - 1)


def settled(pids: list[int], samples: int) -> list[Footprint]:
    """Per process tree, the median RSS of `samples` readings taken a second apart."""
    seen: list[list[Footprint]] = []
    for index in range(samples):
        if index:
            time.sleep(1)
        seen.append([footprint(pid) for pid in pids])
    result = []
    for position in range(len(pids)):
        readings = [round_[position] for round_ in seen]
        middle = statistics.median(f.rss_mib for f in readings)
        last = readings[-1]
        result.append(Footprint(round(middle, 1), last.processes, last.descendants))
    return result


def children_cpu(pid: int) -> float:
    """CPU seconds of the process's children it has reaped (the worker's run processes)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.children_user + times.children_system)


# -- cases waiting on a partner ---------------------------------------------------------
@dataclass
class Partner:
    contact_id: int
    owner_id: int


def seed_partner() -> Partner:
    from models.core.db import session_scope
    from tests import factories

    with session_scope() as session:
        clsm = factories.clsm(session, slug="bench", name="CLSM de banc d'essai")
        organisation = factories.organisation(session, clsm, "Structure partenaire")
        contact = factories.contact(session, organisation, "Camille Partenaire")
        assert clsm.id is not None and contact.id is not None
        return Partner(contact_id=contact.id, owner_id=clsm.id)


def open_cases(partner: Partner, case_ids: Iterable[int]) -> dict[int, str]:
    """Open test cases with a link to the partner each; case id -> link token."""
    from models.core.db import session_scope
    from models.core.enums import CaseType
    from models.core.links import issue_link, link_token
    from models.core.people import Clsm
    from tests.support.service_kit import STEP, open_case

    tokens: dict[int, str] = {}
    with session_scope() as session:
        owner = session.get(Clsm, partner.owner_id)
        assert owner is not None
        for case_id in case_ids:
            open_case(session, case_id, owner)
            link = issue_link(
                session=session,
                contact_id=partner.contact_id,
                case_type=CaseType.SESSION,
                case_id=case_id,
                step=STEP,
            )
            tokens[case_id] = link_token(link)
    return tokens


async def create_runs(
    deployment: str,
    parameters: Mapping[int, dict[str, Any]],
    env: Mapping[str, str],
    *,
    for_worker: bool,
) -> dict[int, UUID]:
    """Create one flow run per case: SCHEDULED for the worker, or PENDING for the launcher
    (a worker only takes scheduled runs, so it leaves those alone)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Pending, Scheduled

    async with get_client() as client:
        found = await client.read_deployment_by_name(deployment)

        async def one(case_id: int) -> tuple[int, UUID]:
            run = await client.create_flow_run_from_deployment(
                found.id,
                parameters=parameters[case_id],
                state=Scheduled() if for_worker else Pending(),
                job_variables={"env": dict(env)},
            )
            return case_id, run.id

        # one at a time: concurrent creations contend for the server's SQLite database
        return dict([await one(case_id) for case_id in parameters])


async def states(run_ids: Iterable[UUID]) -> dict[UUID, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids = list(run_ids)
    found: dict[UUID, Any] = {}
    async with get_client() as client:
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=200
            )
            found.update({run.id: run.state for run in runs})
    return found


async def wait_all(
    run_ids: Iterable[UUID], name: str, timeout: float, allowed_late: int = 0
) -> float:
    """Wait until every run is in the state named `name` (e.g. Suspended); seconds taken.

    With `allowed_late`, up to that many runs may still be elsewhere at the timeout (a run
    its launcher left behind among hundreds): the caller records them rather than losing
    the whole benchmark."""
    ids = list(run_ids)
    started = time.monotonic()
    while True:
        found = await states(ids)
        failed = [
            s for s in found.values() if s is not None and s.type.value in ("FAILED", "CRASHED")
        ]
        if failed:
            raise RuntimeError(f"a probe run ended {failed[0].type.value}: {failed[0].message}")
        if all(s is not None and s.name == name for s in found.values()) and len(found) == len(ids):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            late = sum(1 for s in found.values() if s is None or s.name != name)
            if late <= allowed_late:
                return time.monotonic() - started
            raise TimeoutError(f"{late} of {len(ids)} runs not {name} after {timeout:.0f} s")
        await asyncio.sleep(0.5)


@dataclass
class Launch:
    runs: int
    wall_seconds: float
    cpu_seconds: float


def launch(run_ids: list[UUID], db_url: str, processes: int = 2) -> Launch:
    """Execute PENDING runs in launcher processes (one per core) until each suspends."""
    started = time.perf_counter()
    shares = [share for share in (run_ids[i::processes] for i in range(processes)) if share]
    launcher_env = {**os.environ, "CLSM_DATABASE_URL": db_url}
    cpu = 0.0
    with contextlib.ExitStack() as files:
        running = []
        for share in shares:
            output = files.enter_context(tempfile.TemporaryFile("w+"))
            launcher = subprocess.Popen(
                [sys.executable, "-m", "bench.waiting", *(str(i) for i in share)],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=launcher_env,
                text=True,
            )
            running.append((launcher, output))
        for launcher, output in running:
            launcher.wait()
            output.seek(0)
            lines = output.read().strip().splitlines()
            if launcher.returncode != 0 or not lines:
                raise RuntimeError("launcher failed:\n" + "\n".join(lines[-40:]))
            cpu += json.loads(lines[-1])["cpu_seconds"]
    return Launch(len(run_ids), round(time.perf_counter() - started, 1), cpu)


def _launcher_main(run_ids: list[str]) -> None:
    """Run each flow run with the engine calls of `python -m prefect.engine`, in turn."""
    import prefect.flow_engine as engine
    from prefect.exceptions import Pause
    from prefect.flow_engine import load_flow, load_flow_run, run_flow

    # No heartbeats here: they only say a running run's process is alive, and this process
    # goes straight on to the next run, so a heartbeat could reach the server after the
    # run's suspension and look, to the automation that marks silent runs CRASHED, like a
    # run gone silent.
    engine._send_heartbeats = lambda *_args, **_kwargs: contextlib.nullcontext()  # type: ignore[assignment]
    flows: dict[UUID | None, Any] = {}
    for run_id in run_ids:
        for attempt in range(3):  # a busy server may drop a connection: try the run again
            try:
                flow_run = load_flow_run(UUID(run_id))
                if flow_run.deployment_id not in flows:
                    flows[flow_run.deployment_id] = load_flow(flow_run)
                run_flow(flows[flow_run.deployment_id], flow_run=flow_run)
                break
            except Pause:  # suspended: what the engine's process exits on
                break
            except Exception:
                if attempt == 2:
                    raise
                time.sleep(2)
    print(json.dumps({"cpu_seconds": round(time.process_time(), 1)}), flush=True)


@dataclass
class WorkerBatch:
    runs: int
    wall_seconds: float
    cpu_seconds_per_run: float


async def through_worker(
    stack: PrefectStack,
    deployment: str,
    parameters: Mapping[int, dict[str, Any]],
    env: Mapping[str, str],
    state_name: str,
    timeout: float,
) -> tuple[dict[int, UUID], WorkerBatch]:
    """Runs started together by the worker, until each is in `state_name`."""
    assert stack.worker is not None
    cpu_before = children_cpu(stack.worker.pid)
    started = time.perf_counter()
    runs = await create_runs(deployment, parameters, env, for_worker=True)
    await wait_all(runs.values(), state_name, timeout)
    wall = time.perf_counter() - started
    if state_name == "Suspended":  # the processes exit; their CPU is counted once reaped
        await wait_reaped(stack)
    cpu = children_cpu(stack.worker.pid) - cpu_before
    return runs, WorkerBatch(len(runs), round(wall, 1), round(cpu / max(len(runs), 1), 2))


async def wait_reaped(stack: PrefectStack, timeout: float = 60) -> None:
    assert stack.worker is not None
    deadline = time.monotonic() + timeout
    while footprint(stack.worker.pid).descendants and time.monotonic() < deadline:
        await asyncio.sleep(0.3)


async def cancel_runs(stack: PrefectStack, run_ids: Iterable[UUID], timeout: float = 30) -> int:
    """Cancel paused runs and make sure their processes are gone; returns how many were
    still alive at the deadline (then killed by pid)."""
    import psutil
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    ids = {str(i) for i in run_ids}
    async with get_client() as client:
        for run_id in sorted(ids):
            # a server too busy to answer must not keep the processes alive: killed below
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    client.set_flow_run_state(UUID(run_id), Cancelling(), force=True), 10
                )
    assert stack.worker is not None
    worker = psutil.Process(stack.worker.pid)
    deadline = time.monotonic() + timeout

    def ours() -> list[psutil.Process]:
        found = []
        for child in worker.children(recursive=True):
            try:
                if child.environ().get("PREFECT__FLOW_RUN_ID") in ids:
                    found.append(child)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    left = ours()
    while left and time.monotonic() < deadline:
        await asyncio.sleep(1)
        left = ours()
    for process in left:
        process.kill()
    return len(left)


# -- waiting_cost -----------------------------------------------------------------------
def waiting_cost(ctx: Context) -> Result:
    """Memory with 10, 100 and 500 cases waiting: suspended runs against paused runs."""
    from tests.support.prefect_stack import run_env

    levels = [1, 3] if ctx.smoke else [10, 100, 500]
    pause_levels = [1, 2] if ctx.smoke else [5, 15]
    db_url = ctx.database("sqlite")
    partner = seed_partner()
    env = run_env(db_url)
    due_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()

    def answer_params(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        return {i: {"case_id": i, "contact_id": partner.contact_id, "due_at": due_at} for i in ids}

    figures: dict[str, Any] = {}
    notes: list[str] = []
    with ctx.prefect() as stack:
        assert stack.worker is not None and stack.server is not None
        samples = 1 if ctx.smoke else 3

        def snapshot() -> dict[str, Any]:
            assert stack.worker is not None and stack.server is not None  # (restarted)
            worker, server = settled([stack.worker.pid, stack.server.pid], samples)
            return {
                "worker_mib": worker.rss_mib,
                "server_mib": server.rss_mib,
                "total_mib": round(worker.rss_mib + server.rss_mib, 1),
                "worker_processes": worker.processes,
                "server_processes": server.processes,
                "run_processes": worker.descendants,
            }

        # our way: the first level through the worker (its rate), the rest by the launcher
        ours: dict[str, Any] = {"levels": {}, "levels_after_server_restart": {}}
        open_cases(partner, range(1, levels[-1] + 1))
        runs, batch = asyncio.run(
            through_worker(
                stack,
                ANSWER_DEPLOYMENT,
                answer_params(range(1, levels[0] + 1)),
                env,
                "Suspended",
                timeout=300,
            )
        )
        ours["worker_batch"] = batch.__dict__
        launches: list[Launch] = []
        # The series starts from a server just restarted with the first runs waiting, and
        # ends with it restarted again, the same runs still waiting: the two restarted
        # figures are what the server holds because runs wait, without what it kept of the
        # work of creating and suspending them.
        restart_server(stack, runs.values())
        done = levels[0]
        for level in levels:
            if level > done:
                pending = asyncio.run(
                    create_runs(
                        ANSWER_DEPLOYMENT,
                        answer_params(range(done + 1, level + 1)),
                        env,
                        for_worker=False,
                    )
                )
                launches.append(launch(list(pending.values()), db_url))
                asyncio.run(wait_all(pending.values(), "Suspended", timeout=120))
                runs.update(pending)
                done = level
            ours["levels"][str(level)] = snapshot()
            ours["levels"][str(level)]["prefect_db_mib"] = prefect_db_mib()
        ours["levels_after_server_restart"][str(levels[0])] = ours["levels"][str(levels[0])]
        restart_server(stack, runs.values())
        ours["levels_after_server_restart"][str(levels[-1])] = snapshot()
        launched = sum(x.runs for x in launches)
        ours["launcher"] = {
            "runs": launched,
            "wall_seconds": round(sum(x.wall_seconds for x in launches), 1),
            "cpu_seconds_per_run": round(
                sum(x.cpu_seconds for x in launches) / max(launched, 1), 3
            ),
        }
        ours["worker_seconds_for_all_projected"] = round(
            batch.wall_seconds / batch.runs * levels[-1], 0
        )
        figures["suspended"] = ours

        # the alternative: pause_flow_run, one live process per waiting run
        paused: dict[str, Any] = {"levels": {}}
        pause_runs: dict[int, UUID] = {}
        first_case = levels[-1] + 1
        done = 0
        try:
            for level in pause_levels:
                ids = range(first_case + done, first_case + level)
                more, batch = asyncio.run(
                    through_worker(
                        stack,
                        PAUSE_DEPLOYMENT,
                        {i: {"case_id": i, "timeout": 900} for i in ids},
                        env,
                        "Paused",
                        timeout=120 + 4 * len(ids),
                    )
                )
                pause_runs.update(more)
                paused.setdefault("worker_batches", []).append(batch.__dict__)
                done = level
                paused["levels"][str(level)] = snapshot()
        finally:
            killed = asyncio.run(cancel_runs(stack, pause_runs.values()))
        paused["killed_after_cancel"] = killed
        paused["after_cleanup"] = snapshot()
        figures["paused"] = paused

    low, high = levels[0], levels[-1]
    first, last = ours["levels"][str(low)], ours["levels"][str(high)]
    growth = _growth(first["total_mib"], last["total_mib"])
    p_low, p_high = pause_levels[0], pause_levels[-1]
    per_run = (
        paused["levels"][str(p_high)]["total_mib"] - paused["levels"][str(p_low)]["total_mib"]
    ) / (p_high - p_low)
    projected = paused["levels"][str(p_low)]["total_mib"] + per_run * (high - p_low)
    figures["suspended_growth_percent"] = growth
    figures["suspended_growth_percent_by_process"] = {
        "worker": _growth(first["worker_mib"], last["worker_mib"]),
        "prefect_server": _growth(first["server_mib"], last["server_mib"]),
    }
    rested = ours["levels_after_server_restart"]
    rested_first, restarted = rested[str(low)], rested[str(high)]
    growth_at_rest = _growth(rested_first["total_mib"], restarted["total_mib"])
    figures["suspended_growth_percent_after_server_restart"] = growth_at_rest
    figures["paused_mib_per_waiting_run"] = round(per_run, 1)
    figures["paused_total_mib_at_500_projected"] = round(projected, 0)
    figures["ratio_paused_to_suspended_at_500_projected"] = round(projected / last["total_mib"], 1)
    notes += [
        f"Notre façon : {low} → {high} dossiers en attente, mémoire (worker + serveur Prefect, "
        f"processus enfants compris) {first['total_mib']} → {last['total_mib']} Mio "
        f"({growth:+.1f} %), {last['run_processes']} processus de run vivants.",
        f"Les {batch_runs(ours)} premiers runs sont lancés par le worker ensemble : "
        f"{ours['worker_batch']['wall_seconds']} s, {ours['worker_batch']['cpu_seconds_per_run']}"
        f" s CPU par processus de run ; {high} runs par le worker prendraient environ "
        f"{ours['worker_seconds_for_all_projected']:.0f} s (projection du débit mesuré). Les "
        f"{launched} autres sont exécutés par un lanceur (un seul processus, mêmes appels du "
        f"moteur Prefect) : {ours['launcher']['wall_seconds']} s, "
        f"{ours['launcher']['cpu_seconds_per_run']} s CPU par run.",
        f"Variante pause_flow_run mesurée à {p_low} et {p_high} runs en pause seulement : "
        f"{per_run:.0f} Mio par run en attente (un processus Python vivant chacun). "
        f"Le chiffre à {high} (~{projected / 1024:.1f} Gio) est une PROJECTION de la pente "
        f"mesurée, pas une mesure.",
        f"Le serveur Prefect passe de {first['server_mib']} à {last['server_mib']} Mio pendant "
        f"que sa base SQLite passe de {first['prefect_db_mib']} à {last['prefect_db_mib']} Mio. "
        "Prefect ouvre SQLite avec PRAGMA cache_size = 20000 (pages de 4 Kio, jusqu'à ~78 Mio "
        "par connexion) : le serveur garde en mémoire les pages lues, et son tas Python garde "
        "la trace du travail fait. Redémarré, les mêmes runs toujours en "
        f"attente, il occupe {rested_first['server_mib']} Mio à {low} et "
        f"{restarted['server_mib']} Mio à {high} : au total {rested_first['total_mib']} → "
        f"{restarted['total_mib']} Mio ({growth_at_rest:+.1f} %). La série sans redémarrage "
        f"part du serveur redémarré à {low}.",
        "RSS additionnés (les pages partagées entre processus sont comptées plusieurs fois) ; "
        "chaque niveau est la médiane de 3 relevés à 1 s d'intervalle, une fois les "
        "processus de run terminés.",
    ]
    targets = [
        Target(
            f"croissance mémoire {low} → {high} dossiers en attente",
            "≤ 5 %",
            growth,
            "%",
            met=growth <= 5,
            note="worker + serveur Prefect, processus enfants compris, sans redémarrage",
        ),
        Target(
            f"croissance mémoire {low} → {high} dossiers en attente, serveur Prefect redémarré",
            "≤ 5 %",
            growth_at_rest,
            "%",
            met=growth_at_rest <= 5,
            note="ce que l'attente elle-même coûte, sans le cache SQLite ni le tas du travail fait",
        ),
    ]
    settings = {
        "levels": levels,
        "pause_levels": pause_levels,
        "app_database": "sqlite",
        "pause_poll_interval_seconds": 10,
        "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS"),
    }
    return Result(figures=figures, targets=targets, settings=settings, notes=notes)


def prefect_db_mib() -> float:
    """Size of the Prefect server's SQLite database (with its WAL), 0 if not SQLite."""
    from pathlib import Path

    url = os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL", "")
    if not url.startswith("sqlite") or ":///" not in url:
        return 0.0
    path = Path(url.split(":///", 1)[1])
    files = (path, path.with_name(f"{path.name}-wal"))
    return round(sum(f.stat().st_size for f in files if f.exists()) / MIB, 1)


def restart_server(stack: PrefectStack, waiting: Iterable[UUID]) -> None:
    """Restart the Prefect server once the worker has no run process left (a suspended
    run's process exits after its state is written: cut from the server on its way out, it
    would be reported crashed); the runs are still suspended after it."""
    from tests.support.prefect_stack import wait_no_run_process

    left = asyncio.run(wait_no_run_process(stack, timeout=120))
    if left:
        raise RuntimeError(f"run processes still alive: {left}")
    stack.stop_server()
    stack.start_server()
    asyncio.run(wait_all(waiting, "Suspended", timeout=120))


def batch_runs(ours: Mapping[str, Any]) -> int:
    return int(ours["worker_batch"]["runs"])


def _growth(low: float, high: float) -> float:
    return round((high - low) / low * 100, 1)


# -- answer_latency ---------------------------------------------------------------------
POLL_SECONDS = 0.1  # how often the outbox is read for the next step's mails
# Each resumed run costs a fresh Python process (~3 s of CPU here): 2 cores take at most
# ~0.6 answers/s, so 0.4/s keeps the machine busy without building a queue; at that pace
# 100 answers fit the 5-minute budget (200 would take 500 s of answering alone).
ANSWERS = 100
ANSWER_INTERVAL = 2.5


@dataclass
class Answer:
    case_id: int
    posted_at: datetime  # wall clock, to compare with Prefect's state timestamps
    posted: float  # perf_counter
    status: int = 0
    page_ms: float = float("nan")
    mail_seconds: float = float("nan")
    smtp_seconds: float = float("nan")  # until the SMTP server accepted the next step's mail


@dataclass
class Mail:
    seen: float  # perf_counter when the poll found it
    created_at: datetime
    flow_code_at: datetime
    message_id: str = ""


def _new_mails(after_id: int) -> tuple[int, dict[int, Mail]]:
    from sqlmodel import col, select

    from models.core.db import session_scope
    from models.core.outbox import OutboxMessage

    found: dict[int, Mail] = {}
    with session_scope() as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.id) > after_id)
            .order_by(col(OutboxMessage.id))
        ).all()
        seen = time.perf_counter()
        for row in rows:
            assert row.id is not None
            after_id = row.id
            if row.dedup_key.startswith("probe-next-step-"):
                found[row.case_id] = Mail(
                    seen=seen,
                    created_at=row.created_at,
                    flow_code_at=datetime.fromisoformat(row.context["flow_code_at"]),
                    message_id=row.message_id,
                )
    return after_id, found


async def _answer_all(
    url: str, tokens: Mapping[int, str], interval: float, tail: float, smtp: SmtpServer
) -> tuple[list[Answer], dict[int, Mail]]:
    """POST each answer at a fixed pace (open loop) while the outbox and the SMTP server's
    inbox are polled."""
    import httpx

    from tests.support.service_kit import VALID_ANSWER

    mails: dict[int, Mail] = {}
    accepted: dict[str, float] = {}  # Message-ID → perf_counter when the server had it
    all_sent = asyncio.Event()

    async def poll() -> None:
        last = 0
        deadline: float | None = None
        while len(mails) < len(tokens) or len(accepted) < len(tokens):
            last, found = await asyncio.to_thread(_new_mails, last)
            mails.update(found)
            now = time.perf_counter()
            for received in smtp.messages[len(accepted) :]:
                accepted[received.message_id] = now
            if all_sent.is_set():
                deadline = deadline or time.perf_counter() + tail
                if time.perf_counter() > deadline:
                    return
            await asyncio.sleep(POLL_SECONDS)

    async def answer(client: httpx.AsyncClient, case_id: int, token: str) -> Answer:
        done = Answer(case_id=case_id, posted_at=datetime.now(UTC), posted=time.perf_counter())
        response = await client.post(f"{url}/r/{token}", data=VALID_ANSWER)
        done.page_ms = (time.perf_counter() - done.posted) * 1000
        done.status = response.status_code if "est enregistrée" in response.text else -1
        return done

    poller = asyncio.create_task(poll())
    async with httpx.AsyncClient(timeout=60) as client:
        start = time.perf_counter()
        tasks = []
        for index, (case_id, token) in enumerate(tokens.items()):
            await asyncio.sleep(max(0.0, start + index * interval - time.perf_counter()))
            tasks.append(asyncio.create_task(answer(client, case_id, token)))
        answers = list(await asyncio.gather(*tasks))
    all_sent.set()
    await poller
    for item in answers:
        mail = mails.get(item.case_id)
        if mail is not None:
            item.mail_seconds = mail.seen - item.posted
            if mail.message_id in accepted:
                item.smtp_seconds = accepted[mail.message_id] - item.posted
    return answers, mails


PHASES = [
    ("resume_accepted", "POST → reprise acceptée par Prefect (état Scheduled « Resuming »)"),
    ("claimed_by_worker", "→ run pris par le worker (Pending)"),
    ("process_started", "→ processus du run démarré, flow chargé (Running)"),
    ("flow_code_reached", "→ code du flow atteint"),
    ("mail_queued", "→ courriel de l'étape suivante écrit dans l'outbox"),
    ("mail_seen", "→ courriel vu par le sondage de l'outbox"),
]


async def _phases(
    answers: list[Answer], runs: Mapping[int, UUID], mails: Mapping[int, Mail]
) -> dict[str, list[float]]:
    """Where the time goes, from the state history of each resumed run (seconds)."""
    from prefect.client.orchestration import get_client

    spans: dict[str, list[float]] = {name: [] for name, _ in PHASES}
    async with get_client() as client:
        for item in answers:
            mail = mails.get(item.case_id)
            if mail is None:
                continue
            history = await client.read_flow_run_states(runs[item.case_id])
            after = sorted(
                (s for s in history if s.timestamp >= item.posted_at), key=lambda s: s.timestamp
            )

            def first(kind: str, after: list[Any] = after) -> datetime | None:
                return next((s.timestamp for s in after if s.type.value == kind), None)

            points = [
                item.posted_at,
                first("SCHEDULED"),
                first("PENDING"),
                first("RUNNING"),
                mail.flow_code_at,
                mail.created_at,
            ]
            if any(p is None for p in points):
                continue
            moments = [p.timestamp() for p in points if p is not None]
            for (name, _), begin, end in zip(PHASES, moments, moments[1:], strict=False):
                spans[name].append(end - begin)
            spans["mail_seen"].append(item.mail_seconds - (moments[-1] - moments[0]))
    return spans


def answer_latency(ctx: Context) -> Result:
    """A partner's answer: page returned, then the next step's mail queued by the flow."""
    from tests.support.prefect_stack import run_env
    from tests.support.service_kit import ServiceProcess
    from tests.support.smtp import SmtpServer

    count = ctx.scale(ANSWERS, 3)
    interval = ANSWER_INTERVAL
    db_url = ctx.database("sqlite")
    partner = seed_partner()
    tokens = open_cases(partner, range(1, count + 1))
    smtp = SmtpServer().start()  # the runs send the next step's mail before they end
    env = run_env(db_url, CLSM_SMTP_PORT=str(smtp.port), CLSM_SMTP_SECURITY="none")
    due_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    params = {i: {"case_id": i, "contact_id": partner.contact_id, "due_at": due_at} for i in tokens}
    figures: dict[str, Any] = {}
    try:
        with ctx.prefect() as stack:
            assert stack.worker is not None
            if ctx.smoke:
                runs, _ = asyncio.run(
                    through_worker(stack, ANSWER_DEPLOYMENT, params, env, "Suspended", timeout=120)
                )
            else:
                runs = asyncio.run(create_runs(ANSWER_DEPLOYMENT, params, env, for_worker=False))
                started = launch(list(runs.values()), db_url)
                asyncio.run(wait_all(runs.values(), "Suspended", timeout=120))
                figures["setup_launcher_seconds"] = started.wall_seconds
            asyncio.run(wait_reaped(stack))
            cpu_before = children_cpu(stack.worker.pid)
            service = ServiceProcess(db_url).__enter__()
            assert service.process is not None
            try:
                started_at = time.perf_counter()
                answers, mails = asyncio.run(
                    _answer_all(service.url, tokens, interval, tail=120, smtp=smtp)
                )
                answering = time.perf_counter() - started_at
                service_rss = footprint(service.process.pid).rss_mib
            finally:  # uvicorn lets resumes still in flight finish before it stops
                service.process.terminate()
                try:
                    service.process.wait(120)
                except subprocess.TimeoutExpired:
                    service.process.kill()
            asyncio.run(wait_reaped(stack))
            run_cpu = (children_cpu(stack.worker.pid) - cpu_before) / max(len(mails), 1)
            spans = asyncio.run(_phases(answers, runs, mails))
    finally:
        smtp.stop()

    pages = [a.page_ms for a in answers if a.status == 200]
    latencies = [a.mail_seconds for a in answers if a.mail_seconds == a.mail_seconds]
    delivered = [a.smtp_seconds for a in answers if a.smtp_seconds == a.smtp_seconds]
    page = distribution(pages, "ms")
    mail = distribution(latencies, "s", digits=2)
    inbox = distribution(delivered, "s", digits=2)
    figures.update(
        answers=count,
        pages_ok=len(pages),
        mails_queued=len(latencies),
        post_to_page=page,
        post_to_mail=mail,
        post_to_smtp_accepted=inbox,
        mails_accepted_by_smtp=len(delivered),
        phases={name: distribution(spans[name], "s", digits=2) for name, _ in PHASES},
        answering_seconds=round(answering, 1),
        cpu_seconds_per_resumed_run=round(run_cpu, 2),
        service_rss_mib=service_rss,
    )
    slowest = max(PHASES, key=lambda p: statistics.fmean(spans[p[0]] or [0.0]))
    notes = [
        f"{count} réponses à un rythme fixe d'une toutes les {interval:g} s "
        f"({1 / interval:g}/s, boucle ouverte : une réponse n'attend pas la précédente), "
        "pendant que Prefect et le worker reprennent les réponses précédentes.",
        "Décomposition (p50) : "
        + " ; ".join(f"{label} {figures['phases'][name]['p50']} s" for name, label in PHASES)
        + f". Poste le plus lourd : {slowest[1]}.",
        f"Chaque run repris démarre un nouveau processus Python : "
        f"{figures['cpu_seconds_per_resumed_run']} s CPU par run en moyenne sur 2 cœurs.",
        f"Pourquoi {ANSWERS} réponses et pas 200 : à ~{figures['cpu_seconds_per_resumed_run']} s "
        "CPU par run repris, 2 cœurs absorbent au plus ~0,6 réponse/s ; au rythme tenable de "
        f"{1 / ANSWER_INTERVAL:g}/s, 200 réponses demanderaient {200 * ANSWER_INTERVAL:.0f} s, "
        "hors du budget de 5 min de ce banc.",
        "La reprise est demandée après l'envoi de la page (tâche de fond) ; si Prefect la "
        "refuse ou est injoignable, elle reste marquée et le tick la retente.",
        "Le run envoie le courriel de son dossier avant de se terminer (send_now) : il arrive "
        "dans la boîte sans attendre le tick. L'alternative d'avant, l'envoi au prochain tick "
        "(cron d'une minute), ajoutait en moyenne 30 s et jusqu'à 60 s à chaque courriel.",
    ]
    if len(latencies) < count:
        notes.append(f"{count - len(latencies)} courriels jamais vus dans l'outbox (délai 120 s).")
    targets = [
        Target(
            "p95 POST → page de confirmation",
            "p95 < 200 ms",
            page["p95"],
            "ms",
            met=len(pages) == count and page["p95"] < 200,
        ),
        Target(
            "p95 POST → courriel de l'étape suivante dans l'outbox",
            "p95 < 8 s",
            mail["p95"],
            "s",
            met=len(latencies) == count and mail["p95"] < 8,
        ),
        Target(
            "p95 réponse → courriel de l'étape suivante accepté par le serveur SMTP",
            "p95 ≤ 10 s",
            inbox["p95"],
            "s",
            met=len(delivered) == count and inbox["p95"] <= 10,
        ),
        Target(
            "CPU par passage repris (processus du run)",
            "≤ 1,5 s",
            figures["cpu_seconds_per_resumed_run"],
            "s",
            met=figures["cpu_seconds_per_resumed_run"] <= 1.5,
        ),
    ]
    settings = {
        "answers": count,
        "answers_per_second": round(1 / interval, 2),
        "outbox_poll_seconds": POLL_SECONDS,
        "app_database": "sqlite",
        "service": "uvicorn, 1 processus (tests.support.service_app:create_test_app)",
        "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS"),
        "PREFECT_WORKER_PREFETCH_SECONDS": os.environ.get("PREFECT_WORKER_PREFETCH_SECONDS"),
    }
    return Result(figures=figures, targets=targets, settings=settings, notes=notes)


if __name__ == "__main__":
    _launcher_main(sys.argv[1:])
