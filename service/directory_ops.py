"""One function per directory operation, shared by the pages and the JSON API: find the row
in the CLSM, change it (audited on the CLSM's chain by models.core.directory), commit.

A refusal (`DomainError`, `StaleUpdate`) leaves nothing written; each caller shows it its
way (the form again, or problem JSON).
"""

from __future__ import annotations

from sqlmodel import Session

from models.core import directory as d
from models.core.audit import Actor, record_event
from models.core.enums import CaseType
from models.core.people import Clsm, Contact, Organisation


def _id(clsm: Clsm) -> int:
    assert clsm.id is not None
    return clsm.id


def read_contact(*, session: Session, clsm: Clsm, contact_id: int, actor: Actor) -> Contact:
    """A contact's record, its read recorded on the CLSM's chain (a professional's personal
    data: who saw it, when)."""
    row = d.get_contact(session, _id(clsm), contact_id)
    record_event(
        session=session,
        case_type=CaseType.CLSM,
        case_id=_id(clsm),
        action="contact.read",
        actor=actor,
        payload={"contact_id": row.id},
    )
    session.commit()
    return row


def create_structure(
    *, session: Session, clsm: Clsm, data: d.StructureCreate, actor: Actor, confirm_near: bool
) -> Organisation:
    row = d.create_structure(
        session=session, clsm_id=_id(clsm), data=data, actor=actor, confirm_near=confirm_near
    )
    session.commit()
    return row


def update_structure(
    *,
    session: Session,
    clsm: Clsm,
    structure_id: int,
    data: d.StructureCreate,
    version: int,
    actor: Actor,
) -> Organisation:
    row = d.get_structure(session, _id(clsm), structure_id)
    d.update_structure(session=session, row=row, data=data, version=version, actor=actor)
    session.commit()
    return row


def set_structure_active(
    *, session: Session, clsm: Clsm, structure_id: int, active: bool, version: int, actor: Actor
) -> Organisation:
    row = d.get_structure(session, _id(clsm), structure_id)
    d.set_structure_active(session=session, row=row, active=active, version=version, actor=actor)
    session.commit()
    return row


def create_contact(*, session: Session, clsm: Clsm, data: d.ContactCreate, actor: Actor) -> Contact:
    row = d.create_contact(session=session, clsm_id=_id(clsm), data=data, actor=actor)
    session.commit()
    return row


def update_contact(
    *,
    session: Session,
    clsm: Clsm,
    contact_id: int,
    data: d.ContactCreate,
    version: int,
    actor: Actor,
) -> Contact:
    row = d.get_contact(session, _id(clsm), contact_id)
    d.update_contact(
        session=session, clsm_id=_id(clsm), row=row, data=data, version=version, actor=actor
    )
    session.commit()
    return row


def set_contact_active(
    *, session: Session, clsm: Clsm, contact_id: int, active: bool, version: int, actor: Actor
) -> Contact:
    row = d.get_contact(session, _id(clsm), contact_id)
    d.set_contact_active(
        session=session, clsm_id=_id(clsm), row=row, active=active, version=version, actor=actor
    )
    session.commit()
    return row
