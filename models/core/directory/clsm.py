"""A CLSM's own settings."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from models.core.audit import Actor
from models.core.directory.changes import _change, _created
from models.core.directory.fields import (
    DEFAULT_ORIENTATIONS,
    ClsmCreate,
    ClsmSettings,
)
from models.core.directory.tables import OrientationEntry
from models.core.errors import DomainError, NotFound
from models.core.people import Clsm


def create_clsm(*, session: Session, data: ClsmCreate, actor: Actor) -> Clsm:
    """A new CLSM with the default orientation catalogue (admins only, checked by callers)."""
    if session.exec(select(Clsm).where(Clsm.slug == data.slug)).first() is not None:
        raise DomainError(f"Un CLSM a déjà l'identifiant « {data.slug} ».")
    row = Clsm(**data.values())
    session.add(row)
    session.flush()
    assert row.id is not None
    _created(session, row, row.id, "directory.clsm.created", actor, row.name)
    for position, (code, label) in enumerate(DEFAULT_ORIENTATIONS, start=1):
        session.add(OrientationEntry(clsm_id=row.id, code=code, label=label, position=position))
    session.flush()
    return row


def update_clsm(
    *, session: Session, row: Clsm, data: ClsmSettings, version: int | None, actor: Actor
) -> dict[str, dict[str, Any]]:
    """Name, territory, coordination, time zone and mail addresses (the slug stays)."""
    assert row.id is not None
    return _change(
        session,
        row=row,
        clsm_id=row.id,
        values=data.values(),
        version=version,
        what=f"Le CLSM « {row.name} »",
        action="directory.clsm.updated",
        actor=actor,
    )


def clsm_by_slug(session: Session, slug: str) -> Clsm:
    found = session.exec(select(Clsm).where(Clsm.slug == slug)).first()
    if found is None or found.id is None:
        raise NotFound(f"CLSM inconnu : « {slug} ».")
    return found
