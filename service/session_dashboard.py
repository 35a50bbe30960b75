"""Where an immersion session stands, for its coordinator: one line per participant (home,
host, days, each signature with its time, evaluations in), who is late, the waiting list.

Read-only: this module only reads the session's tables (the steps write them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session, col, select

from models.core import clock
from models.core.links import StepLink
from models.core.people import Contact, Organisation
from models.core.reminders import ReminderPlan
from models.core.settings import get_settings
from models.immersion.states import (
    PARTIES,
    ApplicationStatus,
    PlacementStatus,
    SessionStatus,
    Step,
)
from models.immersion.tables import (
    ACTIVE_PLACEMENT,
    Agreement,
    Application,
    Evaluation,
    ImmersionSession,
    Placement,
)
from service.labels import status_label

PARTY_HEADINGS = {
    "participant": "Signature du ou de la stagiaire",
    "manager": "Signature de la structure d'origine",
    "tutor": "Signature de la structure d'accueil",
}
EVALUATION_HEADINGS = {
    "participant": "Évaluation du ou de la stagiaire",
    "host": "Évaluation du tuteur",
}
CLOSED = (SessionStatus.CLOSED, SessionStatus.CANCELLED)


@dataclass(frozen=True)
class Cell:
    """One thing awaited of one person: done (when), awaited, late, or not yet asked."""

    text: str
    late: bool = False
    done: bool = False


@dataclass
class ParticipantLine:
    number: int
    participant: str
    function: str
    home: str
    host: str
    tutor: str
    days: str
    placement: str
    signatures: list[Cell] = field(default_factory=list)
    evaluations: list[Cell] = field(default_factory=list)
    host_answer: Cell = Cell("")

    @property
    def late(self) -> bool:
        return any(c.late for c in (self.host_answer, *self.signatures, *self.evaluations))


@dataclass(frozen=True)
class WaitingLine:
    rank: int | None
    number: int
    person: str
    home: str
    status: str
    offer_deadline: str


@dataclass
class Dashboard:
    session_id: int
    title: str
    status: str
    closed: bool
    capacity: int
    participants: list[ParticipantLine]
    waiting: list[WaitingLine]
    withdrawn: list[WaitingLine]
    party_headings: list[str] = field(default_factory=lambda: list(PARTY_HEADINGS.values()))
    evaluation_headings: list[str] = field(
        default_factory=lambda: list(EVALUATION_HEADINGS.values())
    )

    @property
    def late_count(self) -> int:
        return sum(1 for line in self.participants if line.late)


def _paris(moment: datetime) -> str:
    return moment.astimezone(get_settings().tz).strftime("%d/%m/%Y à %H:%M")


def _people(session: Session, ids: set[int]) -> dict[int, str]:
    rows = session.exec(select(Contact).where(col(Contact.id).in_(ids))).all() if ids else []
    return {r.id: r.name for r in rows if r.id is not None}


def _structures(session: Session, ids: set[int]) -> dict[int, str]:
    rows = (
        session.exec(select(Organisation).where(col(Organisation.id).in_(ids))).all() if ids else []
    )
    return {r.id: r.label for r in rows if r.id is not None}


class _Deadlines:
    """Deadlines of the links awaited in the session, by (step, subject, contact)."""

    def __init__(self, session: Session, session_id: int) -> None:
        self.now = clock.now(session)
        query = (
            select(StepLink, ReminderPlan)
            .join(ReminderPlan, col(ReminderPlan.link_id) == col(StepLink.id))
            .where(StepLink.case_type == "session", StepLink.case_id == session_id)
        )
        self.plans: dict[tuple[str, int | None, int | None], tuple[StepLink, ReminderPlan]] = {}
        for link, plan in session.exec(query):
            self.plans[(link.step, link.subject_id, link.contact_id)] = (link, plan)
            self.plans.setdefault((link.step, link.subject_id, None), (link, plan))

    def awaited(self, step: Step, subject_id: int | None, contact_id: int | None = None) -> Cell:
        """The cell of an answer not given yet: late once its deadline passed."""
        found = self.plans.get((step.value, subject_id, contact_id))
        if found is None:
            return Cell("pas encore demandé")
        link, plan = found
        deadline = plan.deadline
        if link.used_at is None and plan.stopped_at is None and deadline <= self.now:
            return Cell(f"en retard (attendu le {_paris(deadline)})", late=True)
        return Cell(f"attendu d'ici le {_paris(deadline)}")


def _days(placement: Placement | None) -> str:
    if placement is None or not placement.days:
        return "—"
    return ", ".join(date.fromisoformat(d).strftime("%d/%m/%Y") for d in placement.days)


def _signature_cells(
    session: Session,
    placement: Placement | None,
    application: Application,
    deadlines: _Deadlines,
) -> list[Cell]:
    agreement = (
        session.exec(select(Agreement).where(Agreement.placement_id == placement.id)).first()
        if placement is not None
        else None
    )
    if placement is None or agreement is None:
        return [Cell("—") for _ in PARTIES]
    contacts = {
        "participant": application.contact_id,
        "manager": application.manager_contact_id,
        "tutor": placement.tutor_contact_id or placement.host_contact_id,
    }
    cells = []
    for party in PARTIES:
        signed_at: datetime | None = getattr(agreement, f"{party}_signed_at")
        if signed_at is not None:
            cells.append(Cell(f"signée le {_paris(signed_at)}", done=True))
        elif agreement.status.value == "cancelled":
            cells.append(Cell("convention annulée"))
        else:
            cells.append(deadlines.awaited(Step.SIGN, agreement.id, contacts[party]))
    return cells


def _evaluation_cells(
    session: Session, placement: Placement | None, deadlines: _Deadlines
) -> list[Cell]:
    if placement is None or placement.status is not PlacementStatus.DONE:
        return [Cell("—"), Cell("—")]
    given = {
        e.author: e
        for e in session.exec(select(Evaluation).where(Evaluation.placement_id == placement.id))
    }
    steps = {"participant": Step.GRID, "host": Step.HOST_EVALUATION}
    cells = []
    for author, step in steps.items():
        if author in given:
            cells.append(Cell(f"reçue le {_paris(given[author].submitted_at)}", done=True))
        else:
            cells.append(deadlines.awaited(step, placement.id))
    return cells


def _host_answer(placement: Placement | None, deadlines: _Deadlines) -> Cell:
    if placement is None:
        return Cell("aucune structure d'accueil")
    if placement.status is PlacementStatus.PROPOSED:
        return deadlines.awaited(Step.HOST, placement.id)
    return Cell("accueil confirmé", done=True)


def session_dashboard(session: Session, row: ImmersionSession) -> Dashboard:
    """The dashboard of a session (reads only)."""
    assert row.id is not None
    apps = list(
        session.exec(
            select(Application)
            .where(Application.session_id == row.id)
            .order_by(col(Application.number))
        )
    )
    active = {
        p.application_id: p
        for p in session.exec(
            select(Placement).where(
                Placement.session_id == row.id, col(Placement.status).in_(ACTIVE_PLACEMENT)
            )
        )
    }
    done = {
        p.application_id: p
        for p in session.exec(
            select(Placement).where(
                Placement.session_id == row.id, Placement.status == PlacementStatus.DONE
            )
        )
    }
    placed = {**done, **active}
    people = _people(
        session,
        {a.contact_id for a in apps}
        | {p.tutor_contact_id or p.host_contact_id for p in placed.values()},
    )
    structures = _structures(
        session,
        {a.organisation_id for a in apps} | {p.host_organisation_id for p in placed.values()},
    )
    deadlines = _Deadlines(session, row.id)
    kept = (ApplicationStatus.SELECTED, ApplicationStatus.COMPLETED)
    lines = []
    for app in apps:
        if app.status not in kept:
            continue
        placement = placed.get(app.id or 0)
        tutor = placement.tutor_contact_id if placement is not None else None
        lines.append(
            ParticipantLine(
                number=app.number,
                participant=people.get(app.contact_id, "—"),
                function=app.function,
                home=structures.get(app.organisation_id, "—"),
                host=structures.get(placement.host_organisation_id, "—") if placement else "—",
                tutor=people.get(tutor, "—") if tutor is not None else "—",
                days=_days(placement),
                placement=status_label(placement.status.value, "stage") if placement else "—",
                signatures=_signature_cells(session, placement, app, deadlines),
                evaluations=_evaluation_cells(session, placement, deadlines),
                host_answer=_host_answer(placement, deadlines),
            )
        )

    def waiting_line(app: Application) -> WaitingLine:
        return WaitingLine(
            rank=app.waitlist_rank,
            number=app.number,
            person=people.get(app.contact_id, "—"),
            home=structures.get(app.organisation_id, "—"),
            status=status_label(app.status.value),
            offer_deadline=_paris(app.offer_deadline)
            if app.status is ApplicationStatus.OFFERED and app.offer_deadline
            else "—",
        )

    waiting_statuses = (ApplicationStatus.WAITLISTED, ApplicationStatus.OFFERED)
    waiting = sorted(
        (waiting_line(a) for a in apps if a.status in waiting_statuses),
        key=lambda w: (w.rank is None, w.rank or 0, w.number),
    )
    return Dashboard(
        session_id=row.id,
        title=row.title,
        status=status_label(row.status.value, "session"),
        closed=row.status in CLOSED,
        capacity=row.capacity,
        participants=lines,
        waiting=waiting,
        withdrawn=[waiting_line(a) for a in apps if a.status is ApplicationStatus.WITHDRAWN],
    )
