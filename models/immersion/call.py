"""The call for candidates: launching the session, the call mailed to the invited structures,
its reminder, and the application form a professional fills in through the call's link."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel
from pydantic import Field as FormField
from sqlmodel import Session, col, select

from models.core import clock
from models.core.audit import Actor
from models.core.calendar import INSIST, closed_day
from models.core.errors import DomainError, NotFound
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.people import Clsm, Contact, MailAddress, Organisation
from models.core.settings import get_settings
from models.core.status import change_status
from models.immersion.common import (
    EXAMPLE_TITLE,
    SessionMail,
    applications,
    bump,
    contact,
    ensure_contact,
    event,
    find_organisation,
    get_session,
    invited,
    link,
    mail,
    organisation,
    sent,
    session_by_run,
)
from models.immersion.plan import duration_label, preparation_label, when, window_label
from models.immersion.states import SessionStatus, Step
from models.immersion.tables import (
    CASE,
    Application,
    ImmersionSession,
    ImmersionSessionCreate,
    InvitedStructure,
)


# -- mails ------------------------------------------------------------------------------
class CallMail(SessionMail):
    """The call for candidates, to every contact of an invited structure."""

    template: ClassVar[str] = "immersion_call"
    link_id: int
    closes_at: str
    capacity: int
    window: str
    days: str
    preparation: str
    restitution: str

    @classmethod
    def example(cls) -> CallMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            link_id=1,
            closes_at="30/09/2022 à 18:00",
            capacity=16,
            window="du 10/10/2022 au 08/11/2022",
            days="1 à 5 jours",
            preparation="04/10/2022 à 09:00, Maison des solidarités",
            restitution="15/11/2022 à 14:00, CCAS",
        )


class CallReminderMail(SessionMail):
    """The call closes soon."""

    template: ClassVar[str] = "immersion_call_reminder"
    link_id: int
    closes_at: str

    @classmethod
    def example(cls) -> CallReminderMail:
        return cls(session_title=EXAMPLE_TITLE, link_id=1, closes_at="30/09/2022 à 18:00")


class ApplicationReceivedMail(SessionMail):
    """To the applicant: the application is recorded, with a link to change or withdraw it."""

    template: ClassVar[str] = "immersion_application_received"
    link_id: int
    number: int
    wishes: list[str]
    closes_at: str

    @classmethod
    def example(cls) -> ApplicationReceivedMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            link_id=1,
            number=3,
            wishes=["CHL", "UDAF"],
            closes_at="30/09/2022 à 18:00",
        )


# -- launch -----------------------------------------------------------------------------
def create_session(
    *, session: Session, data: ImmersionSessionCreate, flow_run_id: str, actor: Actor
) -> ImmersionSession:
    """The session of this flow run, created on its first execution (idempotent)."""
    existing = session_by_run(session, flow_run_id)
    if existing is not None:
        return existing
    clsm = session.exec(select(Clsm).where(Clsm.slug == data.clsm_slug)).first()
    if clsm is None or clsm.id is None:
        raise NotFound(f"CLSM « {data.clsm_slug} » introuvable")
    orgs: list[Organisation] = []
    unknown: list[str] = []
    for name in data.structures:
        org = find_organisation(session, clsm.id, name)
        if org is None:
            unknown.append(name)
        elif org not in orgs:
            orgs.append(org)
    if unknown:
        raise DomainError(f"structures inconnues dans ce CLSM : {', '.join(unknown)}")
    if len(orgs) < 2:
        raise DomainError("invitez au moins deux structures (les stages sont croisés)")
    errors = _launch_errors(data)
    if errors:
        raise DomainError("paramètres de la session refusés : " + " ; ".join(errors))
    fields = data.model_dump(exclude={"clsm_slug", "structures", "host_capacity", "insist"})
    row = ImmersionSession(
        **fields, clsm_id=clsm.id, flow_run_id=flow_run_id, created_at=clock.now(session)
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    for org in orgs:
        assert org.id is not None
        session.add(
            InvitedStructure(
                session_id=row.id, organisation_id=org.id, host_capacity=data.host_capacity
            )
        )
    session.flush()
    event(
        session,
        row,
        "session.created",
        actor,
        {
            "title": row.title,
            "capacity": row.capacity,
            "max_per_structure": row.max_per_structure,
            "structures": [o.label for o in orgs],
            "flow_run_id": flow_run_id,
        },
    )
    return row


def _launch_errors(data: ImmersionSessionCreate) -> list[str]:
    errors: list[str] = []
    tz = get_settings().tz
    for label, moment in (
        ("la journée de préparation", data.preparation_at),
        ("la restitution", data.restitution_at),
    ):
        closed = None if data.insist else closed_day(moment.astimezone(tz).date())
        if closed:
            errors.append(f"{label} : {closed} (choisissez un autre jour, ou cochez « {INSIST} »)")
    if data.capacity < 1:
        errors.append("la capacité doit être d'au moins 1")
    if not 1 <= data.min_days <= data.max_days <= 5:
        errors.append("la durée doit aller de 1 à 5 jours (minimum ≤ maximum)")
    if data.window_end < data.window_start:
        errors.append("la période d'immersion finit avant de commencer")
    if data.preparation_end <= data.preparation_at:
        errors.append("la journée de préparation finit avant de commencer")
    if data.restitution_end <= data.restitution_at:
        errors.append("la restitution finit avant de commencer")
    if data.call_closes_at >= data.preparation_at:
        errors.append("l'appel à candidatures doit se clore avant la journée de préparation")
    return errors


def attach_run(*, session: Session, row: ImmersionSession, flow_run_id: str, actor: Actor) -> None:
    """A session prepared beforehand (demo, import) is carried on by this flow run."""
    if row.flow_run_id == flow_run_id:
        return
    previous = row.flow_run_id
    row.flow_run_id = flow_run_id
    session.add(row)
    bump(session, row)
    event(
        session,
        row,
        "session.run-attached",
        actor,
        {"flow_run_id": flow_run_id, "previous": previous},
    )


def start_session(
    *,
    session: Session,
    data: ImmersionSessionCreate,
    session_id: int,
    flow_run_id: str,
    actor: Actor,
) -> int:
    """The id of the session this flow run carries: created, or prepared and attached."""
    if session_id:
        row = get_session(session, session_id)
        attach_run(session=session, row=row, flow_run_id=flow_run_id, actor=actor)
    else:
        row = create_session(session=session, data=data, flow_run_id=flow_run_id, actor=actor)
    assert row.id is not None
    return row.id


# -- the call ---------------------------------------------------------------------------
def open_call(*, session: Session, row: ImmersionSession, actor: Actor) -> int:
    """Mail the call for candidates (a multi-use link) to every invited structure's contacts."""
    assert row.id is not None
    count = 0
    for inv in invited(session, row.id):
        for person in session.exec(
            select(Contact).where(Contact.organisation_id == inv.organisation_id)
        ):
            key = f"call-{person.id}"
            if sent(session, row, key):
                continue
            issued = link(
                session, row, person, Step.APPLY, inv.id, multi_use=True, until=row.call_closes_at
            )
            assert issued.id is not None
            mail(
                session,
                row,
                to=person,
                message=CallMail(
                    session_title=row.title,
                    link_id=issued.id,
                    closes_at=when(row.call_closes_at),
                    capacity=row.capacity,
                    window=window_label(row),
                    days=duration_label(row),
                    preparation=preparation_label(row),
                    restitution=f"{when(row.restitution_at)}, {row.restitution_place}",
                ),
                dedup_key=key,
            )
            count += 1
    if row.status is SessionStatus.DRAFT:
        change_status(
            session=session,
            entity=row,
            to=SessionStatus.CALL_OPEN,
            actor=actor,
            details={"invitations": count},
        )
        bump(session, row)
    return count


def close_call_now(*, session: Session, row: ImmersionSession, actor: Actor) -> None:
    """The coordinator closes the call before its date (the flow then moves to selection)."""
    now = clock.now(session)
    if row.status is not SessionStatus.CALL_OPEN or row.call_closes_at <= now:
        return
    previous = row.call_closes_at
    row.call_closes_at = now
    session.add(row)
    bump(session, row)
    event(session, row, "call.closed-early", actor, {"planned": previous.isoformat()})


def remind_call(*, session: Session, row: ImmersionSession) -> int:
    """Remind the invited contacts that the call closes soon (once)."""
    count = 0
    for issued in session.exec(
        select(StepLink).where(
            StepLink.case_type == CASE.value,
            StepLink.case_id == row.id,
            StepLink.step == Step.APPLY,
        )
    ):
        person = contact(session, issued.contact_id)
        key = f"call-reminder-{person.id}"
        if not sent(session, row, key):
            assert issued.id is not None
            mail(
                session,
                row,
                to=person,
                message=CallReminderMail(
                    session_title=row.title, link_id=issued.id, closes_at=when(row.call_closes_at)
                ),
                dedup_key=key,
            )
            count += 1
    return count


def start_selection(*, session: Session, row: ImmersionSession, actor: Actor) -> None:
    """The call is closed: the session moves to selection."""
    if row.status is SessionStatus.CALL_OPEN:
        change_status(session=session, entity=row, to=SessionStatus.SELECTION, actor=actor)
        bump(session, row)


# -- applications -----------------------------------------------------------------------
class ApplicationForm(BaseModel):
    """Formulaire de candidature."""

    name: str = FormField(title="Prénom et nom", min_length=2, max_length=200)
    email: MailAddress = FormField(title="Adresse électronique")
    function: str = FormField(title="Fonction", min_length=2, max_length=200)
    manager_name: str = FormField(title="Nom de votre responsable hiérarchique", max_length=200)
    manager_email: MailAddress = FormField(title="Adresse électronique de votre responsable")
    motivation: str = FormField(
        title="Motivation", description="Ce que vous attendez de l'immersion", max_length=4000
    )
    wishes: list[str] = FormField(
        title="Structures d'accueil souhaitées",
        description="Une par ligne, la préférée en premier (nom ou sigle)",
        min_length=1,
        max_length=5,
    )
    availability: str = FormField(
        default="", title="Disponibilités", description="Jours ou périodes", max_length=1000
    )


def wish_ids(session: Session, row: ImmersionSession, names: Sequence[str], home: int) -> list[int]:
    """The invited structures named as wishes, in order; never the applicant's own."""
    assert row.id is not None
    allowed = {inv.organisation_id for inv in invited(session, row.id)}
    ids: list[int] = []
    for name in names:
        org = find_organisation(session, row.clsm_id, name)
        if org is None or org.id not in allowed:
            raise DomainError(
                f"« {name} » ne fait pas partie des structures de la session", field="wishes"
            )
        if org.id == home:
            raise DomainError(
                f"« {name} » est votre propre structure : choisissez une autre structure",
                field="wishes",
            )
        if org.id not in ids:
            ids.append(org.id)
    return ids


def submit_application(
    *,
    session: Session,
    row: ImmersionSession,
    organisation_id: int,
    form: ApplicationForm,
    actor: Actor,
) -> Application:
    """Record an application, number it, mail the applicant a personal link."""
    assert row.id is not None
    if row.status is not SessionStatus.CALL_OPEN or clock.now(session) >= row.call_closes_at:
        raise DomainError("l'appel à candidatures est clos")
    wishes = wish_ids(session, row, form.wishes, organisation_id)
    created: list[int] = []
    applicant = ensure_contact(
        session,
        organisation_id=organisation_id,
        name=form.name,
        email=str(form.email),
        function=form.function,
        created=created,
    )
    if any(a.contact_id == applicant.id for a in applications(session, row.id)):
        raise DomainError(
            "vous avez déjà candidaté : utilisez le lien personnel reçu pour modifier"
        )
    manager = ensure_contact(
        session,
        organisation_id=organisation_id,
        name=form.manager_name,
        email=str(form.manager_email),
        function="Responsable hiérarchique",
        created=created,
    )
    last = session.exec(
        select(Application.number)
        .where(Application.session_id == row.id)
        .order_by(col(Application.number).desc())
    ).first()
    assert applicant.id is not None and manager.id is not None
    application = Application(
        session_id=row.id,
        number=(last or 0) + 1,
        contact_id=applicant.id,
        organisation_id=organisation_id,
        function=form.function,
        manager_contact_id=manager.id,
        motivation=form.motivation,
        wishes=wishes,
        availability=form.availability,
        submitted_at=clock.now(session),
        created_contacts=created,
    )
    session.add(application)
    session.flush()
    assert application.id is not None
    event(
        session,
        row,
        "application.submitted",
        actor,
        {
            "application_id": application.id,
            "number": application.number,
            "organisation_id": organisation_id,
            "wishes": wishes,
        },
    )
    personal = link(
        session,
        row,
        applicant,
        Step.CHANGE,
        application.id,
        multi_use=True,
        until=row.withdrawal_cutoff,
    )
    assert personal.id is not None
    mail(
        session,
        row,
        to=applicant,
        message=ApplicationReceivedMail(
            session_title=row.title,
            link_id=personal.id,
            number=application.number,
            wishes=[organisation(session, w).label for w in wishes],
            closes_at=when(row.call_closes_at),
        ),
        dedup_key=f"application-{application.id}-received",
    )
    return application


def _page(session: Session, issued: StepLink) -> StepPage:
    row = get_session(session, issued.case_id)
    person = contact(session, issued.contact_id)
    hosts = [organisation(session, i.organisation_id) for i in invited(session, row.id or 0)]
    return StepPage(
        title="Candidater à une immersion professionnelle",
        case_label=row.reference,
        paragraphs=[
            "Les stages croisés permettent de passer de 1 à 5 jours en observation dans une "
            "structure partenaire du CLSM, précédés d'une journée de préparation et suivis "
            "d'une restitution.",
            f"Structure d'origine : {organisation(session, person.organisation_id).label}. "
            "Votre responsable hiérarchique devra cosigner la convention de stage.",
        ],
        details=[
            ("Clôture de l'appel", when(row.call_closes_at)),
            ("Places", str(row.capacity)),
            ("Période d'immersion", window_label(row)),
            ("Journée de préparation", preparation_label(row)),
            ("Structures d'accueil possibles", ", ".join(h.label for h in hosts)),
        ],
    )


def _record(session: Session, issued: StepLink, answer: ApplicationForm, actor: Actor) -> str:
    row = get_session(session, issued.case_id)
    person = contact(session, issued.contact_id)
    application = submit_application(
        session=session, row=row, organisation_id=person.organisation_id, form=answer, actor=actor
    )
    return (
        f"Merci : votre candidature n°{application.number} est enregistrée. Un courriel de "
        "confirmation vous a été envoyé, avec un lien pour la modifier ou la retirer."
    )


APPLY = StepKind(
    Step.APPLY,
    ApplicationForm,
    _page,
    _record,
    submit_label="Envoyer ma candidature",
    open_call=True,
)
MAILS = (CallMail, CallReminderMail, ApplicationReceivedMail)
