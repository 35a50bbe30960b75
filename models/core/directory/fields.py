"""What people type in the directory (pages, API, import): kinds, roles, the default
orientations and the input models."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from models.core.people import MailAddress

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
