"""E-mail for the flows: a run sends its case's new mail before it suspends or ends."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.utilities.asyncutils import run_coro_as_sync

from models.catalogue import CASE_KINDS
from models.core.db import session_scope
from models.core.enums import CaseType
from notifications.send import send_now


def _mail_with(case_type: CaseType, case_id: int) -> list[tuple[CaseType, int]]:
    kind = CASE_KINDS.get(case_type)
    if kind is None:
        return []
    with session_scope() as session:
        return kind.mail_with(session, case_id)


def send_case_mail(case_type: CaseType, case_id: int) -> None:
    """Send the case's mail queued by this pass before the run suspends or ends, with the
    mail of the cases it acts on (`CaseKind.mail_with`: a saisine's meeting convocations).

    Not a task (no task run, no API call when there is nothing to send) and never an error
    for the run: whatever stays unsent is the heartbeat's (`flows.tick`), within a minute.
    """
    try:  # refusals are logged in the run by the drain itself
        for other_type, other_id in [(case_type, case_id), *_mail_with(case_type, case_id)]:
            run_coro_as_sync(send_now(case=(other_type.value, other_id)))
    except Exception as error:  # the database or the server failed mid-way: leases expire
        get_run_logger().warning(
            "Envoi immédiat des e-mails interrompu (%s) : repris au prochain passage.", error
        )
