"""The partnership: CLSMs, member structures, their people, accounts and conventions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from models.core.base import UTCDateTime
from models.core.enums import Role


def _deliverable(address: str) -> str:
    """Our mails reach any domain (internationalised ones in their IDNA form), but an
    address with accents before the @ would need every server on the way to accept it."""
    if not address.rpartition("@")[0].isascii():
        raise ValueError(
            "Pas d'accent ni de caractère spécial avant le @ : nos messages ne pourraient "
            "pas être remis à cette adresse."
        )
    return address


MailAddress = Annotated[EmailStr, AfterValidator(_deliverable)]
"""An e-mail address people type in, that our mails can reach (notifications.mime)."""


class ClsmBase(SQLModel):
    slug: str = Field(max_length=40, unique=True, index=True)
    name: str = Field(max_length=200)
    coordinator_name: str = Field(default="", max_length=200)
    coordinator_email: str = Field(default="", max_length=254)
    territory: str = Field(default="", max_length=200)
    time_zone: str = Field(default="Europe/Paris", max_length=60)
    sender_email: str = Field(default="", max_length=254)
    reply_to_email: str = Field(default="", max_length=254)


class Clsm(ClsmBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    version: int = 1


class ClsmPublic(ClsmBase):
    id: int
    version: int


class OrganisationBase(SQLModel):
    name: str = Field(max_length=200)
    short_name: str = Field(default="", max_length=60)
    kind: str = Field(default="", max_length=80)
    address: str = Field(default="", max_length=300)
    permanent_member: bool = False
    rotation_order: int | None = Field(default=None, ge=1, description="Rang dans la rotation")
    active: bool = True


class Organisation(OrganisationBase, table=True):
    __table_args__ = (UniqueConstraint("clsm_id", "name", name="uq_organisation_name"),)

    id: int | None = Field(default=None, primary_key=True)
    clsm_id: int = Field(foreign_key="clsm.id", index=True)
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    version: int = 1

    @property
    def label(self) -> str:
        return self.short_name or self.name


class OrganisationPublic(OrganisationBase):
    id: int
    clsm_id: int
    aliases: list[str]
    version: int


class ContactBase(SQLModel):
    name: str = Field(max_length=200)
    email: str = Field(max_length=254, index=True)
    function: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=40)
    active: bool = True


class Contact(ContactBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    version: int = 1


class ContactCreate(ContactBase):
    email: MailAddress
    organisation_id: int


class ContactPublic(ContactBase):
    id: int
    organisation_id: int
    roles: list[str]
    version: int


class User(SQLModel, table=True):
    """An account of the service: coordinators, auditors, admins (partners have none)."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=200)
    role: Role
    clsm_id: int | None = Field(default=None, foreign_key="clsm.id")
    password_hash: str = Field(max_length=200)
    api_token_hash: str | None = Field(default=None, max_length=64, index=True)
    active: bool = True
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UserPublic(SQLModel):
    id: int
    email: str
    name: str
    role: Role
    clsm_id: int | None


class PartnershipBase(SQLModel):
    starts_on: date
    ends_on: date
    title: str = Field(default="Convention bilatérale", max_length=200)
    signed_on: date | None = None
    document_ref: str = Field(default="", max_length=200)


class Partnership(PartnershipBase, table=True):
    """Bilateral convention of a structure with the CLSM's cell, valid between two dates."""

    id: int | None = Field(default=None, primary_key=True)
    clsm_id: int = Field(foreign_key="clsm.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    version: int = 1


class PartnershipPublic(PartnershipBase):
    id: int
    clsm_id: int
    organisation_id: int
    version: int


def valid_partners(*, session: Session, clsm_id: int, on: date) -> list[Organisation]:
    """Active structures whose bilateral convention covers the given day."""
    return list(
        session.exec(
            select(Organisation)
            .join(Partnership, col(Partnership.organisation_id) == col(Organisation.id))
            .where(
                Partnership.clsm_id == clsm_id,
                col(Organisation.active).is_(True),
                col(Partnership.starts_on) <= on,
                col(Partnership.ends_on) >= on,
            )
            .order_by(col(Organisation.name))
            .distinct()
        )
    )


def has_valid_partnership(*, session: Session, organisation_id: int, on: date) -> bool:
    return (
        session.exec(
            select(Partnership.id).where(
                Partnership.organisation_id == organisation_id,
                col(Partnership.starts_on) <= on,
                col(Partnership.ends_on) >= on,
            )
        ).first()
        is not None
    )


def get_clsm(*, session: Session, slug: str) -> Clsm | None:
    return session.exec(select(Clsm).where(Clsm.slug == slug)).first()
