"""Demo data modelled on the seeds (Poitiers CLSM), loaded by `make up`; idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from models.core.audit import Actor
from models.core.db import session_scope
from models.core.directory import ClsmCreate, create_clsm
from models.core.enums import Role
from models.core.people import Clsm, Organisation, User
from models.core.settings import Environment, get_settings
from models.saisine.intake import SaisineDescription, SaisineIntake

DEMO_PASSWORD = "demo-clsm-2026"


class DemoRefused(RuntimeError):
    """Demo data and accounts are never created in production."""


# Development only: `clsm setup` does not create them in production, and the service
# refuses them there (and any account whose password is the demo one). People's names:
# the audit trail names whoever decides in the Prefect UI.
DEMO_ACCOUNTS: list[tuple[str, str, Role]] = [
    ("coordination@clsm-poitiers.example", "Hélène Garnier", Role.COORDINATOR),
    ("audit@clsm-poitiers.example", "Martine Roche", Role.AUDITOR),
    ("admin@clsm.example", "Yves Lemoine", Role.ADMIN),
]


def is_demo_login(email: str, password: str) -> bool:
    return password == DEMO_PASSWORD or email in {a[0] for a in DEMO_ACCOUNTS}


DEMO_DIRECTORY = Path(__file__).parent / "demo_data" / "poitiers-annuaire.csv"
"""The Poitiers network (structures, contacts, conventions), loaded through the import."""


def _ensure_people(session: Session, clsm: Clsm) -> None:
    """The network, imported from the demo spreadsheet as a coordinator would (a second
    load finds every line unchanged and writes nothing)."""
    from models.core.directory.sheet_import import import_file

    assert clsm.id is not None
    import_file(
        session=session,
        clsm_id=clsm.id,
        filename=DEMO_DIRECTORY.name,
        content=DEMO_DIRECTORY.read_bytes(),
        actor=Actor.system("démonstration"),
    )


def _ensure_users(session: Session, clsm: Clsm) -> None:
    from service.security import hash_password

    for email, name, role in DEMO_ACCOUNTS:
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
    if get_settings().env is Environment.PRODUCTION:
        raise DemoRefused("Données de démonstration refusées en production.")
    with session_scope() as session:
        clsm = session.exec(select(Clsm).where(Clsm.slug == "poitiers")).first()
        if clsm is None:
            clsm = create_clsm(
                session=session,
                data=ClsmCreate(
                    slug="poitiers",
                    name="CLSM de Poitiers",
                    territory="Ville de Poitiers",
                    coordinator_name="Coordination du CLSM",
                    coordinator_email="coordination@clsm-poitiers.example",
                ),
                actor=Actor.system("démonstration"),
            )
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

    from models.core.calendar import next_open_day
    from models.core.settings import get_settings
    from models.immersion.tables import ImmersionSessionCreate

    tz = get_settings().tz
    # the meetings on open days: never a weekend or a public holiday
    prep = datetime.combine(next_open_day(today + timedelta(days=21)), time(9), tz)
    window_start = next_open_day(prep.date() + timedelta(days=7))
    restitution = datetime.combine(next_open_day(window_start + timedelta(days=40)), time(14), tz)
    return ImmersionSessionCreate(
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

    from models.core import clock
    from models.core.audit import Actor
    from models.immersion.call import (
        ApplicationForm,
        attach_run,
        close_call_now,
        create_session,
        open_call,
        submit_application,
    )
    from models.immersion.common import find_organisation, get_session
    from models.immersion.plan import launch_moments
    from models.immersion.tables import ImmersionSession

    actor = Actor.system("demo")
    with session_scope() as session:
        row = session.exec(
            select(ImmersionSession).where(ImmersionSession.title == DEMO_SESSION_TITLE)
        ).first()
        if row is not None and row.flow_run_id != "demo-pending":
            return f"Session de démonstration déjà lancée (run {row.flow_run_id})."
        if row is None:
            data = _demo_session(clock.now(session).astimezone(get_settings().tz).date())
            row = create_session(
                session=session, data=data, flow_run_id="demo-pending", actor=actor
            )
            open_call(session=session, row=row, actor=actor)
            for n, (name, home, function) in enumerate(DEMO_APPLICANTS):
                org = find_organisation(session, row.clsm_id, home)
                assert org is not None and org.id is not None
                hosts = [h for h in DEMO_HOSTS if h != home]
                submit_application(
                    session=session,
                    row=row,
                    organisation_id=org.id,
                    form=ApplicationForm(
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
            close_call_now(session=session, row=row, actor=actor)
        data = _demo_session(row.call_opens_on)
        session_id = row.id
    assert session_id is not None
    parameters: dict[str, Any] = {
        **{k: v for k, v in data.model_dump(mode="json").items() if k in _FLOW_PARAMETERS},
        **launch_moments(data.call_closes_at, data.preparation_at, data.restitution_at),
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
        attach_run(
            session=session,
            row=get_session(session, session_id),
            flow_run_id=str(run.id),
            actor=actor,
        )
    return f"Session de démonstration lancée : 24 candidatures, sélection attendue (run {run.id})."


_FLOW_PARAMETERS = {
    "title",
    "structures",
    "window_start",
    "window_end",
    "preparation_place",
    "restitution_place",
    "facilitator_name",
    "facilitator_email",
    "capacity",
    "host_capacity",
    "min_days",
    "max_days",
}


# -- saisines of the cell: the Poitiers 2022 table, then one open saisine --------------------
SAISINES_2022: list[dict[str, object]] = [
    {
        "day": date(2022, 1, 20),
        "referrer": "ICF Habitat",
        "consulted": ["CCAS", "DAC-PTA"],
        "cancelled_meeting": True,
        "kind": "concertation_meeting",
        "who": "ICF Habitat et le DAC-PTA",
        "detail": "Organisation d'une réunion de concertation par ICF Habitat et le DAC-PTA",
    },
    {
        "day": date(2022, 3, 14),
        "referrer": "MQ La Gibauderie",
        "consulted": ["CHL", "CCAS"],
        "kind": "care_path_coordinator",
        "who": "CHL",
        "detail": "Mise en lien avec la coordinatrice de parcours",
    },
    {
        "day": date(2022, 7, 7),
        "referrer": "D2SP - Pôle Salubrité publique",
        "consulted": ["CHL", "DAC-PTA", "CCAS"],
        "kind": "home_intervention",
        "who": "CHL et DAC-PTA",
        "detail": "Mise en lien avec CHL et DAC-PTA",
    },
    {
        "day": date(2022, 10, 11),
        "referrer": "Un chez Soi d'Abord",
        "consulted": ["CHL"],
        "kind": "synthesis_meeting",
        "who": "Secteur de psychiatrie",
        "detail": "Organisation d'une réunion de synthèse avec le secteur de psychiatrie",
    },
    {
        "day": date(2022, 11, 15),
        "referrer": "CHL - Service majeurs protégés",
        "consulted": ["CCAS", "Département", "DAC-PTA"],
        "decision": (
            "Organisation d'une réunion de concertation par le DAC une fois par an pour : "
            "- se prémunir de l'épuisement professionnel engendré par la complexité de la "
            "situation et qui pourrait fermer des portes à la personne accompagnée - Partager "
            "la responsabilité de cette situation et sortir des injonctions ressenties pour "
            "« faire quelque chose » - Anticiper autant que faire se peut une dégradation de la "
            "situation qui nécessiterait d'autres accompagnements"
        ),
        "invited": [
            "MDPH",
            "Un chez Soi d'Abord",
            "Service social du CHU",
            "Cadre des urgences du CHU",
        ],
    },
    {
        "day": date(2022, 12, 8),
        "referrer": "Mission Relations aux habitants et aux usagers",
        "consulted": ["CHL"],
        "kind": "relay",
        "who": "CHL",
        "detail": "Relai vers la coordinatrice de parcours du CHL",
    },
]

# Structures invited to the cell in 2022, with their conventions (seed 003).


def _org_by_label(session: Session, clsm_id: int, label: str) -> Organisation:
    from sqlmodel import col

    org = session.exec(
        select(Organisation).where(
            Organisation.clsm_id == clsm_id,
            (col(Organisation.short_name) == label) | (col(Organisation.name) == label),
        )
    ).first()
    assert org is not None, label
    return org


def _demo_intake(referrer: str, day: date) -> SaisineIntake:
    slug = "".join(ch for ch in referrer.lower() if ch.isalnum())[:20]
    return SaisineIntake(
        clsm_slug="poitiers",
        received_on=day,
        channel="téléphone",
        referring_structure=referrer,
        referrer_name=f"Référent {referrer}",
        referrer_email=f"contact@{slug}.example",
        urgent=False,
        # loaded into the app database directly (no run): the description is recorded at once
        description=SaisineDescription(
            initials="X.",
            age_range="41-60 ans",
            commune="Poitiers",
            difficulty="Situation d'exemple de la démonstration (bilan 2022 du CLSM de Poitiers).",
            consent_given=True,
            consent_note="",
        ),
    )


def _closed_2022_case(session: Session, clsm: Clsm, spec: dict[str, Any]) -> None:
    from models.core import clock
    from models.core.audit import Actor
    from models.core.settings import get_settings
    from models.saisine.common import (
        actions_of,
        close_saisine,
        consultations,
        escalate_to_level2,
        first_contact,
    )
    from models.saisine.decisions import (
        ActionPlan,
        close_action,
        mark_meeting_held,
        record_decision,
    )
    from models.saisine.intake import open_saisine
    from models.saisine.level1 import (
        consult_partners,
        record_consultation_answer,
        record_orientation,
    )
    from models.saisine.meetings import (
        back_to_level1,
        cancel_meeting,
        plan_meeting,
        proposed_host,
    )
    from models.saisine.rules import OrientationKind

    tz = get_settings().tz
    actor = Actor.system("démo")
    assert clsm.id is not None

    def at(day: date, hour: int) -> None:
        moment = datetime.combine(day, time(hour), tzinfo=tz)
        clock.set_offset(session=session, delta=moment - datetime.now(UTC))

    day: date = spec["day"]
    at(day - timedelta(days=10), 9)
    saisine = open_saisine(session=session, intake=_demo_intake(spec["referrer"], day), actor=actor)
    orgs = [_org_by_label(session, clsm.id, label).id for label in spec["consulted"]]
    consult_partners(
        session=session, saisine=saisine, organisation_ids=[o for o in orgs if o], actor=actor
    )
    at(day - timedelta(days=8), 11)
    for consultation in consultations(session, saisine):
        record_consultation_answer(
            session=session,
            consultation=consultation,
            knows_situation=True,
            proposal="Échange avec la coordination",
            actor=actor,
        )
    if spec.get("cancelled_meeting") or spec.get("decision"):
        escalate_to_level2(session=session, saisine=saisine, actor=actor, reason="démo")
        at(day - timedelta(days=7), 10)
        invited = [_org_by_label(session, clsm.id, label).id for label in spec.get("invited", [])]
        host = proposed_host(session, clsm.id)
        meeting = plan_meeting(
            session=session,
            saisine=saisine,
            starts_at=datetime.combine(day, time(14), tzinfo=tz),
            host_organisation_id=host.id,
            invited_ids=[i for i in invited if i],
            actor=actor,
        )
        if spec.get("cancelled_meeting"):
            cancel_meeting(
                session=session, meeting=meeting, reason="Réunion de cellule annulée", actor=actor
            )
            back_to_level1(session=session, saisine=saisine, reason="réunion annulée", actor=actor)
        else:
            at(day, 17)
            mark_meeting_held(session=session, meeting=meeting, actor=actor)
            dac = first_contact(session, _org_by_label(session, clsm.id, "DAC-PTA").id or 0)
            record_decision(
                session=session,
                saisine=saisine,
                meeting=meeting,
                text=str(spec["decision"]),
                actions=[
                    ActionPlan(
                        "Organiser la réunion de concertation annuelle",
                        dac.id or 0,
                        day + timedelta(days=60),
                    )
                ],
                actor=actor,
            )
            at(day + timedelta(days=50), 10)
            for action in actions_of(session, saisine):
                close_action(
                    session=session,
                    action=action,
                    note="réunion organisée",
                    actor=actor,
                    link_id=None,
                )
            close_saisine(session=session, saisine=saisine, reason="", actor=actor)
            return
    at(day, 16)
    record_orientation(
        session=session,
        saisine=saisine,
        kind=OrientationKind(spec["kind"]),
        who_acts=str(spec["who"]),
        detail=str(spec["detail"]),
        follow_up_on=None,
        actor=actor,
    )
    close_saisine(session=session, saisine=saisine, reason="orientation proposée", actor=actor)


def load_saisine_demo(start_open_run: bool = True) -> str:
    """The Poitiers 2022 saisines as closed cases, and one open saisine waiting at level 1.

    The 2022 cases are history: their mails are not queued. The open saisine is a real run
    of the `saisine` deployment (its partners form waits in the Prefect UI).
    """
    from sqlmodel import col, delete

    from models.core import clock
    from models.core.outbox import OutboxMessage
    from models.saisine.tables import Saisine

    with session_scope() as session:
        clsm = session.exec(select(Clsm).where(Clsm.slug == "poitiers")).one()
        assert clsm.id is not None
        done_2022 = session.exec(
            select(Saisine).where(
                Saisine.clsm_id == clsm.id, col(Saisine.reference).startswith("2022-")
            )
        ).first()
        if done_2022 is None:
            before = clock.offset(session)
            first_mail = (
                session.exec(
                    select(OutboxMessage.id).order_by(col(OutboxMessage.id).desc())
                ).first()
                or 0
            )
            for spec in SAISINES_2022:
                _closed_2022_case(session, clsm, spec)
            clock.set_offset(session=session, delta=before)
            session.execute(delete(OutboxMessage).where(col(OutboxMessage.id) > first_mail))
        has_run = session.exec(
            select(Saisine).where(Saisine.clsm_id == clsm.id, col(Saisine.flow_run_id).is_not(None))
        ).first()
    if start_open_run and has_run is None:
        import asyncio

        from service.orchestration import start_run

        asyncio.run(
            start_run(
                "saisine/saisine",
                {"intake": OPEN_SAISINE},
                tags=["saisine", "clsm:poitiers"],
            )
        )
    return (
        "Saisines de démonstration prêtes : bilan 2022 (6 saisines) "
        "et une saisine ouverte, dont la description est à saisir dans le service."
    )


OPEN_SAISINE: dict[str, object] = {
    "clsm": "poitiers",
    "channel": "téléphone",
    "referring_structure": "Ekidom",
    "referrer_name": "Léa Lambert",
    "referrer_email": "lea.lambert@ekidom.example",
    "urgent": False,
}
"""The open demo saisine's launch: ids and labels only. Its run waits for the description,
which the coordinator types on the service's page (the alert mail links to it)."""
