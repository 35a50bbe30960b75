"""The CLSM's orientation catalogue."""

from __future__ import annotations

from sqlmodel import Session, col, select

from models.core.audit import Actor
from models.core.directory.changes import _change, _created
from models.core.directory.fields import (
    OrientationCreate,
)
from models.core.directory.matching import (
    fold,
)
from models.core.directory.tables import OrientationEntry
from models.core.errors import DomainError, NotFound


def orientation_catalogue(
    session: Session, clsm_id: int, *, include_retired: bool = False
) -> list[OrientationEntry]:
    """The CLSM's orientations in their order (the choices offered when orienting a case)."""
    query = select(OrientationEntry).where(OrientationEntry.clsm_id == clsm_id)
    if not include_retired:
        query = query.where(col(OrientationEntry.active).is_(True))
    return list(
        session.exec(query.order_by(col(OrientationEntry.position), col(OrientationEntry.id)))
    )


def get_orientation(session: Session, clsm_id: int, entry_id: int) -> OrientationEntry:
    row = session.get(OrientationEntry, entry_id)
    if row is None or row.clsm_id != clsm_id:
        raise NotFound("Orientation introuvable dans ce CLSM.")
    return row


def _unique_label(session: Session, clsm_id: int, label: str, itself: int | None) -> None:
    for entry in orientation_catalogue(session, clsm_id, include_retired=True):
        if entry.id != itself and fold(entry.label) == fold(label):
            raise DomainError(f"L'orientation « {entry.label} » existe déjà.")


def add_orientation(
    *, session: Session, clsm_id: int, data: OrientationCreate, actor: Actor
) -> OrientationEntry:
    _unique_label(session, clsm_id, data.label, None)
    last = orientation_catalogue(session, clsm_id, include_retired=True)
    position = max((e.position for e in last), default=0) + 1
    row = OrientationEntry(clsm_id=clsm_id, label=data.label, position=position)
    _created(session, row, clsm_id, "directory.orientation.created", actor, row.label)
    return row


def rename_orientation(
    *,
    session: Session,
    row: OrientationEntry,
    data: OrientationCreate,
    version: int | None,
    actor: Actor,
) -> None:
    """A new label for the next cases; cases already oriented keep the label they recorded."""
    _unique_label(session, row.clsm_id, data.label, row.id)
    _change(
        session,
        row=row,
        clsm_id=row.clsm_id,
        values={"label": data.label},
        version=version,
        what=f"L'orientation « {row.label} »",
        action="directory.orientation.renamed",
        actor=actor,
    )


def set_orientation_active(
    *, session: Session, row: OrientationEntry, active: bool, version: int | None, actor: Actor
) -> None:
    _change(
        session,
        row=row,
        clsm_id=row.clsm_id,
        values={"active": active},
        version=version,
        what=f"L'orientation « {row.label} »",
        action="directory.orientation.restored" if active else "directory.orientation.retired",
        actor=actor,
    )
