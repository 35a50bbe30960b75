"""Placements: a host structure for every kept participant, and the host's confirmation by
link (tutor, days, what may and may not be observed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ValidationInfo, field_validator
from pydantic import Field as FormField
from sqlmodel import Session, select

from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.french import de
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.people import MailAddress
from models.core.settings import get_settings
from models.core.status import change_status
from models.immersion.common import (
    EXAMPLE_TITLE,
    AlertMail,
    SessionMail,
    applications,
    awaited_link,
    contact,
    coordinator,
    current_wait_step,
    ensure_contact,
    event,
    get_session,
    invited,
    mail,
    organisation,
    placement_of,
    placements,
    referent,
    sent,
    subject,
)
from models.immersion.plan import duration_label, host_deadline, window_label
from models.immersion.rules import (
    Assignment,
    Participant,
    assign_placements,
    check_days,
    pair_errors,
    propose_pairs,
)
from models.immersion.states import ApplicationStatus, PlacementStatus, Step
from models.immersion.tables import (
    ACTIVE_PLACEMENT,
    Application,
    ImmersionSession,
    InvitedStructure,
    Placement,
)


class HostRequestMail(SessionMail):
    """To the host structure's referent: will you host this participant?"""

    template: ClassVar[str] = "immersion_host_request"
    link_id: int
    participant: str
    participant_function: str
    home: str
    window: str
    days: str
    availability: str

    @classmethod
    def example(cls) -> HostRequestMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            link_id=1,
            participant="Camille Dupont",
            participant_function="Assistante sociale",
            home="CCAS",
            window="du 10/10/2022 au 08/11/2022",
            days="1 à 5 jours",
            availability="mardis et jeudis",
        )


def ensure_placements(*, session: Session, row: ImmersionSession, actor: Actor) -> list[Placement]:
    """Give a host to every kept participant who has none; ask the host to confirm.

    Nothing before the coordinator's review of the first placements (`models.immersion.
    review`): no host request goes out unseen. After it, later arrivals (a place taken
    from the waiting list, a host that declined) are placed by the rules alone."""
    if row.placements_reviewed_at is None:
        return []
    created: list[Placement] = []
    for assignment in propose_placements(session, row, awaiting_host(session, row)):
        placement = create_placement(session, row, assignment, actor)
        if placement is not None:
            created.append(placement)
    return created


def awaiting_host(session: Session, row: ImmersionSession) -> list[Application]:
    """Kept participants with no host yet (nor an alert that none could be found)."""
    assert row.id is not None
    return [
        a
        for a in applications(session, row.id, ApplicationStatus.SELECTED)
        if placement_of(session, a.id or 0) is None
        and not sent(session, row, _unplaced_key(a.id or 0))
    ]


def propose_placements(
    session: Session, row: ImmersionSession, waiting: Sequence[Application]
) -> list[Assignment]:
    """The rules' hosts for these participants: binômes declared at the selection hosted by
    each other's structure, then wishes, within the free places."""
    if not waiting:
        return []
    declared = [
        (a.id or 0, a.pair_application_id)
        for a in waiting
        if a.pair_application_id is not None and (a.id or 0) < a.pair_application_id
    ]
    return assign_placements(
        participants_of(session, row, waiting), free_places(session, row), pairs=declared
    )


def free_places(session: Session, row: ImmersionSession) -> dict[int, int]:
    """Places still free at each invited structure (its declared capacity, else the
    session's default, minus the placements it holds)."""
    assert row.id is not None
    active = placements(session, row.id, *ACTIVE_PLACEMENT)
    return {
        h.organisation_id: max(
            (h.declared_capacity if h.declared_capacity is not None else h.host_capacity)
            - sum(1 for p in active if p.host_organisation_id == h.organisation_id),
            0,
        )
        for h in invited(session, row.id)
    }


def participants_of(
    session: Session, row: ImmersionSession, kept: Sequence[Application]
) -> list[Participant]:
    """The kept applications as the placement rules see them (with the hosts that declined)."""
    assert row.id is not None
    declined: dict[int, set[int]] = {}
    for p in placements(session, row.id, PlacementStatus.CANCELLED):
        declined.setdefault(p.application_id, set()).add(p.host_organisation_id)
    return [
        Participant(
            a.id or 0,
            a.number,
            a.organisation_id,
            tuple(a.wishes),
            tuple(sorted(declined.get(a.id or 0, ()))),
        )
        for a in kept
    ]


def proposed_pairs(
    session: Session, row: ImmersionSession, kept: Sequence[Application]
) -> list[tuple[Application, Application]]:
    """The binômes the rules infer among these kept applications (crossed wishes)."""
    by_id = {a.id: a for a in kept}
    return [
        (by_id[first], by_id[second])
        for first, second in propose_pairs(
            participants_of(session, row, kept), free_places(session, row)
        )
    ]


def declare_pairs(
    *,
    session: Session,
    row: ImmersionSession,
    kept: Sequence[Application],
    pairs: Sequence[tuple[Application, Application]],
    labels: dict[int, str],
    actor: Actor,
) -> None:
    """Record the binômes the coordinator declared (they override the inference: the
    placements pair these and no others), or refuse them in French (`DomainError`)."""
    ids = [(a.id or 0, b.id or 0) for a, b in pairs]
    hosts = free_places(session, row)
    structures = {a.organisation_id: organisation(session, a.organisation_id).label for a in kept}
    errors = pair_errors(ids, participants_of(session, row, kept), hosts, labels, structures)
    if errors:
        raise DomainError("binômes refusés : " + " ; ".join(errors))
    for a, b in pairs:
        a.pair_application_id, b.pair_application_id = b.id, a.id
        session.add_all([a, b])
    event(
        session,
        row,
        "pairs.declared",
        actor,
        {"pairs": [f"n° {a.number} et n° {b.number}" for a, b in pairs]},
    )


def _unplaced_key(application_id: int) -> str:
    return f"application-{application_id}-unplaced"


def create_placement(
    session: Session, row: ImmersionSession, assignment: Assignment, actor: Actor
) -> Placement | None:
    """The placement of one assignment and its host request (mail, link, deadline), or,
    without a host, the coordinator's alert."""
    assert row.id is not None
    application = session.get(Application, assignment.application_id)
    assert application is not None and application.id is not None
    if assignment.host_id is None:
        event(
            session,
            row,
            "placement.unassigned",
            actor,
            {"application_id": application.id, "reason": assignment.reason},
        )
        name = contact(session, application.contact_id).name
        mail(
            session,
            row,
            to=coordinator(session, row),
            message=AlertMail(
                session_title=row.title,
                alert=f"Aucune structure d'accueil pour la candidature n°{application.number} "
                f"({name}) : {assignment.reason}.",
                run_url=get_settings().run_url(row.flow_run_id),
            ),
            dedup_key=_unplaced_key(application.id),
        )
        return None
    host = referent(session, assignment.host_id)
    if host is None or host.id is None:
        raise DomainError(f"la structure n°{assignment.host_id} n'a aucun contact")
    placement = Placement(
        session_id=row.id,
        application_id=assignment.application_id,
        host_organisation_id=assignment.host_id,
        host_contact_id=host.id,
        wish_rank=assignment.wish_rank,
        reason=assignment.reason,
        pair_application_id=assignment.pair_with,
    )
    session.add(placement)
    session.flush()
    event(
        session,
        row,
        "placement.proposed",
        actor,
        {
            "placement_id": placement.id,
            "application_id": application.id,
            "host_id": assignment.host_id,
            "reason": assignment.reason,
        },
    )
    person = contact(session, application.contact_id)
    issued = awaited_link(
        session,
        row,
        host,
        Step.HOST,
        placement.id,
        deadline=host_deadline(row),
        step_label=f"confirmer l'accueil {de(person.name)}",
    )
    assert issued.id is not None
    mail(
        session,
        row,
        to=host,
        message=HostRequestMail(
            session_title=row.title,
            link_id=issued.id,
            participant=person.name,
            participant_function=application.function,
            home=organisation(session, application.organisation_id).label,
            window=window_label(row),
            days=duration_label(row),
            availability=application.availability or "non précisées",
        ),
        dedup_key=f"placement-{placement.id}-host-request",
    )
    return placement


def placements_confirmed(session: Session, row: ImmersionSession) -> bool:
    """Every placement has its host's answer and no place is on offer."""
    assert row.id is not None
    return not placements(session, row.id, PlacementStatus.PROPOSED) and not applications(
        session, row.id, ApplicationStatus.OFFERED
    )


IF_ACCEPTED = "(si vous acceptez)"


class HostForm(BaseModel):
    """Réponse de la structure d'accueil : accepter (tuteur, jours, cadre) ou décliner."""

    answer: Literal["accepter", "décliner"] = FormField(
        title="Votre réponse",
        json_schema_extra={
            "labels": {
                "accepter": "J'accepte d'accueillir cette personne",
                "décliner": "Je décline cette demande",
            }
        },
    )
    tutor_name: str = FormField(
        validate_default=True,
        default="",
        title=f"Tuteur ou tutrice : prénom et nom {IF_ACCEPTED}",
        max_length=200,
    )
    tutor_email: MailAddress | None = FormField(
        validate_default=True,
        default=None,
        title=f"Adresse électronique du tuteur ou de la tutrice {IF_ACCEPTED}",
    )
    tutor_function: str = FormField(
        default="", title="Fonction du tuteur ou de la tutrice", max_length=200
    )
    capacity: int = FormField(
        default=1, ge=0, le=16, title="Nombre de stagiaires que la structure peut accueillir"
    )
    days: list[date] = FormField(
        validate_default=True,
        default_factory=list,
        title=f"Jours d'immersion proposés {IF_ACCEPTED}",
        description="Jours ouvrés dans la période d'immersion",
        max_length=5,
    )
    may_observe: str = FormField(
        validate_default=True,
        default="",
        title=f"Ce qui pourra être observé {IF_ACCEPTED}",
        max_length=2000,
    )
    may_not_observe: str = FormField(
        validate_default=True,
        default="",
        title=f"Ce qui ne pourra pas être observé (secret professionnel) {IF_ACCEPTED}",
        max_length=2000,
    )
    decline_reason: str = FormField(
        validate_default=True, default="", title="Motif (si vous déclinez)", max_length=300
    )

    @field_validator(
        "tutor_name", "tutor_email", "days", "may_observe", "may_not_observe", mode="after"
    )
    @classmethod
    def _needed_to_accept(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("answer") == "accepter" and not (
            value.strip() if isinstance(value, str) else value
        ):
            raise ValueError("Ce champ est obligatoire pour accepter l'accueil.")
        return value

    @field_validator("decline_reason", mode="after")
    @classmethod
    def _needed_to_decline(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("answer") == "décliner" and len(value.strip()) < 2:
            raise ValueError("Indiquez le motif pour décliner la demande.")
        return value


def confirm_host(*, session: Session, placement: Placement, form: HostForm, actor: Actor) -> str:
    """Record the host's confirmation; its agreement is prepared by the partners'
    reconciliation (`models.immersion.progress.sync_partners`)."""
    row = get_session(session, placement.session_id)
    if placement.status is not PlacementStatus.PROPOSED:
        raise DomainError("cet accueil est déjà confirmé ou annulé")
    errors = check_days(
        form.days,
        window_start=row.window_start,
        window_end=row.window_end,
        min_days=row.min_days,
        max_days=row.max_days,
    )
    if errors:
        raise DomainError("Jours refusés : " + " ; ".join(errors), field="days")
    assert form.tutor_email is not None  # the form requires it to accept
    tutor = ensure_contact(
        session,
        organisation_id=placement.host_organisation_id,
        name=form.tutor_name,
        email=str(form.tutor_email),
        function=form.tutor_function,
    )
    placement.tutor_contact_id = tutor.id
    placement.days = [d.isoformat() for d in sorted(form.days)]
    placement.may_observe = form.may_observe
    placement.may_not_observe = form.may_not_observe
    assert row.id is not None
    for inv in invited(session, row.id):
        if inv.organisation_id == placement.host_organisation_id:
            inv.declared_capacity = form.capacity
            session.add(inv)
    change_status(
        session=session,
        entity=placement,
        to=PlacementStatus.CONFIRMED,
        actor=actor,
        details={
            "placement_id": placement.id,
            "tutor_contact_id": tutor.id,
            "days": placement.days,
            "capacity": form.capacity,
            "may_observe": form.may_observe,
            "may_not_observe": form.may_not_observe,
        },
    )
    return (
        f"Merci : l'accueil est confirmé ({len(form.days)} jour(s)). La convention de stage "
        "va être envoyée pour signature par courriel au tuteur ou à la tutrice, au ou à la "
        "stagiaire et à sa structure d'origine."
    )


def decline_host(*, session: Session, placement: Placement, reason: str, actor: Actor) -> str:
    """The host declines: the placement is cancelled, the participant goes to the next
    host by the placement rules (never this one again), the coordinator is told."""
    row = get_session(session, placement.session_id)
    if placement.status is not PlacementStatus.PROPOSED:
        raise DomainError("cet accueil est déjà confirmé ou annulé")
    change_status(
        session=session,
        entity=placement,
        to=PlacementStatus.CANCELLED,
        actor=actor,
        reason=f"décliné par la structure d'accueil : {reason}",
        details={"placement_id": placement.id, "declined": True},
    )
    application = session.get(Application, placement.application_id)
    assert application is not None and application.id is not None
    person = contact(session, application.contact_id).name
    host = organisation(session, placement.host_organisation_id).label
    session.flush()
    replacement = placement_of(session, application.id)
    if replacement is None:
        ensure_placements(session=session, row=row, actor=actor)
        replacement = placement_of(session, application.id)
    follow = (
        "La demande est transmise à "
        f"{organisation(session, replacement.host_organisation_id).label}."
        if replacement is not None
        else "Aucune autre structure n'a de place libre : à vous de trouver un accueil."
    )
    mail(
        session,
        row,
        to=coordinator(session, row),
        message=AlertMail(
            session_title=row.title,
            alert=f"{host} décline l'accueil {de(person)} (candidature n°{application.number}) : "
            f"{reason}. {follow}",
            run_url=get_settings().run_url(row.flow_run_id),
        ),
        dedup_key=f"placement-{placement.id}-declined",
    )
    return (
        "Votre réponse est enregistrée : vous déclinez cet accueil. La coordination du CLSM "
        "en est informée et propose la personne à une autre structure ; vous n'avez rien "
        "d'autre à faire."
    )


def _page(session: Session, issued: StepLink) -> StepPage:
    row = get_session(session, issued.case_id)
    placement = subject(session, issued, Placement)
    application = session.get(Application, placement.application_id)
    assert application is not None
    return StepPage(
        title="Accueillir un ou une stagiaire",
        case_label=row.reference,
        paragraphs=[
            "Acceptez-vous d'accueillir cette personne ? Si oui, indiquez le tuteur ou la "
            "tutrice, les jours proposés et le cadre d'observation : ce que la personne "
            "accueillie pourra observer ou non, au regard du secret professionnel.",
            "Si vous ne pouvez pas l'accueillir, déclinez en indiquant le motif : la "
            "coordination en est informée et la personne est proposée à une autre structure.",
        ],
        details=[
            ("Stagiaire", contact(session, application.contact_id).name),
            ("Fonction", application.function),
            ("Structure d'origine", organisation(session, application.organisation_id).label),
            ("Disponibilités", application.availability or "non précisées"),
            ("Période", window_label(row)),
            ("Durée", f"{row.min_days} à {row.max_days} jours ouvrés"),
        ],
    )


def _record(session: Session, issued: StepLink, answer: HostForm, actor: Actor) -> str:
    placement = subject(session, issued, Placement)
    if answer.answer == "décliner":
        return decline_host(
            session=session, placement=placement, reason=answer.decline_reason, actor=actor
        )
    return confirm_host(session=session, placement=placement, form=answer, actor=actor)


def _initial(session: Session, issued: StepLink) -> dict[str, Any]:
    placement = subject(session, issued, Placement)
    inv = session.exec(
        select(InvitedStructure).where(
            InvitedStructure.session_id == issued.case_id,
            InvitedStructure.organisation_id == placement.host_organisation_id,
        )
    ).first()
    return {"capacity": inv.declared_capacity or inv.host_capacity if inv else 1}


HOST = StepKind(
    Step.HOST,
    HostForm,
    _page,
    _record,
    wait_step=current_wait_step,
    initial=_initial,
    submit_label="Envoyer ma réponse",
)
MAILS = (HostRequestMail,)
