"""E-mail for the flows: a run sends its case's new mail before it suspends or ends."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.utilities.asyncutils import run_coro_as_sync

from models.core.enums import CaseType
from notifications.send import send_now


def send_case_mail(case_type: CaseType, case_id: int) -> None:
    """Send the case's mail queued by this pass before the run suspends or ends.

    Not a task (no task run, no API call when there is nothing to send) and never an error
    for the run: whatever stays unsent is the heartbeat's (`flows.tick`), within a minute.
    """
    try:  # refusals are logged in the run by the drain itself
        run_coro_as_sync(send_now(case=(case_type.value, case_id)))
    except Exception as error:  # the database or the server failed mid-way: leases expire
        get_run_logger().warning(
            "Envoi immédiat des e-mails interrompu (%s) : repris au prochain passage.", error
        )
