"""What every flow run needs to know about itself: its id, and the system acting in it.

A person's decision is named by `flows.waits.answered_by` (recorded by the gateway)."""

from __future__ import annotations

from prefect.runtime import flow_run

from models.core.audit import Actor


def run_id() -> str:
    """The id of the current flow run (waits need a run created from a deployment)."""
    current = flow_run.get_id()
    if current is None:
        raise RuntimeError("this flow runs from its deployment (durable waits need a run id)")
    return str(current)


def system_actor() -> Actor:
    """The flow itself (deadlines, automatic steps)."""
    return Actor.system(run_id())
