"""The network directory of a CLSM: structures, contacts, conventions, cell, orientation
catalogue and past yearly totals.

Every change goes through one function here that checks the version read with the page
(optimistic locking), writes the row and records the change, before → after, on the CLSM's
own audit chain (`CaseType.CLSM`, case id = the CLSM's id) in the same transaction.
Nothing a case may refer to is ever deleted: structures, contacts and orientations are
deactivated (retired), and keep their history.

Functions other modules call: `match_structure` (a typed structure name against the
directory), `orientation_catalogue` (the CLSM's current orientations), `past_totals`
(yearly totals of the years before the product).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import UniqueConstraint, update
from sqlmodel import Field as Column
from sqlmodel import Session, SQLModel, col, select

from models.core import clock
from models.core.audit import Actor, record_event
from models.core.enums import CaseType
from models.core.errors import DomainError, NotFound, StaleUpdate
from models.core.kinds import CaseScope
from models.core.mails import MailContext
from models.core.outbox import OutboxMessage, Recipient, enqueue
from models.core.people import Clsm, Contact, MailAddress, Organisation, Partnership

EXPIRY_WARNING_DAYS = 60
"""The directory shows the conventions that end within this many days."""
EXPIRY_MAIL_DAYS = 30
"""`tick` mails the coordinator this many days before a convention ends."""


class StructureKind(StrEnum):
    HOSPITAL = "hospital"
    SOCIAL_SERVICE = "social_service"
    HOUSING = "housing"
    ASSOCIATION = "association"
    JUSTICE = "justice"
    EDUCATION = "education"
    HEALTH = "health"
    LOCAL_AUTHORITY = "local_authority"
    COORDINATION = "coordination"
    OTHER = "other"

    @staticmethod
    def labels() -> dict[StructureKind, str]:
        return KIND_LABELS


KIND_LABELS: dict[StructureKind, str] = {
    StructureKind.HOSPITAL: "établissement de santé (psychiatrie, hôpital)",
    StructureKind.SOCIAL_SERVICE: "service social",
    StructureKind.HOUSING: "logement, bailleur",
    StructureKind.ASSOCIATION: "association",
    StructureKind.JUSTICE: "justice, police",
    StructureKind.EDUCATION: "éducation",
    StructureKind.HEALTH: "santé de ville",
    StructureKind.LOCAL_AUTHORITY: "collectivité",
    StructureKind.COORDINATION: "coordination, appui",
    StructureKind.OTHER: "autre",
}


class ContactRole(StrEnum):
    REFERENT = "referent"
    IMMERSION = "immersion"
    MANAGER = "manager"


ROLE_LABELS: dict[ContactRole, str] = {
    ContactRole.REFERENT: "référent saisines",
    ContactRole.IMMERSION: "contact immersion",
    ContactRole.MANAGER: "responsable",
}

DEFAULT_ORIENTATIONS: list[tuple[str, str]] = [
    ("care_path_coordinator", "Mise en lien avec la coordinatrice de parcours"),
    ("dac_pta", "Orientation vers le DAC-PTA"),
    ("synthesis_meeting", "Organisation d'une réunion de synthèse"),
    ("concertation_meeting", "Organisation d'une réunion de concertation"),
    ("home_intervention", "Intervention au domicile"),
    ("relay", "Relais vers un partenaire"),
    ("other", "Autre orientation"),
]
"""The catalogue a new CLSM starts with (the codes of models.saisine_rules.OrientationKind)."""


# -- tables -------------------------------------------------------------------------------


class OrientationEntry(SQLModel, table=True):
    """One orientation of a CLSM's catalogue; retired entries stay for the cases that used
    them (a case keeps the label it recorded)."""

    __tablename__ = "orientation_entry"

    id: int | None = Column(default=None, primary_key=True)
    clsm_id: int = Column(foreign_key="clsm.id", index=True)
    code: str = Column(default="", max_length=40)
    label: str = Column(max_length=200)
    position: int = 0
    active: bool = True
    version: int = 1


class PastTotals(SQLModel, table=True):
    """Yearly totals of saisines of a year before the CLSM used the product."""

    __tablename__ = "past_totals"
    __table_args__ = (UniqueConstraint("clsm_id", "year", name="uq_past_totals_year"),)

    id: int | None = Column(default=None, primary_key=True)
    clsm_id: int = Column(foreign_key="clsm.id", index=True)
    year: int
    level1: int = 0
    level2: int = 0
    urgent: int = 0
    note: str = Column(default="", max_length=500)
    version: int = 1


# -- what people type (pages, API, import) -------------------------------------------------

_PHONE = re.compile(r"^\+?[0-9 .()-]{6,25}$")


class ClsmSettings(BaseModel):
    name: str = Field(title="Nom du CLSM", min_length=2, max_length=200)
    territory: str = Field(default="", title="Territoire", max_length=200)
    coordinator_name: str = Field(default="", title="Coordination (nom)", max_length=200)
    coordinator_email: MailAddress | None = Field(default=None, title="Adresse de la coordination")
    time_zone: str = Field(default="Europe/Paris", title="Fuseau horaire", max_length=60)
    sender_email: MailAddress | None = Field(
        default=None,
        title="Adresse d'expédition",
        description="Vide : l'adresse d'expédition de l'installation.",
    )
    reply_to_email: MailAddress | None = Field(
        default=None,
        title="Adresse de réponse",
        description="Vide : l'adresse de la coordination.",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"Fuseau horaire inconnu : « {value} » (ex. Europe/Paris).") from None
        return value

    def values(self) -> dict[str, Any]:
        return {k: ("" if v is None else v) for k, v in self.model_dump().items()}


class ClsmCreate(ClsmSettings):
    slug: str = Field(
        title="Identifiant court",
        description="Lettres minuscules, chiffres et tirets, par exemple « bocage-bressuirais ».",
        min_length=2,
        max_length=40,
        pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
    )


class StructureCreate(BaseModel):
    name: str = Field(title="Nom de la structure", min_length=2, max_length=200)
    short_name: str = Field(default="", title="Nom court", max_length=60)
    aliases: list[str] = Field(
        default_factory=list,
        title="Autres noms (alias)",
        description="Sigles ou noms d'usage par lesquels on la désigne.",
    )
    kind: StructureKind | None = Field(default=None, title="Catégorie")
    address: str = Field(default="", title="Adresse", max_length=300)
    permanent_member: bool = Field(default=False, title="Membre permanent de la cellule")
    rotation_order: int | None = Field(
        default=None,
        title="Rang dans la rotation des réunions",
        description="Pour les membres permanents : 1 accueille en premier, puis 2…",
        ge=1,
        le=99,
    )

    @field_validator("name", "short_name", "address")
    @classmethod
    def _tidy(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("aliases")
    @classmethod
    def _tidy_aliases(cls, values: list[str]) -> list[str]:
        tidy = [" ".join(v.split()) for v in values if v.strip()]
        for alias in tidy:
            if len(alias) > 200:
                raise ValueError("Un alias dépasse 200 caractères.")
        return tidy


class ContactCreate(BaseModel):
    organisation_id: int = Field(title="Structure", ge=1)
    name: str = Field(title="Nom et prénom", min_length=2, max_length=200)
    function: str = Field(default="", title="Fonction", max_length=200)
    email: MailAddress = Field(title="Adresse électronique")
    phone: str = Field(default="", title="Téléphone", max_length=40)
    roles: list[ContactRole] = Field(default_factory=list, title="Rôles")

    @field_validator("name", "function")
    @classmethod
    def _tidy(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        value = value.strip()
        if value and not _PHONE.match(value):
            raise ValueError("Numéro de téléphone invalide (chiffres, espaces, + . - et ( )).")
        return value

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, values: list[ContactRole]) -> list[ContactRole]:
        return [role for role in ContactRole if role in values]


class ConventionCreate(BaseModel):
    organisation_id: int = Field(title="Structure", ge=1)
    signed_on: date | None = Field(default=None, title="Signée le")
    starts_on: date = Field(title="Valable à partir du")
    ends_on: date = Field(title="Valable jusqu'au")
    document_ref: str = Field(
        default="",
        title="Référence du document signé",
        description="Numéro ou emplacement de l'exemplaire signé.",
        max_length=200,
    )

    @model_validator(mode="after")
    def _ordered(self) -> ConventionCreate:
        if self.ends_on < self.starts_on:
            raise ValueError("La fin de validité précède son début.")
        return self


class OrientationCreate(BaseModel):
    label: str = Field(title="Libellé de l'orientation", min_length=3, max_length=200)

    @field_validator("label")
    @classmethod
    def _tidy(cls, value: str) -> str:
        return " ".join(value.split())


class PastTotalsCreate(BaseModel):
    year: int = Field(title="Année", ge=2000, le=2100)
    level1: int = Field(default=0, title="Saisines de niveau 1", ge=0, le=100000)
    level2: int = Field(default=0, title="Saisines de niveau 2", ge=0, le=100000)
    urgent: int = Field(default=0, title="Situations d'urgence", ge=0, le=100000)
    note: str = Field(default="", title="Note", max_length=500)


# -- name matching -------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―'’‘`´.,_/]+")
NEAR_RATIO = 0.8


def fold(name: str) -> str:
    """A structure name as compared: no case, accents, spaces, hyphens nor apostrophes."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub("", plain.casefold())


@dataclass
class StructureMatch:
    """What a typed name designates: one structure, or none with the near ones to propose."""

    typed: str
    found: Organisation | None = None
    by_alias: bool = False
    near: list[Organisation] = field(default_factory=list)


def _names(org: Organisation) -> list[str]:
    return [org.name, *(org.aliases or [])] + ([org.short_name] if org.short_name else [])


def match_structure(
    *, session: Session, clsm_id: int, name: str, include_inactive: bool = False
) -> StructureMatch:
    """The CLSM's structure a person means by `name` (case, accents, spaces, hyphens,
    apostrophes, aliases and short names folded); if none, the near ones (difflib), so that
    a caller proposes them rather than silently creating a duplicate."""
    query = select(Organisation).where(Organisation.clsm_id == clsm_id)
    if not include_inactive:
        query = query.where(col(Organisation.active).is_(True))
    return match_among(list(session.exec(query.order_by(col(Organisation.name)))), name)


def match_among(structures: list[Organisation], name: str) -> StructureMatch:
    key = fold(name)
    result = StructureMatch(typed=name)
    if not key:
        return result
    for org in structures:
        if fold(org.name) == key:
            result.found = org
            return result
    for org in structures:
        if any(fold(alias) == key for alias in _names(org)[1:]):
            result.found, result.by_alias = org, True
            return result
    scored = []
    for org in structures:
        best = max(difflib.SequenceMatcher(None, key, fold(n)).ratio() for n in _names(org))
        if best >= NEAR_RATIO:
            scored.append((best, org.name, org))
    result.near = [org for _score, _name, org in sorted(scored, key=lambda s: (-s[0], s[1]))]
    return result


class NearDuplicate(DomainError):
    """A new structure's name is close to an existing one: confirm it is another one."""

    def __init__(self, name: str, near: list[Organisation]) -> None:
        names = ", ".join(f"« {o.name} »" for o in near)
        super().__init__(
            f"« {name} » ressemble à {names}. S'il s'agit de la même structure, modifiez-la "
            "(ou ajoutez ce nom en alias) ; sinon, confirmez la création."
        )
        self.near = near


# -- audit and optimistic locking ----------------------------------------------------------


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


# -- CLSM ----------------------------------------------------------------------------------


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


# -- structures ----------------------------------------------------------------------------


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


# -- contacts ------------------------------------------------------------------------------


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


# -- conventions ---------------------------------------------------------------------------


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


# -- orientation catalogue -----------------------------------------------------------------


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


# -- past yearly totals --------------------------------------------------------------------


def past_totals(session: Session, clsm_id: int) -> list[PastTotals]:
    """Yearly totals entered for the years before the product, oldest first (for the yearly
    report's evolution over years)."""
    return list(
        session.exec(
            select(PastTotals).where(PastTotals.clsm_id == clsm_id).order_by(col(PastTotals.year))
        )
    )


def set_past_totals(
    *,
    session: Session,
    clsm_id: int,
    data: PastTotalsCreate,
    version: int | None,
    actor: Actor,
) -> PastTotals:
    """Enter (or correct) one year's totals; `version` is checked when the year exists."""
    row = session.exec(
        select(PastTotals).where(PastTotals.clsm_id == clsm_id, PastTotals.year == data.year)
    ).first()
    if row is None:
        row = PastTotals(clsm_id=clsm_id, **data.model_dump())
        _created(session, row, clsm_id, "directory.totals.created", actor, f"Année {data.year}")
        return row
    _change(
        session,
        row=row,
        clsm_id=clsm_id,
        values=data.model_dump(),
        version=version,
        what=f"Les totaux de {data.year}",
        action="directory.totals.updated",
        actor=actor,
    )
    return row


class ConventionExpiringMail(MailContext):
    """To the coordinator: a convention ends soon (the structure then leaves the partners)."""

    template: ClassVar[str] = "convention_expiring"
    structure: str
    ends_on: datetime  # noon of the last day, in the CLSM's time zone
    directory_path: str

    @classmethod
    def example(cls) -> ConventionExpiringMail:
        return cls(
            structure="CCAS de Bressuire",
            ends_on=datetime.fromisoformat("2027-01-15T12:00:00+01:00"),
            directory_path="/directory/bocage-bressuirais/conventions",
        )


DIRECTORY_MAILS: tuple[type[MailContext], ...] = (ConventionExpiringMail,)


def queue_convention_reminders(session: Session) -> int:
    """Queue, for each CLSM's coordinator, one mail per convention ending within
    `EXPIRY_MAIL_DAYS` days (once per convention and end date); how many were new."""
    today = clock.now(session).date()
    queued = 0
    for owner in session.exec(select(Clsm).where(Clsm.coordinator_email != "")):
        assert owner.id is not None
        scope = CaseScope(CaseType.CLSM, owner.id, owner.id, f"Annuaire du {owner.name}")
        for convention, structure in expiring_conventions(
            session, owner.id, today, within_days=EXPIRY_MAIL_DAYS
        ):
            key = f"convention-{convention.id}-fin-{convention.ends_on.isoformat()}"
            known = session.exec(
                select(OutboxMessage.id).where(
                    OutboxMessage.case_type == CaseType.CLSM.value,
                    OutboxMessage.case_id == owner.id,
                    OutboxMessage.dedup_key == key,
                )
            ).first()
            if known is not None:
                continue
            enqueue(
                session=session,
                scope=scope,
                to=Recipient(email=owner.coordinator_email, name=owner.coordinator_name),
                template="convention_expiring",
                context=ConventionExpiringMail(
                    structure=structure.name,
                    ends_on=datetime.combine(
                        convention.ends_on, time(12), ZoneInfo(owner.time_zone)
                    ),
                    directory_path=f"/directory/{owner.slug}/conventions",
                ).as_context(),
                dedup_key=key,
            )
            queued += 1
    return queued
