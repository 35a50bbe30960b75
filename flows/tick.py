"""The heartbeat: wake the runs whose date has come, retry pending resumes, hand back runs a
lost worker left, queue due reminders and escalations, and drain the e-mail outbox.

It runs as its own long-lived process (`python -m flows.tick`, every CLSM_TICK_SECONDS), not
as a scheduled Prefect deployment: a run a minute would put 525,600 "tick" runs a year in
the coordinators' run list and in Prefect's database. The `tick` flow does one pass on
demand (from the Prefect UI or a test); its deployment has no schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from prefect import flow

from models.core.checkpoints import write_checkpoint
from models.core.db import session_scope
from models.core.directory import queue_convention_reminders
from models.core.reminders import send_due_reminders
from models.core.runs import crash_silent_runs, deliver_resumes, reschedule_stuck_runs
from models.core.settings import fail_fast, get_settings
from models.core.waits import mark_due_waits
from notifications.send import drain


def _log() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The Prefect run's logger inside the `tick` flow, else the process's own."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("clsm.tick")


def _mark_due() -> int:
    with session_scope() as session:
        return mark_due_waits(session)


def _sign_checkpoint() -> bool:
    """Sign the audit chains' heads when they moved (models.core.checkpoints)."""
    with session_scope() as session:
        return write_checkpoint(session) is not None


def _queue_reminders() -> int:
    with session_scope() as session:
        return send_due_reminders(session)


def _convention_reminders() -> int:
    """Tell coordinators of conventions ending in 30 days (models.core.directory)."""
    with session_scope() as session:
        return queue_convention_reminders(session)


async def heartbeat() -> dict[str, Any]:
    """One pass; plain calls (no task runs): a pass leaves nothing in Prefect's database
    but the resumes it makes."""
    settings = get_settings()
    silent = await crash_silent_runs(settings.silent_run_seconds)
    if silent:
        _log().warning("%s run(s) sans signe de vie marqué(s) « Crashed ».", silent)
    rescued = await reschedule_stuck_runs(settings.stuck_run_seconds)
    due = await asyncio.to_thread(_mark_due)
    woken = await deliver_resumes()
    reminders = await asyncio.to_thread(_queue_reminders)
    conventions = await asyncio.to_thread(_convention_reminders)
    mail = (await drain(limit=200)).as_dict()
    signed = await asyncio.to_thread(_sign_checkpoint)
    if rescued:
        _log().warning(
            "%s run(s) laissé(s) en attente par un worker arrêté : reprogrammé(s).", rescued
        )
    if woken["unreachable"]:
        _log().warning("Reprises en échec, nouvel essai au prochain passage : %s", woken)
    if mail["unreachable"]:
        _log().warning("Serveur de messagerie injoignable, nouvel essai plus tard.")
    return {
        "rescued": rescued,
        "due": due,
        **woken,
        "reminders": reminders,
        "conventions": conventions,
        "mail": mail,
        "checkpoint": signed,
    }


@flow(name="tick", flow_run_name="tick", log_prints=True)
async def tick() -> dict[str, Any]:
    """One heartbeat pass on demand: resume runs whose due date passed, retry resumes
    that Prefect refused earlier, queue due reminders, send the outbox."""
    return await heartbeat()


async def beat_forever(every: float) -> None:
    """A pass every `every` seconds until SIGTERM/SIGINT; a failed pass (database or Prefect
    down) is logged and the next one tries again."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log = logging.getLogger("clsm.tick")
    while not stop.is_set():
        started = loop.time()
        try:
            summary = await heartbeat()
        except Exception as error:
            log.warning("Passage en échec (%s: %s) ; nouvel essai.", type(error).__name__, error)
        else:
            mail = summary["mail"]
            if summary["resumed"] or summary["rescued"] or mail["sent"] or mail["failed"]:
                log.info("Passage : %s", summary)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, every - (loop.time() - started)))


def main() -> None:  # pragma: no cover - console entry (Procfile, supervisor)
    fail_fast()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(beat_forever(get_settings().tick_seconds))


if __name__ == "__main__":  # pragma: no cover
    main()
