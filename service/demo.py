"""Demo data modelled on the seeds (Poitiers CLSM), loaded by `make up`; idempotent."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, select

from models.db import session_scope
from models.enums import Role
from models.people import Clsm, Contact, Organisation, Partnership, User
from models.settings import get_settings

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


# -- immersion session in progress (modelled on Poitiers, session 2) -------------------
DEMO_SESSION_TITLE = "Immersions professionnelles 2022 — session 2"
DEMO_APPLICANTS: list[tuple[str, str, str]] = [
    # (name, structure short name, function); order = order of application
    ("Amélie Garnier", "CCAS", "Conseillère en économie sociale et familiale"),
    ("Bruno Chevalier", "CHL", "Infirmier de secteur"),
    ("Chloé Robin", "Département", "Assistante sociale"),
    ("David Faure", "CHL", "Cadre de santé"),
    ("Emma Blanc", "UDAF", "Mandataire judiciaire"),
    ("Fabrice Henry", "CCAS", "Travailleur social"),
    ("Gaëlle Perrin", "Ekidom", "Chargée de gestion locative"),
    ("Hélène Morel", "CHL", "Psychologue"),
    ("Ismaël Dufour", "DAC-PTA", "Coordinateur de parcours"),
    ("Jeanne Mercier", "Département", "Éducatrice spécialisée"),
    ("Karim Boyer", "CHL", "Infirmier"),
    ("Laure Roussel", "ICF Habitat", "Conseillère sociale"),
    ("Mathieu Blanchard", "CCAS", "Agent d'accueil"),
    ("Nina Guerin", "MDPH", "Évaluatrice"),
    ("Olivier Muller", "CHL", "Assistant social hospitalier"),
    ("Pauline Lemoine", "UDAF", "Déléguée aux prestations familiales"),
    ("Quentin Picard", "Département", "Assistant social"),
    ("Rose Colin", "Ekidom", "Gardienne d'immeuble"),
    ("Samuel Arnaud", "CHL", "Aide-soignant"),
    ("Tiphaine Giraud", "DAC-PTA", "Infirmière coordinatrice"),
    ("Ugo Barbier", "CCAS", "Travailleur social"),
    ("Valérie Roche", "CHL", "Cadre socio-éducatif"),
    ("William Renaud", "Département", "Conseiller en insertion"),
    ("Yasmine Fabre", "ICF Habitat", "Chargée de médiation"),
]
DEMO_HOSTS = ["CCAS", "CHL", "Département", "DAC-PTA", "UDAF", "Ekidom", "ICF Habitat", "MDPH"]


def _demo_session(today: date) -> Any:
    """Launch data of the demo session, dated from today (call closing tomorrow)."""
    from datetime import datetime, time, timedelta

    from models import immersion as im
    from models.settings import get_settings

    tz = get_settings().tz
    prep = datetime.combine(today + timedelta(days=21), time(9), tz)
    window_start = prep.date() + timedelta(days=7)
    restitution = datetime.combine(window_start + timedelta(days=40), time(14), tz)
    return im.ImmersionSessionCreate(
        clsm_slug="poitiers",
        title=DEMO_SESSION_TITLE,
        structures=DEMO_HOSTS,
        capacity=16,
        host_capacity=3,
        min_days=3,
        max_days=5,
        call_opens_on=today,
        call_closes_at=datetime.combine(today + timedelta(days=1), time(18), tz),
        preparation_at=prep,
        preparation_end=prep + timedelta(hours=7),
        preparation_place="Maison de la solidarité, Poitiers",
        facilitator_name="Formatrice extérieure (représentations institutionnelles)",
        facilitator_email="formation@exemple.org",
        window_start=window_start,
        window_end=window_start + timedelta(days=30),
        restitution_at=restitution,
        restitution_end=restitution + timedelta(hours=3, minutes=30),
        restitution_place="CCAS de Poitiers",
        withdrawal_cutoff=prep - timedelta(days=2),
    )


def _email(name: str, home: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", f"{name}|{home}").encode("ascii", "ignore").decode()
    person, structure = plain.lower().split("|")
    return f"{person.replace(' ', '.')}@{structure.replace(' ', '-')}.example"


def load_immersion_demo(run_env: dict[str, str] | None = None) -> str:
    """A session in progress: 24 applications received, the call closed, a run suspended
    on the selection form in the Prefect UI (idempotent: one demo session, one run).

    `run_env`: environment of the flow run's process (tests point it at their database).
    """
    import asyncio

    from prefect.deployments.flow_runs import arun_deployment

    from models import clock
    from models import immersion as im
    from models.audit import Actor

    actor = Actor.system("demo")
    with session_scope() as session:
        row = session.exec(
            select(im.ImmersionSession).where(im.ImmersionSession.title == DEMO_SESSION_TITLE)
        ).first()
        if row is not None and row.flow_run_id != "demo-pending":
            return f"Session de démonstration déjà lancée (run {row.flow_run_id})."
        if row is None:
            data = _demo_session(clock.now(session).astimezone(get_settings().tz).date())
            row = im.create_session(
                session=session, data=data, flow_run_id="demo-pending", actor=actor
            )
            im.open_call(session=session, row=row, actor=actor)
            for n, (name, home, function) in enumerate(DEMO_APPLICANTS):
                org = im.find_organisation(session, row.clsm_id, home)
                assert org is not None and org.id is not None
                hosts = [h for h in DEMO_HOSTS if h != home]
                im.submit_application(
                    session=session,
                    row=row,
                    organisation_id=org.id,
                    form=im.ApplicationForm(
                        name=name,
                        email=_email(name, home),
                        function=function,
                        manager_name=f"Direction {home}",
                        manager_email=_email("direction", home),
                        motivation="Mieux connaître les missions et les limites d'intervention "
                        "des partenaires pour coopérer dans les situations complexes.",
                        wishes=[hosts[n % len(hosts)], hosts[(n + 3) % len(hosts)]],
                        availability="Plutôt en semaine, hors lundis",
                    ),
                    actor=actor,
                )
            im.close_call_now(session=session, row=row, actor=actor)
        data = _demo_session(row.call_opens_on)
        session_id = row.id
    assert session_id is not None
    parameters: dict[str, Any] = {
        **{k: v for k, v in data.model_dump(mode="json").items() if k in _FLOW_PARAMETERS},
        "clsm": "poitiers",
        "session_id": session_id,
    }
    run = asyncio.run(
        arun_deployment(
            "immersion-session/immersion-session",
            parameters=parameters,
            timeout=0,
            flow_run_name=f"Session {DEMO_SESSION_TITLE}",
            tags=["clsm:poitiers", "immersion", "démo"],
            job_variables={"env": run_env} if run_env else None,
        )
    )
    with session_scope() as session:
        im.attach_run(
            session=session,
            row=im.get_session(session, session_id),
            flow_run_id=str(run.id),
            actor=actor,
        )
    return f"Session de démonstration lancée : 24 candidatures, sélection attendue (run {run.id})."


_FLOW_PARAMETERS = {
    "title",
    "structures",
    "call_closes_at",
    "preparation_at",
    "window_start",
    "window_end",
    "restitution_at",
    "preparation_place",
    "restitution_place",
    "facilitator_name",
    "facilitator_email",
    "capacity",
    "host_capacity",
    "min_days",
    "max_days",
}
