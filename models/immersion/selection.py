"""The selection: the proposal the coordinator approves, the decision mailed to each applicant,
and the waiting list (a freed place offered to the next one, who answers by link)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel
from pydantic import Field as FormField
from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.status import change_status
from models.immersion.common import (
    EXAMPLE_TITLE,
    SessionMail,
    applications,
    bump,
    contact,
    current_wait_step,
    event,
    get_session,
    link,
    mail,
    organisation,
    personal_link,
    subject,
)
from models.immersion.plan import preparation_label, when
from models.immersion.rules import Candidate, Outcome, SelectionDecision, replacement
from models.immersion.rules import propose_selection as _propose
from models.immersion.states import ApplicationStatus, SessionStatus, Step
from models.immersion.tables import Application, ImmersionSession


# -- mails ------------------------------------------------------------------------------
class DecisionMail(SessionMail):
    """The selection's decision, to one applicant."""

    number: int
    reason: str
    rank: int
    preparation: str
    cutoff: str
    link_id: int
    """The applicant's link to withdraw (`common.personal_link`)."""


class SelectedMail(DecisionMail):
    template: ClassVar[str] = "immersion_selected"

    @classmethod
    def example(cls) -> SelectedMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            number=3,
            reason="retenu",
            rank=0,
            preparation="04/10/2022 à 09:00, Maison des solidarités",
            cutoff="30/09/2022 à 18:00",
            link_id=1,
        )


class WaitlistedMail(DecisionMail):
    template: ClassVar[str] = "immersion_waitlisted"

    @classmethod
    def example(cls) -> WaitlistedMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            number=19,
            reason="liste d'attente (rang 2)",
            rank=2,
            preparation="04/10/2022 à 09:00",
            cutoff="30/09/2022 à 18:00",
            link_id=1,
        )


class NotSelectedMail(DecisionMail):
    template: ClassVar[str] = "immersion_not_selected"

    @classmethod
    def example(cls) -> NotSelectedMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            number=22,
            reason="non retenu : maximum par structure atteint (3)",
            rank=0,
            preparation="04/10/2022",
            cutoff="30/09/2022",
            link_id=1,
        )


class OfferMail(SessionMail):
    """A freed place, offered to the next one on the waiting list."""

    template: ClassVar[str] = "immersion_offer"
    link_id: int
    number: int
    deadline: str
    preparation: str

    @classmethod
    def example(cls) -> OfferMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            link_id=1,
            number=17,
            deadline="27/09/2022 à 10:00",
            preparation="04/10/2022 à 09:00, Maison des solidarités",
        )


_DECISIONS: dict[Outcome, tuple[ApplicationStatus, type[DecisionMail], str]] = {
    Outcome.SELECTED: (ApplicationStatus.SELECTED, SelectedMail, "retenu"),
    Outcome.WAITLISTED: (ApplicationStatus.WAITLISTED, WaitlistedMail, "liste d'attente"),
    Outcome.NOT_SELECTED: (ApplicationStatus.NOT_SELECTED, NotSelectedMail, "non retenu"),
}


# -- the selection ----------------------------------------------------------------------
def selection_proposal(session: Session, row: ImmersionSession) -> list[SelectionDecision]:
    assert row.id is not None
    candidates = [
        Candidate(a.id or 0, a.number, a.organisation_id)
        for a in applications(session, row.id, ApplicationStatus.SUBMITTED)
    ]
    return _propose(candidates, capacity=row.capacity, max_per_structure=row.max_per_structure)


def selection_table(
    session: Session, decisions: Sequence[SelectionDecision]
) -> list[dict[str, str | int]]:
    """Rows of the selection table (artifact, coordinator form)."""
    rows: list[dict[str, str | int]] = []
    for d in decisions:
        application = session.get(Application, d.application_id)
        assert application is not None
        label = _DECISIONS[d.outcome][2]
        rows.append(
            {
                "n°": d.number,
                "candidat·e": contact(session, application.contact_id).name,
                "structure": organisation(session, application.organisation_id).label,
                "décision": f"{label} ({d.waitlist_rank})"
                if d.outcome is Outcome.WAITLISTED
                else label,
                "règle": d.rule.value,
                "motif": d.reason,
            }
        )
    return rows


def application_label(session: Session, application: Application) -> str:
    """How the coordinator's forms name an application: "n° 3 — Emma Blanc (CCAS)"."""
    name = contact(session, application.contact_id).name
    home = organisation(session, application.organisation_id).label
    return f"n° {application.number} — {name} ({home})"


def numbers_of(
    chosen: Sequence[str], offered: Sequence[Application], session: Session
) -> list[int]:
    """The application numbers of the labels chosen in a form, in their order; a label that
    is not offered (any more) is refused in French."""
    numbers = {application_label(session, a): a.number for a in offered}
    unknown = [label for label in chosen if label not in numbers]
    if unknown:
        raise DomainError(
            "ces candidatures ne sont pas (ou plus) proposées : " + " ; ".join(unknown)
        )
    result: list[int] = []
    for label in chosen:
        if numbers[label] not in result:
            result.append(numbers[label])
    return result


def record_selection(
    *,
    session: Session,
    row: ImmersionSession,
    decisions: Sequence[SelectionDecision],
    actor: Actor,
    comment: str = "",
) -> None:
    """Apply the approved decisions, mail every applicant, move on to placements (the
    coordinator's comment, if any, kept in the history with the move)."""
    if row.status is not SessionStatus.SELECTION:
        return
    for d in decisions:
        application = session.get(Application, d.application_id)
        assert application is not None
        if application.status is not ApplicationStatus.SUBMITTED:
            continue  # withdrawn meanwhile
        to, message, _label = _DECISIONS[d.outcome]
        application.decision_rule = d.rule.value
        application.decision_reason = d.reason
        application.waitlist_rank = d.waitlist_rank
        application.ever_selected = to is ApplicationStatus.SELECTED
        change_status(
            session=session,
            entity=application,
            to=to,
            actor=actor,
            reason=d.reason,
            details={"number": d.number, "rule": d.rule.value},
        )
        mail(
            session,
            row,
            to=contact(session, application.contact_id),
            message=message(
                session_title=row.title,
                number=application.number,
                reason=d.reason,
                rank=d.waitlist_rank or 0,
                preparation=preparation_label(row),
                cutoff=when(row.withdrawal_cutoff),
                link_id=personal_link(session, row, application).id or 0,
            ),
            dedup_key=f"application-{application.id}-decision",
        )
    row.places = sum(1 for d in decisions if d.outcome is Outcome.SELECTED)
    session.add(row)
    change_status(
        session=session,
        entity=row,
        to=SessionStatus.PLACEMENT,
        actor=actor,
        details={"places": row.places, **({"comment": comment.strip()} if comment.strip() else {})},
    )
    bump(session, row)


# -- the waiting list -------------------------------------------------------------------
def manage_vacancies(*, session: Session, row: ImmersionSession, actor: Actor) -> datetime | None:
    """Expire late offers, offer freed places; the earliest open offer deadline, if any."""
    assert row.id is not None
    if row.status not in (
        SessionStatus.PLACEMENT,
        SessionStatus.AGREEMENTS,
        SessionStatus.PREPARATION,
    ):
        return None
    now = clock.now(session)
    for offered in applications(session, row.id, ApplicationStatus.OFFERED):
        if offered.offer_deadline is not None and offered.offer_deadline <= now:
            change_status(
                session=session,
                entity=offered,
                to=ApplicationStatus.NOT_SELECTED,
                actor=actor,
                reason="pas de réponse à la proposition dans le délai",
                details={"number": offered.number},
            )
    while True:
        taken = len(
            applications(
                session,
                row.id,
                ApplicationStatus.SELECTED,
                ApplicationStatus.OFFERED,
                ApplicationStatus.COMPLETED,
            )
        )
        if taken + row.empty_places >= row.places:
            break
        waiting = sorted(
            applications(session, row.id, ApplicationStatus.WAITLISTED),
            key=lambda a: (a.waitlist_rank or 10**6, a.number),
        )
        choice = replacement(
            now=now,
            cutoff=row.withdrawal_cutoff,
            waitlist=[a.id or 0 for a in waiting],
            offer_days=row.offer_days,
        )
        if choice.application_id is None:
            row.empty_places += 1
            session.add(row)
            event(session, row, "place.left-empty", actor, {"reason": choice.reason})
            continue
        application = next(a for a in waiting if a.id == choice.application_id)
        _offer(session, row, application, choice.offer_deadline, choice.reason, actor)
    return next_offer_deadline(session, row)


def _offer(
    session: Session,
    row: ImmersionSession,
    application: Application,
    deadline: datetime | None,
    reason: str,
    actor: Actor,
) -> None:
    assert deadline is not None
    application.offer_deadline = deadline
    change_status(
        session=session,
        entity=application,
        to=ApplicationStatus.OFFERED,
        actor=actor,
        reason=reason,
        details={"number": application.number},
    )
    person = contact(session, application.contact_id)
    issued = link(session, row, person, Step.OFFER, application.id, until=deadline)
    assert issued.id is not None
    mail(
        session,
        row,
        to=person,
        message=OfferMail(
            session_title=row.title,
            link_id=issued.id,
            number=application.number,
            deadline=when(deadline),
            preparation=preparation_label(row),
        ),
        dedup_key=f"application-{application.id}-offer",
    )


def next_offer_deadline(session: Session, row: ImmersionSession) -> datetime | None:
    """When the earliest open offer expires (None: no offer is open)."""
    assert row.id is not None
    deadlines = [
        a.offer_deadline
        for a in applications(session, row.id, ApplicationStatus.OFFERED)
        if a.offer_deadline is not None
    ]
    return min(deadlines) if deadlines else None


class OfferForm(BaseModel):
    """Réponse à une proposition de place."""

    answer: Literal["j'accepte la place", "je décline"] = FormField(
        default="j'accepte la place", title="Votre réponse"
    )


def answer_offer(*, session: Session, application: Application, accept: bool, actor: Actor) -> str:
    """Record the answer to an offer; a declined place goes to the next one at once.

    An accepted place is given a host by the partners' reconciliation (`models.immersion.
    progress.sync_partners`), run after the answer and on the flow's next pass.
    """
    if application.status is not ApplicationStatus.OFFERED:
        raise DomainError("cette proposition n'est plus ouverte")
    row = get_session(session, application.session_id)
    if accept:
        application.promoted = True
        application.ever_selected = True
        change_status(
            session=session,
            entity=application,
            to=ApplicationStatus.SELECTED,
            actor=actor,
            reason="place acceptée (liste d'attente)",
            details={"number": application.number},
        )
        return "Merci : votre place est confirmée. Vous recevrez la suite par courriel."
    change_status(
        session=session,
        entity=application,
        to=ApplicationStatus.NOT_SELECTED,
        actor=actor,
        reason="place déclinée",
        details={"number": application.number},
    )
    manage_vacancies(session=session, row=row, actor=actor)
    return "Votre réponse est enregistrée : la place sera proposée à la personne suivante."


def _page(session: Session, issued: StepLink) -> StepPage:
    row = get_session(session, issued.case_id)
    application = subject(session, issued, Application)
    return StepPage(
        title="Une place s'est libérée",
        case_label=row.reference,
        paragraphs=["Une place s'est libérée dans la session : elle vous est proposée."],
        details=[
            (
                "Répondre avant le",
                when(application.offer_deadline) if application.offer_deadline else "",
            ),
            ("Journée de préparation", preparation_label(row)),
        ],
    )


def _record(session: Session, issued: StepLink, answer: OfferForm, actor: Actor) -> str:
    return answer_offer(
        session=session,
        application=subject(session, issued, Application),
        accept=answer.answer.startswith("j'accepte"),
        actor=actor,
    )


OFFER = StepKind(Step.OFFER, OfferForm, _page, _record, wait_step=current_wait_step)
MAILS = (SelectedMail, WaitlistedMail, NotSelectedMail, OfferMail)
