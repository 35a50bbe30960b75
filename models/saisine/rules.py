"""Pure rules of the cell's saisines: no database, no Prefect, tested on their own.

Meeting host rotation, who may be consulted, the guards of the saisine's transitions and
the rows of the yearly report ("Réunion / Saisine (source) / Décisions / Note").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from models.core.errors import DomainError
from models.saisine.states import ActionStatus, MeetingStatus, SaisineStatus


class OrientationKind(StrEnum):
    CARE_PATH_COORDINATOR = "care_path_coordinator"
    DAC_PTA = "dac_pta"
    SYNTHESIS_MEETING = "synthesis_meeting"
    CONCERTATION_MEETING = "concertation_meeting"
    HOME_INTERVENTION = "home_intervention"
    RELAY = "relay"
    OTHER = "other"


ORIENTATION_LABELS: dict[OrientationKind, str] = {
    OrientationKind.CARE_PATH_COORDINATOR: "Mise en lien avec la coordinatrice de parcours",
    OrientationKind.DAC_PTA: "Orientation vers le DAC-PTA",
    OrientationKind.SYNTHESIS_MEETING: "Organisation d'une réunion de synthèse",
    OrientationKind.CONCERTATION_MEETING: "Organisation d'une réunion de concertation",
    OrientationKind.HOME_INTERVENTION: "Intervention au domicile",
    OrientationKind.RELAY: "Relais vers un partenaire",
    OrientationKind.OTHER: "Autre orientation",
}

MONTHS_FR = [
    "Janvier",
    "Février",
    "Mars",
    "Avril",
    "Mai",
    "Juin",
    "Juillet",
    "Août",
    "Septembre",
    "Octobre",
    "Novembre",
    "Décembre",
]


# -- meeting host rotation -----------------------------------------------------------------
def next_host(permanent_members: Sequence[int], hosted: Iterable[tuple[int, date]]) -> int:
    """The permanent member that hosted least recently (never hosted first, then list order).

    `hosted` lists (organisation id, meeting day) of meetings that were held or are planned;
    cancelled meetings do not count.
    """
    if not permanent_members:
        raise DomainError("aucun membre permanent : impossible de proposer un lieu de réunion")
    last: dict[int, date] = {}
    for organisation_id, day in hosted:
        if organisation_id in permanent_members:
            last[organisation_id] = max(day, last.get(organisation_id, day))
    order = {org: index for index, org in enumerate(permanent_members)}
    return min(permanent_members, key=lambda org: (org in last, last.get(org), order[org]))


# -- who may be consulted ------------------------------------------------------------------
@dataclass(frozen=True)
class Convention:
    organisation_id: int
    starts_on: date
    ends_on: date

    def covers(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


def consultable(conventions: Iterable[Convention], on: date) -> set[int]:
    """Structures that may see a case on this day: a bilateral convention covers it."""
    return {c.organisation_id for c in conventions if c.covers(on)}


def check_consultable(
    chosen: Iterable[int], conventions: Iterable[Convention], on: date, names: dict[int, str]
) -> None:
    allowed = consultable(conventions, on)
    refused = [names.get(org, str(org)) for org in chosen if org not in allowed]
    if refused:
        raise DomainError(
            "Sans convention bilatérale valide à cette date, ces structures ne peuvent pas "
            f"être consultées : {', '.join(sorted(refused))}"
        )


# -- guards of the transitions -------------------------------------------------------------
def check_meeting_allowed(status: SaisineStatus) -> None:
    """A cell meeting examines only a saisine escalated to level 2."""
    if status is not SaisineStatus.LEVEL2:
        raise DomainError(
            "Une saisine ne peut être inscrite à une réunion de cellule qu'après être "
            "passée au niveau 2."
        )


def check_decision_allowed(status: SaisineStatus, meeting_status: MeetingStatus | None) -> None:
    """No decision without a held cell meeting."""
    if status is not SaisineStatus.LEVEL2:
        raise DomainError("Une décision ne peut être enregistrée qu'au niveau 2.")
    if meeting_status is not MeetingStatus.HELD:
        raise DomainError(
            "Aucune décision sans réunion de cellule tenue : la réunion doit avoir eu lieu."
        )


def check_close_allowed(actions: Iterable[ActionStatus], reason: str) -> None:
    """Closing needs every action done (or dropped), or a reason given by the coordinator."""
    if reason.strip():
        return
    if any(status is ActionStatus.OPEN for status in actions):
        raise DomainError(
            "Des actions sont encore ouvertes : indiquez un motif pour clore la saisine."
        )


def check_action_owner(owner_contact_id: int | None) -> None:
    if owner_contact_id is None:
        raise DomainError("Chaque action doit avoir un ou une responsable.")


# -- yearly report -------------------------------------------------------------------------
class ReportLevel(StrEnum):
    LEVEL1 = "niveau 1"
    LEVEL2 = "niveau 2"
    URGENT = "urgence"
    OPEN = "en cours"


@dataclass(frozen=True)
class ReportCase:
    """What the yearly report needs to know about one saisine."""

    reference: str
    month_day: date  # day of the meeting (level 2) or of the exchange (level 1)
    referrer: str
    status: SaisineStatus
    orientation: str = ""  # text of the last orientation, "" if none
    orientation_kind: OrientationKind | None = None
    decision: str = ""  # text of the cell's decision, "" if none
    invited: tuple[str, ...] = ()
    meeting_cancelled: bool = False
    escalated: bool = False


@dataclass(frozen=True)
class ReportRow:
    month: str
    reference: str
    referrer: str
    decisions: str
    note: str
    level: ReportLevel


@dataclass(frozen=True)
class YearTotals:
    """One year of the evolution: entered once (a year before the product) or counted."""

    year: int
    level1: int
    level2: int
    urgent: int
    ongoing: int = 0
    entered: bool = False

    @property
    def total(self) -> int:
        return self.level1 + self.level2 + self.urgent + self.ongoing


@dataclass(frozen=True)
class YearlyReport:
    year: int
    rows: list[ReportRow]
    counts: dict[ReportLevel, int] = field(default_factory=dict)
    evolution: list[YearTotals] = field(default_factory=list)  # earlier years, then this one

    @property
    def total(self) -> int:
        return len(self.rows)


def report_level(case: ReportCase) -> ReportLevel:
    if case.status is SaisineStatus.URGENT_CLOSED:
        return ReportLevel.URGENT
    if case.decision:
        return ReportLevel.LEVEL2
    if case.orientation:
        return ReportLevel.LEVEL1
    return ReportLevel.LEVEL2 if case.escalated else ReportLevel.OPEN


def report_row(case: ReportCase) -> ReportRow:
    level = report_level(case)
    if level is ReportLevel.URGENT:
        decisions = "Situation d'urgence : orientée vers les services d'urgence"
    elif level is ReportLevel.LEVEL2:
        decisions = "Niveau 2 : réunion de cellule." + (
            f" Décision : {case.decision}" if case.decision else " Décision à venir"
        )
    elif level is ReportLevel.LEVEL1:
        decisions = f"Niveau 1 : {case.orientation}"
    else:
        decisions = "Niveau 1 : échanges en cours"
    notes: list[str] = []
    if case.invited:
        notes.append("Membres invités : " + ", ".join(case.invited))
    if case.meeting_cancelled:
        notes.append("Réunion de cellule annulée")
    if case.orientation_kind is OrientationKind.HOME_INTERVENTION:
        notes.append("Intervention bilatérale au domicile")
    return ReportRow(
        month=MONTHS_FR[case.month_day.month - 1],
        reference=case.reference,
        referrer=case.referrer,
        decisions=decisions,
        note=" ; ".join(notes),
        level=level,
    )


def _totals(year: int, counts: dict[ReportLevel, int]) -> YearTotals:
    return YearTotals(
        year=year,
        level1=counts[ReportLevel.LEVEL1],
        level2=counts[ReportLevel.LEVEL2],
        urgent=counts[ReportLevel.URGENT],
        ongoing=counts[ReportLevel.OPEN],
    )


def _year_rows(
    year: int, cases: Iterable[ReportCase]
) -> tuple[list[ReportRow], dict[ReportLevel, int]]:
    chosen = sorted(
        (c for c in cases if c.month_day.year == year), key=lambda c: (c.month_day, c.reference)
    )
    rows = [report_row(c) for c in chosen]
    counts = {level: 0 for level in ReportLevel}
    for row in rows:
        counts[row.level] += 1
    return rows, counts


def build_report(
    year: int, cases: Iterable[ReportCase], entered: Iterable[YearTotals] = ()
) -> YearlyReport:
    """Rows in the order of the year (month, then reference), with counts per level, and the
    evolution over the years: totals entered for the years before the product, the earlier
    years counted from the cases, then this year."""
    cases = list(cases)
    rows, counts = _year_rows(year, cases)
    earlier = {t.year: t for t in entered if t.year < year}
    for counted in sorted({c.month_day.year for c in cases if c.month_day.year < year}):
        if counted not in earlier:  # a year entered by hand stays as entered
            earlier[counted] = _totals(counted, _year_rows(counted, cases)[1])
    evolution = [*sorted(earlier.values(), key=lambda t: t.year), _totals(year, counts)]
    return YearlyReport(year=year, rows=rows, counts=counts, evolution=evolution)


REPORT_HEADER = ["Réunion", "Saisine (source)", "Décisions", "Note", "Référence", "Niveau"]


EVOLUTION_HEADER = ["Année", "Niveau 1", "Niveau 2", "Urgence", "En cours", "Total", "Source"]


def report_csv_rows(report: YearlyReport) -> list[list[str]]:
    return [REPORT_HEADER] + [
        [r.month, r.referrer, r.decisions, r.note, r.reference, r.level.value] for r in report.rows
    ]


def evolution_csv_rows(report: YearlyReport) -> list[list[str]]:
    """The yearly totals over the years, as the annual report's evolution table."""
    return [EVOLUTION_HEADER] + [
        [
            str(t.year),
            str(t.level1),
            str(t.level2),
            str(t.urgent),
            str(t.ongoing),
            str(t.total),
            "totaux saisis" if t.entered else "saisines enregistrées",
        ]
        for t in report.evolution
    ]
