"""A flow whose first attempt is busy long enough for its machine to be lost under it."""

from __future__ import annotations

import time

from prefect import flow
from prefect.runtime import flow_run

from models.core.audit import Actor, record_event
from models.core.db import session_scope
from models.core.enums import CaseType


@flow(name="probe-lost")
def probe_lost(case_id: int, busy_seconds: float = 600) -> int:
    """Busy on the first attempt; a later attempt (a run handed back) records and ends."""
    attempt = int(flow_run.run_count or 1)
    if attempt <= 1:
        time.sleep(busy_seconds)
    with session_scope() as session:
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=case_id,
            action="probe.done",
            actor=Actor.system(),
            payload={"attempt": attempt},
        )
    return attempt
