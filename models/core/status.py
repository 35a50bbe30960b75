"""The one way to change a status: check the transition table, write the audit event."""

from __future__ import annotations

from typing import Any, Protocol

from sqlmodel import Session

from models.core.audit import Actor, record_event
from models.core.enums import CaseType, Status, allowed
from models.core.errors import IllegalTransition


class Stateful(Protocol):
    """An entity with a status that belongs to an audited case."""

    id: int | None
    status: Any

    @property
    def entity_name(self) -> str: ...

    def audit_case(self) -> tuple[CaseType, int]: ...


def change_status(
    *,
    session: Session,
    entity: Stateful,
    to: Status,
    actor: Actor,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Move entity to `to`, or raise IllegalTransition; audited in the same transaction."""
    from_ = entity.status
    if not allowed(from_, to):
        raise IllegalTransition(f"{entity.entity_name} n°{entity.id}", from_, to)
    entity.status = to  # the entity belongs to the session: flushed with the event
    case_type, case_id = entity.audit_case()
    payload: dict[str, Any] = {
        "entity": entity.entity_name,
        "id": entity.id,
        "from": from_.value,
        "to": to.value,
    }
    if reason:
        payload["reason"] = reason
    if details:
        payload.update(details)
    record_event(
        session=session,
        case_type=case_type,
        case_id=case_id,
        action="status.changed",
        actor=actor,
        payload=payload,
    )
