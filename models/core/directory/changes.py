"""Every directory change: version checked (optimistic locking) and recorded, before →
after, on the CLSM's own audit chain."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, SQLModel

from models.core.audit import Actor, record_event
from models.core.enums import CaseType
from models.core.errors import StaleUpdate


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _record(
    session: Session, clsm_id: int, action: str, actor: Actor, payload: dict[str, Any]
) -> None:
    record_event(
        session=session,
        case_type=CaseType.CLSM,
        case_id=clsm_id,
        action=action,
        actor=actor,
        payload=payload,
    )


def _bump(session: Session, row: SQLModel, version: int | None, what: str) -> None:
    """Take the row's next version if it is still at `version` (None: the current one)."""
    table = type(row)
    current = int(getattr(row, "version"))  # noqa: B009
    expected = current if version is None else version
    result = session.execute(
        update(table)
        .where(
            getattr(table, "id") == getattr(row, "id"),  # noqa: B009
            getattr(table, "version") == expected,  # noqa: B009
        )
        .values(version=expected + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise StaleUpdate(what)
    row.version = expected + 1


def _change(
    session: Session,
    *,
    row: Any,
    clsm_id: int,
    values: dict[str, Any],
    version: int | None,
    what: str,
    action: str,
    actor: Actor,
) -> dict[str, dict[str, Any]]:
    """Apply `values` to `row` (version checked, audited); the changes, before → after."""
    changes = {
        name: {"avant": _plain(getattr(row, name)), "après": _plain(value)}
        for name, value in values.items()
        if _plain(getattr(row, name)) != _plain(value)
    }
    if not changes:
        if version is not None and version != row.version:
            raise StaleUpdate(what)
        return changes
    _bump(session, row, version, what)
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)
    session.flush()
    _record(session, clsm_id, action, actor, {"id": row.id, "nom": what, "changements": changes})
    return changes


def _created(
    session: Session, row: Any, clsm_id: int, action: str, actor: Actor, what: str
) -> None:
    session.add(row)
    session.flush()
    values = {
        k: _plain(v)
        for k, v in row.model_dump().items()
        if k not in ("id", "version", "clsm_id") and v not in ("", None, [])
    }
    _record(session, clsm_id, action, actor, {"id": row.id, "nom": what, "valeurs": values})
