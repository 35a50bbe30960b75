"""The structures of the network, and the cell's permanent members."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.core.audit import Actor
from models.core.directory.changes import _change, _created
from models.core.directory.fields import (
    StructureCreate,
)
from models.core.directory.matching import (
    NearDuplicate,
    _names,
    fold,
    match_among,
    match_structure,
)
from models.core.errors import DomainError, NotFound
from models.core.people import Organisation


def structures(
    session: Session, clsm_id: int, *, search: str = "", include_inactive: bool = True
) -> list[Organisation]:
    query = select(Organisation).where(Organisation.clsm_id == clsm_id)
    if not include_inactive:
        query = query.where(col(Organisation.active).is_(True))
    rows = list(session.exec(query.order_by(col(Organisation.name))))
    key = fold(search)
    if not key:
        return rows
    return [o for o in rows if any(key in fold(n) for n in _names(o))]


def get_structure(session: Session, clsm_id: int, structure_id: int) -> Organisation:
    row = session.get(Organisation, structure_id)
    if row is None or row.clsm_id != clsm_id:
        raise NotFound("Structure introuvable dans ce CLSM.")
    return row


def _check_names(session: Session, clsm_id: int, data: StructureCreate, itself: int | None) -> None:
    others = [
        o
        for o in session.exec(select(Organisation).where(Organisation.clsm_id == clsm_id))
        if o.id != itself
    ]
    for typed in [data.name, *data.aliases]:
        match = match_among(others, typed)
        if match.found is not None:
            raise DomainError(
                f"« {typed} » désigne déjà la structure « {match.found.name} »"
                + (" (inactive)" if not match.found.active else "")
                + " : un nom ou alias ne peut désigner qu'une structure."
            )


def _structure_values(data: StructureCreate) -> dict[str, Any]:
    values = data.model_dump()
    values["kind"] = data.kind.value if data.kind else ""
    if not data.permanent_member:
        values["rotation_order"] = None
    return values


def create_structure(
    *,
    session: Session,
    clsm_id: int,
    data: StructureCreate,
    actor: Actor,
    confirm_near: bool = False,
) -> Organisation:
    _check_names(session, clsm_id, data, None)
    near = match_structure(session=session, clsm_id=clsm_id, name=data.name).near
    if near and not confirm_near:
        raise NearDuplicate(data.name, near)
    row = Organisation(clsm_id=clsm_id, **_structure_values(data))
    _created(session, row, clsm_id, "directory.structure.created", actor, row.name)
    return row


def update_structure(
    *,
    session: Session,
    row: Organisation,
    data: StructureCreate,
    version: int | None,
    actor: Actor,
) -> dict[str, dict[str, Any]]:
    _check_names(session, row.clsm_id, data, row.id)
    return _change(
        session,
        row=row,
        clsm_id=row.clsm_id,
        values=_structure_values(data),
        version=version,
        what=f"La structure « {row.name} »",
        action="directory.structure.updated",
        actor=actor,
    )


def set_structure_active(
    *, session: Session, row: Organisation, active: bool, version: int | None, actor: Actor
) -> None:
    """Deactivate (or bring back) a structure: it leaves the choices, its history stays."""
    _change(
        session,
        row=row,
        clsm_id=row.clsm_id,
        values={"active": active},
        version=version,
        what=f"La structure « {row.name} »",
        action="directory.structure.activated" if active else "directory.structure.deactivated",
        actor=actor,
    )


def cell_members(session: Session, clsm_id: int) -> list[Organisation]:
    """Active permanent members in their hosting rotation order (unranked last, by name)."""
    rows = session.exec(
        select(Organisation).where(
            Organisation.clsm_id == clsm_id,
            col(Organisation.permanent_member).is_(True),
            col(Organisation.active).is_(True),
        )
    )
    return sorted(rows, key=lambda o: (o.rotation_order is None, o.rotation_order or 0, o.name))
