"""The session's report ("bilan"): figures, one row per participant, markdown and CSV."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, select

from models.core import clock
from models.core.audit import Actor
from models.core.people import Clsm
from models.core.spreadsheet import csv_text
from models.immersion.common import (
    applications,
    contact,
    event,
    get_session,
    organisation,
    placements,
)
from models.immersion.rules import (
    ApplicationFacts,
    PairFacts,
    PlacementFacts,
    ReportFigures,
    report_figures,
)
from models.immersion.states import APPLICATION_LABELS, STATUS_LABELS, PlacementStatus
from models.immersion.tables import (
    Application,
    Attendance,
    Evaluation,
    ImmersionSession,
    ObservationGrid,
    Placement,
    SessionReport,
)

STRUCTURE_COLUMNS = [
    "structure",
    "candidatures",
    "participants (retenus ou promus)",
    "stagiaires accueillis",
    "jours accueillis",
]
PARTICIPANT_COLUMNS = [
    "n°",
    "participant",
    "structure d'origine",
    "structure d'accueil",
    "jours",
    "statut",
    "motif",
    "binôme avec",
]


@dataclass(frozen=True)
class Answers:
    """The answers of one kind of author to one question of the evaluation."""

    who: str  # "Stagiaires", "Tuteurs et tutrices"
    answers: list[str]


@dataclass(frozen=True)
class ReportSection:
    """One question of the evaluations or of the observation grid, its answers by author."""

    title: str
    groups: list[Answers]


@dataclass(frozen=True)
class SessionReportData:
    session_id: int
    title: str
    clsm: str
    status: str
    figures: ReportFigures
    participants: list[dict[str, str | int]]  # one row per kept participant (report table)
    sections: list[ReportSection]


PARTICIPANTS, TUTORS = "Stagiaires", "Tuteurs et tutrices (structures d'accueil)"


def evaluation_sections(
    evaluations: list[Evaluation], grids: list[ObservationGrid]
) -> list[ReportSection]:
    """Each question in its own section, the participants' and the tutors' answers apart."""

    def said(author: str, attribute: str) -> list[str]:
        return [text for e in evaluations if e.author == author if (text := getattr(e, attribute))]

    return [
        ReportSection(
            "Ce qui a été utile",
            [
                Answers(PARTICIPANTS, said("participant", "useful")),
                Answers(TUTORS, said("host", "useful")),
            ],
        ),
        ReportSection(
            "À améliorer",
            [
                Answers(PARTICIPANTS, said("participant", "improve")),
                Answers(TUTORS, said("host", "improve")),
            ],
        ),
        ReportSection(
            "Grille d'observation : missions et publics observés",
            [Answers(PARTICIPANTS, [g.missions for g in grids if g.missions])],
        ),
        ReportSection(
            "Grille d'observation : pratiques et outils de travail observés",
            [Answers(PARTICIPANTS, [g.practices for g in grids if g.practices])],
        ),
        ReportSection(
            "Grille d'observation : limites d'intervention et leviers de coopération",
            [Answers(PARTICIPANTS, [g.limits for g in grids if g.limits])],
        ),
    ]


def session_report(session: Session, session_id: int) -> SessionReportData:
    """The session's report ("bilan"): figures and one row per participant."""
    row = get_session(session, session_id)
    apps = applications(session, session_id)
    all_placements = placements(session, session_id)
    evaluations = list(session.exec(select(Evaluation).where(Evaluation.session_id == session_id)))
    present = {
        meeting: sum(
            1
            for a in session.exec(
                select(Attendance).where(
                    Attendance.session_id == session_id, Attendance.meeting == meeting
                )
            )
            if a.present
        )
        for meeting in ("preparation", "restitution")
    }
    paired = _paired(all_placements)
    figures = report_figures(
        applications=[
            ApplicationFacts(
                home=organisation(session, a.organisation_id).label,
                status=a.status.value,
                ever_selected=a.ever_selected,
                promoted=a.promoted,
                name=contact(session, a.contact_id).name,
                withdrawal_reason=a.withdrawal_reason,
                waitlisted_at_selection=a.waitlist_rank is not None,
            )
            for a in apps
        ],
        placements=[
            PlacementFacts(
                host=organisation(session, p.host_organisation_id).label,
                done=p.status is PlacementStatus.DONE,
                days=len(p.days),
            )
            for p in all_placements
        ],
        preparation_present=present["preparation"],
        restitution_present=present["restitution"],
        participant_ratings=[e.rating for e in evaluations if e.author == "participant"],
        host_ratings=[e.rating for e in evaluations if e.author == "host"],
        comments=[e.useful for e in evaluations if e.author == "participant" and e.useful],
        pairs=[
            PairFacts(*_person(session, first), *_person(session, second))
            for first, second in paired.items()
            if first < second
        ],
    )
    grids = list(
        session.exec(select(ObservationGrid).where(ObservationGrid.session_id == session_id))
    )
    rows: list[dict[str, str | int]] = []
    for a in apps:
        if not a.ever_selected:
            continue
        placement = next(
            (
                p
                for p in all_placements
                if p.application_id == a.id and p.status is not PlacementStatus.CANCELLED
            ),
            None,
        )
        rows.append(
            {
                "n°": a.number,
                "participant": contact(session, a.contact_id).name,
                "structure d'origine": organisation(session, a.organisation_id).label,
                "structure d'accueil": organisation(session, placement.host_organisation_id).label
                if placement
                else "",
                "jours": len(placement.days) if placement else 0,
                "statut": APPLICATION_LABELS[a.status],
                "motif": a.withdrawal_reason,
                "binôme avec": "{} ({})".format(*_person(session, paired[a.id]))
                if a.id in paired
                else "",
            }
        )
    clsm = session.get(Clsm, row.clsm_id)
    return SessionReportData(
        session_id=session_id,
        title=row.title,
        clsm=clsm.name if clsm else "",
        status=STATUS_LABELS[row.status],
        figures=figures,
        participants=rows,
        sections=evaluation_sections(evaluations, grids),
    )


def _paired(all_placements: Sequence[Placement]) -> dict[int, int]:
    """Each half of a binôme formed (application id → the other's), placements not cancelled."""
    held = [p for p in all_placements if p.status is not PlacementStatus.CANCELLED]
    ids = {p.application_id for p in held}
    return {
        p.application_id: p.pair_application_id
        for p in held
        if p.pair_application_id is not None and p.pair_application_id in ids
    }


def _person(session: Session, application_id: int) -> tuple[str, str]:
    """An application's participant and home structure, by name."""
    application = session.get(Application, application_id)
    assert application is not None
    return (
        contact(session, application.contact_id).name,
        organisation(session, application.organisation_id).label,
    )


def report_markdown(data: SessionReportData) -> str:
    f = data.figures
    lines = [
        f"# Bilan — {data.title}",
        "",
        f"- Candidatures reçues : **{f.applications}**",
        f"- Retenues à la sélection : **{f.kept}**",
        f"- Sur liste d'attente à la clôture de l'appel : {f.waitlisted} ; "
        f"non retenues : {f.not_selected}",
        f"- Promues depuis la liste d'attente : {f.promoted}",
        f"- Retraits : {len(f.withdrawals)}"
        + "".join(f"\n  - {name} : {reason}" for name, reason in f.withdrawals),
        f"- Immersions réalisées : **{f.immersions_done}**",
        f"- Jours d'immersion réalisés : {f.days_total}",
        f"- Binômes (accueils réciproques) : {len(f.pairs)}",
        f"- Présents à la journée de préparation : {f.preparation_present} ; "
        f"à la restitution : {f.restitution_present}",
        f"- Satisfaction des stagiaires : {_rating(f.participant_rating)} "
        f"({f.participant_evaluations} évaluations) ; des structures d'accueil : "
        f"{_rating(f.host_rating)} ({f.host_evaluations} évaluations)",
        "",
        "| " + " | ".join(c[:1].upper() + c[1:] for c in STRUCTURE_COLUMNS) + " |",
        "|---|---|---|---|---|",
        *(
            f"| {s.structure} | {s.applications} | {s.kept} | {s.hosted} | {s.days_hosted} |"
            for s in f.structures
        ),
    ]
    lines += ["", "## Binômes", ""]
    lines += [f"- {pair.label}" for pair in f.pairs] or ["- (aucun binôme)"]
    for section in data.sections:
        lines += ["", f"## {section.title}"]
        for group in section.groups:
            lines += ["", f"### {group.who}", ""]
            lines += [f"- {answer}" for answer in group.answers] or ["- (aucune réponse)"]
    return "\n".join(lines)


def _rating(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} / 5".replace(".", ",")


def report_structures_csv(data: SessionReportData) -> str:
    """The report's per-structure table as CSV (';', UTF-8): one file per table."""
    rows: list[Sequence[object]] = [STRUCTURE_COLUMNS]
    for s in data.figures.structures:
        rows.append([s.structure, s.applications, s.kept, s.hosted, s.days_hosted])
    return csv_text(rows)


def report_participants_csv(data: SessionReportData) -> str:
    """The report's per-participant table as CSV (';', UTF-8)."""
    rows: list[Sequence[object]] = [PARTICIPANT_COLUMNS]
    rows += [[r[c] for c in PARTICIPANT_COLUMNS] for r in data.participants]
    return csv_text(rows)


def store_report(*, session: Session, row: ImmersionSession, actor: Actor) -> SessionReportData:
    """Freeze the report figures in the database (once) and audit them."""
    assert row.id is not None
    data = session_report(session, row.id)
    existing = session.exec(select(SessionReport).where(SessionReport.session_id == row.id)).first()
    if existing is None:
        figures = {
            "applications": data.figures.applications,
            "kept": data.figures.kept,
            "waitlisted": data.figures.waitlisted,
            "not_selected": data.figures.not_selected,
            "withdrawals": len(data.figures.withdrawals),
            "promoted": data.figures.promoted,
            "immersions_done": data.figures.immersions_done,
            "days_total": data.figures.days_total,
            "pairs": len(data.figures.pairs),
            "participant_rating": data.figures.participant_rating,
            "host_rating": data.figures.host_rating,
        }
        session.add(
            SessionReport(session_id=row.id, figures=figures, created_at=clock.now(session))
        )
        event(session, row, "report.created", actor, figures)
    return data
