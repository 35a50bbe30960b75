"""Intake: the coordinator records a saisine after the partner's call, in two parts.

The launch (flow parameters, so Prefect's database) carries ids and labels only: CLSM, date,
channel, referring structure and person, urgency. The description of the situation
(initials, age range, commune, difficulty, consent) is typed afterwards on a page of the
service, into the app database only: the run waits for it. Urgent situations are closed at
once (the cell is not an emergency service) and the referrer receives the emergency numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import ClassVar, Literal, get_args

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from models.core import clock
from models.core.audit import Actor
from models.core.calendar import at_local, local_date
from models.core.directory import match_structure
from models.core.errors import DomainError
from models.core.people import Clsm, Contact, Organisation
from models.core.settings import get_settings
from models.core.status import change_status
from models.core.waits import wake_case
from models.saisine.common import (
    EXAMPLE_REFERENCE,
    SaisineMail,
    alert_coordinator,
    event,
    mail,
    saisine_by_run,
    touch,
)
from models.saisine.plan import Next, Task
from models.saisine.states import SaisineStatus, WaitName, wait_step
from models.saisine.tables import SAISINE, Saisine

CHANNELS = ("téléphone", "courriel", "courrier", "rencontre")
AGE_RANGES = (
    "moins de 18 ans",
    "18-25 ans",
    "26-40 ans",
    "41-60 ans",
    "61-75 ans",
    "plus de 75 ans",
)


@dataclass(frozen=True)
class SaisineDescription:
    """The pseudonymised description of the situation (never in Prefect, never in a mail)."""

    initials: str
    age_range: str
    commune: str
    difficulty: str
    consent_given: bool
    consent_note: str


@dataclass(frozen=True)
class SaisineIntake:
    """What the coordinator types when launching the saisine (ids and labels only); a
    description given here (data loaded in the app database directly) is recorded at once."""

    clsm_slug: str
    received_on: date
    channel: str
    referring_structure: str
    referrer_name: str
    referrer_email: str
    urgent: bool
    referrer_function: str = ""
    description: SaisineDescription | None = None


class UrgentMail(SaisineMail):
    """To the referrer of an urgent situation: the emergency services to call."""

    template: ClassVar[str] = "saisine_urgent"

    @classmethod
    def example(cls) -> UrgentMail:
        return cls(reference=EXAMPLE_REFERENCE)


def next_reference(session: Session, clsm_id: int, year: int) -> str:
    count = session.exec(
        select(func.count())
        .select_from(Saisine)
        .where(Saisine.clsm_id == clsm_id, col(Saisine.reference).startswith(f"{year}-"))
    ).one()
    return f"{year}-{int(count) + 1:02d}"


def _find_or_create_referrer(
    session: Session, clsm_id: int, intake: SaisineIntake
) -> tuple[Organisation, Contact]:
    """The directory's structure the coordinator typed (case, accents, spaces, hyphens and
    aliases folded); a structure new to the directory is added, a near name is refused."""
    name = intake.referring_structure.strip()
    match = match_structure(session=session, clsm_id=clsm_id, name=name, include_inactive=True)
    org = match.found
    if org is None and match.near:
        names = " ou ".join(f"« {o.name} »" for o in match.near)
        raise DomainError(
            f"La structure « {name} » ressemble à {names} de l'annuaire : reprenez ce nom "
            "(ou ajoutez-le en alias de la structure), ou créez d'abord la nouvelle structure "
            "dans l'annuaire."
        )
    if org is None:
        org = Organisation(clsm_id=clsm_id, name=name, short_name=name[:60], kind="")
        session.add(org)
        session.flush()
    assert org.id is not None
    email = intake.referrer_email.strip().lower()
    contact = session.exec(
        select(Contact).where(Contact.organisation_id == org.id, Contact.email == email)
    ).first()
    if contact is None:
        contact = Contact(
            organisation_id=org.id,
            name=intake.referrer_name.strip() or email,
            email=email,
            function=intake.referrer_function,
        )
        session.add(contact)
        session.flush()
    return org, contact


def open_saisine(
    *,
    session: Session,
    intake: SaisineIntake,
    actor: Actor,
    flow_run_id: str | None = None,
    reference: str = "",
) -> Saisine:
    """Record a new saisine (idempotent per flow run); urgent ones are closed at once."""
    if flow_run_id:
        existing = saisine_by_run(session, flow_run_id)
        if existing is not None:
            return existing
    clsm = session.exec(select(Clsm).where(Clsm.slug == intake.clsm_slug)).first()
    if clsm is None or clsm.id is None:
        raise DomainError(f"CLSM « {intake.clsm_slug} » inconnu")
    if not intake.referrer_email.strip() or not intake.referring_structure.strip():
        raise DomainError(
            "La structure et l'adresse e-mail de la personne qui saisit sont requises."
        )
    org, contact = _find_or_create_referrer(session, clsm.id, intake)
    assert org.id is not None and contact.id is not None
    tz = get_settings().tz
    moment = clock.now(session)
    received_at = (
        moment
        if intake.received_on == local_date(moment, tz)
        else at_local(intake.received_on, 9, tz)
    )
    saisine = Saisine(
        clsm_id=clsm.id,
        reference=reference or next_reference(session, clsm.id, intake.received_on.year),
        received_at=received_at,
        channel=intake.channel,
        referrer_organisation_id=org.id,
        referrer_contact_id=contact.id,
        urgent=intake.urgent,
        flow_run_id=flow_run_id,
    )
    session.add(saisine)
    session.flush()
    event(
        session,
        saisine,
        "saisine.received",
        actor,
        {
            "reference": saisine.reference,
            "channel": saisine.channel,
            "referrer": org.label,
            "referrer_contact_id": contact.id,
            "urgent": saisine.urgent,
        },
    )
    if saisine.urgent:
        change_status(
            session=session,
            entity=saisine,
            to=SaisineStatus.URGENT_CLOSED,
            actor=actor,
            reason="situation d'urgence : la cellule n'est pas un service d'urgence",
        )
        saisine.closed_at = moment
        saisine.close_reason = "situation d'urgence, orientée vers les services d'urgence"
        mail(
            session,
            saisine,
            to=contact,
            message=UrgentMail(reference=saisine.reference),
            dedup_key="urgent-guidance",
        )
    elif intake.description is not None:
        describe_saisine(
            session=session, saisine=saisine, description=intake.description, actor=actor
        )
    touch(session, saisine)
    return saisine


# -- the description, typed by the coordinator on a page of the service ----------------------
class DescriptionForm(BaseModel):
    """The description page's form (the service renders it; no answer is preset)."""

    initials: str = Field(
        min_length=1,
        max_length=10,
        title="Initiales de la personne concernée",
        description="Les initiales seulement, jamais le nom (par exemple « M.D. »).",
    )
    age_range: Literal[
        "", "moins de 18 ans", "18-25 ans", "26-40 ans", "41-60 ans", "61-75 ans", "plus de 75 ans"
    ] = Field(default="", title="Tranche d'âge")
    commune: str = Field(default="", max_length=100, title="Commune")
    difficulty: str = Field(
        min_length=10,
        max_length=2000,
        title="Difficulté rencontrée",
        description="Quelques lignes : ce qui inquiète, depuis quand, qui intervient déjà.",
    )
    consent_given: bool = Field(
        default=False, title="La personne a consenti à ce que sa situation soit évoquée"
    )
    consent_note: str = Field(
        default="",
        max_length=500,
        title="Sinon, pourquoi le consentement n'a pu être recueilli",
    )

    def as_description(self) -> SaisineDescription:
        return SaisineDescription(
            initials=self.initials,
            age_range=self.age_range,
            commune=self.commune,
            difficulty=self.difficulty,
            consent_given=self.consent_given,
            consent_note=self.consent_note,
        )


assert set(get_args(DescriptionForm.model_fields["age_range"].annotation)) - {""} == set(AGE_RANGES)

DESCRIPTION_STEP = wait_step(WaitName.DESCRIPTION)


def describe_saisine(
    *, session: Session, saisine: Saisine, description: SaisineDescription, actor: Actor
) -> list[int]:
    """Record the description (app database only, audited); level 1 begins. The waiting
    run is marked to be woken: the caller delivers the wake-ups after its commit."""
    if saisine.status is not SaisineStatus.RECEIVED:
        raise DomainError(f"La description de la {saisine.label.lower()} est déjà enregistrée.")
    if not description.consent_given and not description.consent_note.strip():
        raise DomainError(
            "Le consentement de la personne n'est pas recueilli : indiquez pourquoi.",
            field="consent_note",
        )
    if not description.initials.strip() or not description.difficulty.strip():
        raise DomainError("Les initiales et la difficulté rencontrée sont requises.")
    if description.age_range and description.age_range not in AGE_RANGES:
        raise DomainError("Choisissez une des tranches d'âge proposées.", field="age_range")
    saisine.initials = description.initials.strip().upper()[:10]
    saisine.age_range = description.age_range or None
    saisine.commune = description.commune.strip() or None
    saisine.difficulty = description.difficulty.strip()
    saisine.consent_given = description.consent_given
    saisine.consent_note = description.consent_note.strip() or None
    event(
        session,
        saisine,
        "saisine.described",
        actor,
        {
            "initials": saisine.initials,
            "age_range": saisine.age_range,
            "commune": saisine.commune,
            "difficulty": saisine.difficulty,
            "consent_given": saisine.consent_given,
            "consent_note": saisine.consent_note,
        },
    )
    change_status(session=session, entity=saisine, to=SaisineStatus.LEVEL1, actor=actor)
    touch(session, saisine)
    assert saisine.id is not None
    return wake_case(
        session=session, case_type=SAISINE, case_id=saisine.id, steps=[DESCRIPTION_STEP]
    )


def description_url(saisine: Saisine) -> str:
    """The service page where the coordinator types the description."""
    return f"{get_settings().base_url.rstrip('/')}/saisines/{saisine.id}/description"


def next_when_received(session: Session, saisine: Saisine) -> Next:
    """The description is awaited from the coordinator (who is told where to type it);
    once recorded, this phase asks nothing more (the run's wait ends)."""
    if saisine.status is not SaisineStatus.RECEIVED:
        return Next()
    return Next.until(WaitName.DESCRIPTION, task=Task.ASK_DESCRIPTION)


def ask_description(*, session: Session, saisine: Saisine) -> None:
    """Mail the coordinator the link of the description page (once per saisine)."""
    alert_coordinator(
        session,
        saisine,
        alert="description",
        names=[],
        dedup_key="description-awaited",
        page_url=description_url(saisine),
    )
