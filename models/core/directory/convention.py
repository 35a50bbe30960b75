"""The partnership conventions of the structures."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlmodel import Session, col, select

from models.core.audit import Actor
from models.core.directory.changes import _change, _created
from models.core.directory.fields import (
    EXPIRY_WARNING_DAYS,
    ConventionCreate,
)
from models.core.directory.structure import (
    get_structure,
)
from models.core.errors import NotFound
from models.core.people import Organisation, Partnership


def conventions(
    session: Session, clsm_id: int, structure_id: int | None = None
) -> list[tuple[Partnership, Organisation]]:
    query = (
        select(Partnership, Organisation)
        .join(Organisation, col(Organisation.id) == col(Partnership.organisation_id))
        .where(Partnership.clsm_id == clsm_id)
    )
    if structure_id is not None:
        query = query.where(Organisation.id == structure_id)
    return list(session.exec(query.order_by(col(Organisation.name), col(Partnership.starts_on))))


def get_convention(session: Session, clsm_id: int, convention_id: int) -> Partnership:
    row = session.get(Partnership, convention_id)
    if row is None or row.clsm_id != clsm_id:
        raise NotFound("Convention introuvable dans ce CLSM.")
    return row


def create_convention(
    *, session: Session, clsm_id: int, data: ConventionCreate, actor: Actor
) -> Partnership:
    structure = get_structure(session, clsm_id, data.organisation_id)
    row = Partnership(clsm_id=clsm_id, **data.model_dump())
    _created(
        session, row, clsm_id, "directory.convention.created", actor, f"Convention {structure.name}"
    )
    return row


def update_convention(
    *,
    session: Session,
    clsm_id: int,
    row: Partnership,
    data: ConventionCreate,
    version: int | None,
    actor: Actor,
) -> dict[str, dict[str, Any]]:
    structure = get_structure(session, clsm_id, data.organisation_id)
    return _change(
        session,
        row=row,
        clsm_id=clsm_id,
        values=data.model_dump(),
        version=version,
        what=f"La convention de « {structure.name} »",
        action="directory.convention.updated",
        actor=actor,
    )


def expiring_conventions(
    session: Session, clsm_id: int, on: date, within_days: int = EXPIRY_WARNING_DAYS
) -> list[tuple[Partnership, Organisation]]:
    """Conventions in force on `on` that end within `within_days` days, soonest first,
    unless the structure already has a convention taking over the day after."""
    rows = conventions(session, clsm_id)
    limit = on + timedelta(days=within_days)
    ending = [
        (p, o)
        for p, o in rows
        if o.active
        and p.starts_on <= on <= p.ends_on <= limit
        and not any(
            q.organisation_id == p.organisation_id
            and q.starts_on <= p.ends_on + timedelta(days=1) <= q.ends_on
            for q, _ in rows
        )
    ]
    return sorted(ending, key=lambda pair: pair[0].ends_on)
