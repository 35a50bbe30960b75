"""E-mail tasks for the flows: drain the outbox, queue due reminders and escalations.

Both are plain (sync) tasks, so sync and async flows call them alike: `drain_outbox()`.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync

from models.core.db import session_scope
from models.core.reminders import send_due_reminders
from notifications.send import drain


# Never cached: a second call in the same run (or in a resumed run) must drain again.
@task(name="Envoyer les e-mails en attente", cache_policy=NO_CACHE, persist_result=False)
def drain_outbox(limit: int = 200) -> dict[str, Any]:
    """Send what the outbox holds; failures are logged in the run and told to the coordinator."""
    report = run_coro_as_sync(drain(limit=limit))
    assert report is not None
    return report.as_dict()


@task(name="Préparer les relances et escalades", cache_policy=NO_CACHE, persist_result=False)
def queue_reminders() -> int:
    """Queue the reminders and escalations whose time has come; returns how many."""
    with session_scope() as session:
        return send_due_reminders(session)
