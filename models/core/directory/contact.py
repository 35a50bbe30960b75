"""The professionals of the structures."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.core.audit import Actor
from models.core.directory.changes import _change, _created
from models.core.directory.fields import (
    ContactCreate,
)
from models.core.directory.matching import (
    fold,
)
from models.core.directory.structure import (
    get_structure,
)
from models.core.errors import DomainError, NotFound
from models.core.people import Contact, Organisation


def contacts(
    session: Session, clsm_id: int, *, search: str = "", structure_id: int | None = None
) -> list[tuple[Contact, Organisation]]:
    query = (
        select(Contact, Organisation)
        .join(Organisation, col(Organisation.id) == col(Contact.organisation_id))
        .where(Organisation.clsm_id == clsm_id)
    )
    if structure_id is not None:
        query = query.where(Organisation.id == structure_id)
    rows = [
        (c, o) for c, o in session.exec(query.order_by(col(Organisation.name), col(Contact.name)))
    ]
    key = fold(search)
    if not key:
        return rows
    return [
        (c, o)
        for c, o in rows
        if key in fold(c.name) or key in fold(c.email) or key in fold(o.name)
    ]


def get_contact(session: Session, clsm_id: int, contact_id: int) -> Contact:
    row = session.get(Contact, contact_id)
    if row is None or get_structure(session, clsm_id, row.organisation_id) is None:
        raise NotFound("Contact introuvable dans ce CLSM.")
    return row


def contact_by_email(session: Session, clsm_id: int, email: str) -> Contact | None:
    return session.exec(
        select(Contact)
        .join(Organisation, col(Organisation.id) == col(Contact.organisation_id))
        .where(Organisation.clsm_id == clsm_id, Contact.email == email.strip().lower())
    ).first()


def _contact_values(session: Session, clsm_id: int, data: ContactCreate) -> dict[str, Any]:
    structure = get_structure(session, clsm_id, data.organisation_id)
    if not structure.active:
        raise DomainError(f"La structure « {structure.name} » est désactivée.")
    values = data.model_dump()
    values["roles"] = [r.value for r in data.roles]
    return values


def create_contact(*, session: Session, clsm_id: int, data: ContactCreate, actor: Actor) -> Contact:
    values = _contact_values(session, clsm_id, data)
    existing = contact_by_email(session, clsm_id, data.email)
    if existing is not None:
        raise DomainError(f"L'adresse {data.email} est déjà celle de {existing.name} dans ce CLSM.")
    row = Contact(**values)
    _created(session, row, clsm_id, "directory.contact.created", actor, row.name)
    return row


def update_contact(
    *,
    session: Session,
    clsm_id: int,
    row: Contact,
    data: ContactCreate,
    version: int | None,
    actor: Actor,
) -> dict[str, dict[str, Any]]:
    values = _contact_values(session, clsm_id, data)
    existing = contact_by_email(session, clsm_id, data.email)
    if existing is not None and existing.id != row.id:
        raise DomainError(f"L'adresse {data.email} est déjà celle de {existing.name} dans ce CLSM.")
    return _change(
        session,
        row=row,
        clsm_id=clsm_id,
        values=values,
        version=version,
        what=f"Le contact « {row.name} »",
        action="directory.contact.updated",
        actor=actor,
    )


def set_contact_active(
    *,
    session: Session,
    clsm_id: int,
    row: Contact,
    active: bool,
    version: int | None,
    actor: Actor,
) -> None:
    _change(
        session,
        row=row,
        clsm_id=clsm_id,
        values={"active": active},
        version=version,
        what=f"Le contact « {row.name} »",
        action="directory.contact.activated" if active else "directory.contact.deactivated",
        actor=actor,
    )
