"""Demo data modelled on the seeds (Poitiers CLSM), loaded by `make up`; idempotent."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from models.db import session_scope
from models.enums import Role
from models.people import Clsm, Contact, Organisation, Partnership, User

DEMO_PASSWORD = "demo-clsm-2026"

ORGANISATIONS: list[tuple[str, str, str, bool, list[tuple[str, str, str]]]] = [
    (
        "CCAS de Poitiers",
        "CCAS",
        "action sociale",
        True,
        [("Claire Martin", "claire.martin@ccas.example", "Responsable du pôle santé")],
    ),
    (
        "Centre hospitalier Henri Laborit",
        "CHL",
        "psychiatrie",
        True,
        [
            ("Dr Paul Bernard", "paul.bernard@chl.example", "Psychiatre"),
            ("Inès Moreau", "ines.moreau@chl.example", "Coordinatrice de parcours"),
        ],
    ),
    (
        "Département de la Vienne",
        "Département",
        "action sociale",
        True,
        [("Sophie Petit", "sophie.petit@vienne.example", "Assistante sociale de secteur")],
    ),
    (
        "Dispositif d'appui à la coordination",
        "DAC-PTA",
        "coordination",
        True,
        [("Julien Roux", "julien.roux@dac.example", "Coordinateur")],
    ),
    (
        "ICF Habitat Atlantique",
        "ICF Habitat",
        "bailleur social",
        False,
        [("Nadia Fontaine", "nadia.fontaine@icf.example", "Chargée de gestion sociale")],
    ),
    (
        "UDAF de la Vienne",
        "UDAF",
        "protection des majeurs",
        False,
        [("Marc Girard", "marc.girard@udaf.example", "Mandataire judiciaire")],
    ),
    (
        "Ekidom",
        "Ekidom",
        "bailleur social",
        False,
        [("Léa Lambert", "lea.lambert@ekidom.example", "Conseillère sociale")],
    ),
    (
        "Maison départementale des personnes handicapées",
        "MDPH",
        "handicap",
        False,
        [("Hugo Lefèvre", "hugo.lefevre@mdph.example", "Référent insertion")],
    ),
]


def _ensure_people(session: Session, clsm: Clsm) -> None:
    assert clsm.id is not None
    for name, short, kind, permanent, contacts in ORGANISATIONS:
        org = session.exec(
            select(Organisation).where(Organisation.clsm_id == clsm.id, Organisation.name == name)
        ).first()
        if org is None:
            org = Organisation(
                clsm_id=clsm.id,
                name=name,
                short_name=short,
                kind=kind,
                permanent_member=permanent,
                address="Poitiers",
            )
            session.add(org)
            session.flush()
            assert org.id is not None
            session.add(
                Partnership(
                    clsm_id=clsm.id,
                    organisation_id=org.id,
                    starts_on=date(2023, 1, 1),
                    ends_on=date(2027, 12, 31),
                )
            )
            session.add(
                Partnership(
                    clsm_id=clsm.id,
                    organisation_id=org.id,
                    starts_on=date(2018, 6, 1),
                    ends_on=date(2022, 12, 31),
                )
            )
            for contact_name, email, function in contacts:
                session.add(
                    Contact(
                        organisation_id=org.id, name=contact_name, email=email, function=function
                    )
                )


def _ensure_users(session: Session, clsm: Clsm) -> None:
    from service.security import hash_password

    for email, name, role in [
        ("coordination@clsm-poitiers.example", "Coordination du CLSM", Role.COORDINATOR),
        ("audit@clsm-poitiers.example", "Auditrice", Role.AUDITOR),
        ("admin@clsm.example", "Administration", Role.ADMIN),
    ]:
        if session.exec(select(User).where(User.email == email)).first() is None:
            session.add(
                User(
                    email=email,
                    name=name,
                    role=role,
                    clsm_id=clsm.id,
                    password_hash=hash_password(DEMO_PASSWORD),
                )
            )


def load_demo() -> str:
    """Create the demo CLSM, structures, contacts, conventions and accounts if missing."""
    with session_scope() as session:
        clsm = session.exec(select(Clsm).where(Clsm.slug == "poitiers")).first()
        if clsm is None:
            clsm = Clsm(
                slug="poitiers",
                name="CLSM de Poitiers",
                coordinator_name="Coordination du CLSM",
                coordinator_email="coordination@clsm-poitiers.example",
            )
            session.add(clsm)
            session.flush()
        _ensure_people(session, clsm)
        _ensure_users(session, clsm)
    return (
        f"Données de démonstration prêtes. Comptes : coordination@clsm-poitiers.example, "
        f"audit@clsm-poitiers.example (mot de passe : {DEMO_PASSWORD})"
    )
