"""Under `make up`, a process that dies is started again and the others keep running:
kill the worker, partner links keep answering."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sqlmodel import Session, select

from models.core import clock, db
from models.core.audit import Actor
from models.core.links import StepLink, link_token
from models.core.outbox import OutboxMessage
from models.immersion.call import create_session, open_call
from models.immersion.tables import ImmersionSessionCreate
from tests.support.env import ROOT, free_port
from tests.support.immersion import build_clsm, session_dates

pytestmark = pytest.mark.reliability

PROCFILE = ROOT / "service" / "Procfile"
# stands for the Prefect worker (the suite's Prefect server is not this stack's)
WORKER = "service/keep-running python -c 'import time; time.sleep(600)'"


def _call_link(session: Session) -> str:
    clsm, _ = build_clsm(session)
    data = ImmersionSessionCreate(
        clsm_slug=clsm.slug,
        title="Immersions 2022 — session 2",
        capacity=4,
        structures=["CCAS", "chl", "Département", "DAC", "UDAF"],
        **session_dates(clock.now(session)),
    )
    row = create_session(session=session, data=data, flow_run_id="run-1", actor=Actor.system())
    open_call(session=session, row=row, actor=Actor.system())
    message = session.exec(
        select(OutboxMessage).where(OutboxMessage.template == "immersion_call")
    ).first()
    assert message is not None
    link = session.get(StepLink, (message.context or {})["link_id"])
    assert link is not None
    return link_token(link)


def _worker(honcho: psutil.Process) -> psutil.Process | None:
    for child in honcho.children(recursive=True):
        try:
            if child.name().startswith("python") and "time.sleep(600)" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def test_every_process_of_make_up_runs_under_the_restart_loop() -> None:
    lines = [line for line in PROCFILE.read_text().splitlines() if line.strip()]
    assert lines and all(line.split(":", 1)[1].strip().startswith("service/keep-running ")
                         for line in lines)  # fmt: skip


def test_kill_the_worker_and_partner_links_keep_answering(db_url: str, tmp_path: Path) -> None:
    with db.session_scope() as session:
        token = _call_link(session)
    real = {line.split(":", 1)[0]: line for line in PROCFILE.read_text().splitlines() if line}
    procfile = tmp_path / "Procfile"
    procfile.write_text(f"{real['sink']}\n{real['service']}\nworker: {WORKER}\n")
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "CLSM_DATABASE_URL": db_url,
        "CLSM_BASE_URL": f"http://127.0.0.1:{port}",
        "CLSM_SMTP_PORT": str(free_port()),
        "CLSM_SINK_DIR": str(tmp_path / "mail"),
    }
    honcho = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "honcho"), "-f", str(procfile), "-d", str(ROOT), "start"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    link = f"http://127.0.0.1:{port}/r/{token}"
    try:
        manager = psutil.Process(honcho.pid)
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(link, timeout=2).status_code == 200 and _worker(manager):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the stack did not start"
            time.sleep(0.5)
        worker = _worker(manager)
        assert worker is not None
        worker.send_signal(signal.SIGKILL)
        answers, restarted = [], None
        until = time.monotonic() + 12
        while time.monotonic() < until:
            answers.append(httpx.get(link, timeout=5).status_code)
            found = _worker(manager)
            if found is not None and found.pid != worker.pid:
                restarted = found
            time.sleep(0.5)
        assert honcho.poll() is None, "honcho stopped everything"
        assert answers and set(answers) == {200}, answers
        assert restarted is not None and restarted.is_running(), "the worker was not restarted"
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
