"""The heartbeat: every minute, wake the runs whose date has come, retry pending resumes,
queue due reminders and escalations, and drain the e-mail outbox."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.mail import drain_outbox, queue_reminders
from models.core.checkpoints import write_checkpoint
from models.core.db import session_scope
from models.core.runs import crash_silent_runs, deliver_resumes, reschedule_stuck_runs
from models.core.settings import get_settings
from models.core.waits import mark_due_waits


@task(name="Marquer les attentes échues")
def mark_due() -> int:
    with session_scope() as session:
        return mark_due_waits(session)


@task(name="Reprendre les runs en attente")
async def wake_runs() -> dict[str, int]:
    return await deliver_resumes()


@task(name="Relancer les runs abandonnés par un worker")
async def rescue_runs() -> int:
    settings = get_settings()
    silent = await crash_silent_runs(settings.silent_run_seconds)
    if silent:
        get_run_logger().warning("%s run(s) sans signe de vie marqué(s) « Crashed ».", silent)
    return await reschedule_stuck_runs(settings.stuck_run_seconds)


@task(name="Signer les têtes des chaînes d'audit")
def sign_checkpoint() -> bool:
    with session_scope() as session:
        return write_checkpoint(session) is not None


@flow(name="tick", flow_run_name="tick", log_prints=True)
async def tick() -> dict[str, Any]:
    """Resume runs whose due date passed; retry resumes that Prefect refused earlier;
    queue due reminders; send the outbox."""
    rescued = await rescue_runs()
    due = mark_due()
    woken = await wake_runs()
    reminders = queue_reminders()
    mail = drain_outbox()
    signed = sign_checkpoint()
    summary: dict[str, Any] = {
        "rescued": rescued,
        "due": due,
        **woken,
        "reminders": reminders,
        "mail": mail,
        "checkpoint": signed,
    }
    if rescued:
        get_run_logger().warning(
            "%s run(s) laissé(s) en attente par un worker arrêté : reprogrammé(s).", rescued
        )
    if woken["unreachable"]:
        get_run_logger().warning("Reprises en échec, nouvel essai au prochain tick : %s", woken)
    if mail["unreachable"]:
        get_run_logger().warning("Serveur de messagerie injoignable, nouvel essai plus tard.")
    return summary
