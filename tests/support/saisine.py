"""A small cell for saisine tests: four permanent members, partners, conventions 2023–2027."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from uuid import uuid4

from sqlmodel import Session, select

from models.catalogue import step_kind
from models.core.audit import Actor
from models.core.links import StepLink, links_for
from models.core.outbox import OutboxMessage
from models.core.people import Clsm, Contact, Organisation
from models.saisine.intake import SaisineDescription, SaisineIntake
from tests import factories
from tests.support.env import TMP

VALID = (date(2023, 1, 1), date(2027, 12, 31))
EXPIRED = (date(2018, 6, 1), date(2022, 12, 31))

DIFFICULTY = "Refus de soins, logement très dégradé, voisinage inquiet depuis trois mois"
INITIALS = "QZ"


@dataclass
class Cell:
    clsm: Clsm
    orgs: dict[str, Organisation] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)

    def org_id(self, name: str) -> int:
        org_id = self.orgs[name].id
        assert org_id is not None
        return org_id


def build_cell(session: Session, slug: str = "poitiers") -> Cell:
    clsm = factories.clsm(session, slug=slug)
    cell = Cell(clsm=clsm)
    for name, permanent, convention in [
        ("CCAS", True, VALID),
        ("CHL", True, VALID),
        ("Département", True, VALID),
        ("DAC-PTA", True, VALID),
        ("MDPH", False, VALID),
        ("UDAF", False, VALID),
        ("Un chez Soi d'Abord", False, VALID),
        ("Ancien partenaire", False, EXPIRED),
    ]:
        org = factories.organisation(
            session, clsm, name=name, permanent=permanent, convention=convention
        )
        cell.orgs[name] = org
        slug_name = name.lower().replace(" ", "").replace("'", "").replace("é", "e")
        cell.contacts[name] = factories.contact(
            session, org, name=f"Référent {name}", email=f"referent@{slug_name}.example"
        )
    session.flush()
    return cell


def intake(
    slug: str = "poitiers", *, urgent: bool = False, on: date | None = None
) -> SaisineIntake:
    return SaisineIntake(
        clsm_slug=slug,
        received_on=on or date.today(),
        channel="téléphone",
        referring_structure="ICF Habitat",
        referrer_name="Nadia Fontaine",
        referrer_email="nadia.fontaine@icf.example",
        urgent=urgent,
        description=None if urgent else description(),
    )


def description(**changes: Any) -> SaisineDescription:
    """The situation as the coordinator types it on the service's page."""
    values: dict[str, Any] = {
        "initials": INITIALS,
        "age_range": "41-60 ans",
        "commune": "Poitiers",
        "difficulty": DIFFICULTY,
        "consent_given": False,
        "consent_note": "personne injoignable",
    }
    return SaisineDescription(**{**values, **changes})


def answer_link(session: Session, link: StepLink, values: dict[str, Any]) -> str:
    """What the service does on POST: validate with the step's form, record, consume."""
    from models.core.links import consume

    kind = step_kind(link.step)
    form = kind.form.model_validate(values)
    contact = session.get(Contact, link.contact_id)
    assert contact is not None and contact.id is not None
    message = kind.record(session, link, form, Actor.contact(contact.id, contact.name))
    consume(session=session, link=link)
    return message


def link_of(session: Session, case_type: Any, case_id: int, step: str, contact_id: int) -> StepLink:
    links = [
        lk
        for lk in links_for(session, case_type, case_id, step)
        if lk.contact_id == contact_id and lk.used_at is None
    ]
    assert links, f"no open link {step} for contact {contact_id}"
    return links[-1]


def outbox(session: Session) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))  # type: ignore[arg-type]


def markers() -> dict[str, str]:
    """Values of this test only (ASCII: found as bytes whatever the encoding of JSON)."""
    tag = uuid4().hex[:8].upper()
    return {
        "initials": f"Q{tag[:7]}",
        "commune": f"Commune-{tag}",
        "difficulty": f"Difficulte-marqueur-{tag} : refus de soins, logement degrade",
        "consent_note": f"Consentement-marqueur-{tag}",
    }


def prefect_files_holding(marks: dict[str, str]) -> list[tuple[str, str]]:
    """Every file of Prefect's home (database, -wal, -shm, results) and the stack's logs
    that holds a marker, read as bytes."""
    found = []
    roots = [Path(os.environ["PREFECT_HOME"]), TMP / "logs"]
    files = [f for root in roots for f in root.rglob("*") if f.is_file()]
    assert any(f.name.endswith(".db-wal") for f in files), "Prefect's WAL was read"
    for path in files:
        data = path.read_bytes()
        found += [(str(path), name) for name, mark in marks.items() if mark.encode() in data]
    return found
