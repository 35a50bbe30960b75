"""The worker process killed (SIGKILL, by its own PID) at random points of saisines:
every run reaches its end, no answer is lost, no mail is sent twice, chains verify."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from sqlmodel import Session, select

from models.core import db
from models.core.audit import verify_all
from models.core.links import StepLink
from models.saisine.common import consultations
from models.saisine.states import SaisineStatus, Step
from tests.saisine.test_saisine_flow import (
    answer_as_the_service,
    describe_as_the_coordinator,
    intake_parameters,
    setup_cell,
    the_saisine,
)
from tests.support.figures import FULL, record, scale
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of, stop_process
from tests.support.smtp import SmtpServer

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="session"),
]


class Killer:
    """Kills the worker after a random delay, then starts a new one."""

    def __init__(self, stack: PrefectStack, budget: int, rng: random.Random) -> None:
        self.stack, self.budget, self.rng = stack, budget, rng
        self.kills = 0

    async def maybe_kill(self) -> None:
        if self.kills >= self.budget:
            return
        await asyncio.sleep(self.rng.uniform(0.0, 2.5))
        worker = self.stack.worker
        assert worker is not None
        os.kill(worker.pid, signal.SIGKILL)  # the worker only: its own PID
        worker.wait(10)
        self.kills += 1
        self.stack.start_worker()


async def settle(run_id: UUID, *names: str, timeout: float = 300) -> Any:
    """Wait for one of the states, running tick every few seconds as its cron would."""
    from flows.tick import tick

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_tick = loop.time() + 5
    while loop.time() < deadline:
        state = await state_of(run_id)
        if state is not None and (state.type.value in names or state.name in names):
            return state
        if loop.time() >= next_tick:
            await tick()
            next_tick = loop.time() + 5
        await asyncio.sleep(0.25)
    raise AssertionError(f"run {run_id} did not reach {names} (last: {state})")


async def _until_paused_or_done(run_id: UUID) -> Any:
    return await settle(run_id, "PAUSED", "COMPLETED")


async def _one_saisine(db_url: str, killer: Killer) -> UUID:
    from prefect.flow_runs import aresume_flow_run

    run_id = await run("saisine/saisine", intake_parameters(), run_env(db_url))
    await describe_as_the_coordinator(run_id)
    await killer.maybe_kill()
    await settle(run_id, "PAUSED")
    await aresume_flow_run(run_id, run_input={"partners": ["CHL", "DAC-PTA"]})
    await killer.maybe_kill()
    await _wait_for_links(run_id, 2)
    saisine = the_saisine(run_id)
    with Session(db.get_engine()) as session:
        link_ids = [
            link.id
            for link in session.exec(
                select(StepLink).where(
                    StepLink.case_id == saisine.id, StepLink.step == Step.CONSULTATION
                )
            )
        ]
    for link_id, knows in zip(link_ids, ("oui", "non"), strict=True):
        assert link_id is not None
        await answer_as_the_service(link_id, {"knows_situation": knows, "proposal": "RDV"})
        await killer.maybe_kill()
    await _wait_for_orientation_form(run_id)
    await aresume_flow_run(
        run_id,
        run_input={
            "outcome": "Mise en lien avec la coordinatrice de parcours",
            "who_acts": "CHL",
            "detail": "",
            "follow_up_days": 0,
        },
    )
    await killer.maybe_kill()
    await settle(run_id, "COMPLETED")
    return run_id


async def _wait_for_links(run_id: UUID, count: int) -> None:
    for _ in range(600):
        state = await _until_paused_or_done(run_id)
        try:
            saisine = the_saisine(run_id)
        except Exception:
            saisine = None
        if saisine is not None and state.is_paused():
            with Session(db.get_engine()) as session:
                found = session.exec(
                    select(StepLink).where(
                        StepLink.case_id == saisine.id, StepLink.step == Step.CONSULTATION
                    )
                ).all()
            if len(found) >= count:
                return
        await asyncio.sleep(0.25)
    raise AssertionError("the consultation links were never issued")


async def _wait_for_orientation_form(run_id: UUID) -> None:
    """All answers are in; wait until the run waits on the orientation form."""
    from models.core.waits import Wait, WaitStatus

    saisine = the_saisine(run_id)
    for _ in range(240):
        state = await _until_paused_or_done(run_id)
        with Session(db.get_engine()) as session:
            open_steps = [
                w.step
                for w in session.exec(
                    select(Wait).where(
                        Wait.case_id == saisine.id,
                        Wait.case_type == "saisine",
                        Wait.status == WaitStatus.OPEN,
                    )
                )
            ]
        if state is not None and state.is_paused() and any("orientation" in s for s in open_steps):
            return
        await asyncio.sleep(1)
    raise AssertionError(f"no orientation form (open waits: {open_steps})")


# PostgreSQL with two workers, a machine lost mid-step, is also in tests/production (its own
# `make test` session): here that variant runs with the full counts only.
SETUPS = ["sqlite-one-worker"] + (["postgresql-two-workers"] if FULL else [])


@pytest.fixture(params=SETUPS)
def setup_kind(request: pytest.FixtureRequest, prefect_stack: PrefectStack) -> Iterator[str]:
    """SQLite with one worker; PostgreSQL with a second worker on the same pool."""
    if request.param.startswith("sqlite"):
        yield str(request.getfixturevalue("db_url"))
        return
    url = str(request.getfixturevalue("pg_url"))
    second = prefect_stack.spawn_worker("second-worker")
    try:
        yield url
    finally:
        stop_process(second)


async def test_worker_killed_at_random_points(
    prefect_stack: PrefectStack,
    setup_kind: str,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from models.core.settings import get_settings
    from notifications.send import drain

    monkeypatch.setenv("CLSM_STUCK_RUN_SECONDS", "10")
    get_settings.cache_clear()

    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    kills = scale(20, 3)
    killer = Killer(prefect_stack, kills, rng)
    setup_cell()
    runs: list[UUID] = []
    while killer.kills < kills:
        runs.append(await _one_saisine(setup_kind, killer))
    await drain()
    saisines = {run_id: the_saisine(run_id) for run_id in runs}  # (each in its own session:
    with Session(db.get_engine()) as session:  # SQLite locks at BEGIN, even to read)
        answered = 0
        for run_id, saisine in saisines.items():
            assert saisine.status is SaisineStatus.CLOSED, (seed, run_id)
            found = consultations(session, saisine)
            assert [c.knows_situation for c in found] == [True, False], (seed, run_id)
            assert all(c.answered_at and c.proposal == "RDV" for c in found), seed
            answered += len(found)
        chains = verify_all(session)
    by_id = Counter(m.message_id for m in smtp_server.messages)
    by_step = Counter(
        (tuple(m.recipients), str(m.message["Subject"])) for m in smtp_server.messages
    )
    record(
        "worker_killed",
        dialect=setup_kind.split(":")[0],
        workers=2 if setup_kind.startswith("postgresql") else 1,
        seed=seed,
        kills=killer.kills,
        runs=len(runs),
        runs_completed=len(runs),
        answers=answered,
        answers_lost=0,
        mails=len(smtp_server.messages),
        duplicate_mails_by_message_id=sum(n - 1 for n in by_id.values()),
        duplicate_mails_by_recipient_and_step=sum(n - 1 for n in by_step.values()),
        chains_ok=chains.ok,
    )
    assert max(by_id.values()) == 1, seed
    assert max(by_step.values()) == 1, seed
    assert chains.ok, chains.breaks
