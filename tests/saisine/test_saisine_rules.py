"""Pure rules of the saisines: rotation, conventions, guards, yearly report rows."""

from __future__ import annotations

from datetime import date

import pytest

from models.core.errors import DomainError
from models.saisine.rules import (
    Convention,
    OrientationKind,
    ReportCase,
    ReportLevel,
    build_report,
    check_close_allowed,
    check_consultable,
    check_decision_allowed,
    check_meeting_allowed,
    consultable,
    next_host,
    report_csv_rows,
)
from models.saisine.states import ActionStatus, MeetingStatus, SaisineStatus

CCAS, CHL, DEP, DAC = 1, 2, 3, 4


def test_a_member_that_never_hosted_comes_first_in_list_order() -> None:
    assert next_host([CCAS, CHL, DEP, DAC], [(CCAS, date(2022, 4, 5))]) == CHL
    assert next_host([CCAS, CHL, DEP, DAC], []) == CCAS


def test_the_member_that_hosted_least_recently_hosts_next() -> None:
    hosted = [
        (CCAS, date(2022, 4, 5)),
        (CHL, date(2022, 11, 15)),
        (DEP, date(2021, 11, 10)),
        (DAC, date(2022, 1, 20)),
        (DEP, date(2020, 3, 1)),  # an older visit does not hide the latest one
    ]
    assert next_host([CCAS, CHL, DEP, DAC], hosted) == DEP


def test_meetings_at_other_structures_do_not_count() -> None:
    assert next_host([CCAS, CHL], [(99, date(2019, 1, 1)), (CCAS, date(2022, 1, 1))]) == CHL


def test_rotation_needs_permanent_members() -> None:
    with pytest.raises(DomainError):
        next_host([], [])


def test_only_a_convention_valid_on_the_day_allows_consulting() -> None:
    conventions = [
        Convention(CCAS, date(2018, 6, 1), date(2022, 12, 31)),
        Convention(CHL, date(2023, 1, 1), date(2027, 12, 31)),
        Convention(DEP, date(2018, 6, 1), date(2022, 12, 31)),
        Convention(DEP, date(2023, 1, 1), date(2027, 12, 31)),
    ]
    assert consultable(conventions, date(2022, 12, 31)) == {CCAS, DEP}
    assert consultable(conventions, date(2023, 1, 1)) == {CHL, DEP}
    assert consultable(conventions, date(2028, 1, 1)) == set()
    check_consultable([CHL, DEP], conventions, date(2026, 3, 2), {})
    with pytest.raises(DomainError, match="CCAS"):
        check_consultable([CCAS, CHL], conventions, date(2026, 3, 2), {CCAS: "CCAS"})


@pytest.mark.parametrize("status", [s for s in SaisineStatus if s is not SaisineStatus.LEVEL2])
def test_no_meeting_without_escalation(status: SaisineStatus) -> None:
    with pytest.raises(DomainError, match="niveau 2"):
        check_meeting_allowed(status)


def test_a_level2_saisine_may_go_to_a_meeting() -> None:
    check_meeting_allowed(SaisineStatus.LEVEL2)


@pytest.mark.parametrize("meeting", [None, MeetingStatus.PLANNED, MeetingStatus.CANCELLED])
def test_no_decision_without_a_held_meeting(meeting: MeetingStatus | None) -> None:
    with pytest.raises(DomainError, match="réunion"):
        check_decision_allowed(SaisineStatus.LEVEL2, meeting)


def test_a_decision_after_a_held_meeting_at_level2() -> None:
    check_decision_allowed(SaisineStatus.LEVEL2, MeetingStatus.HELD)
    with pytest.raises(DomainError):
        check_decision_allowed(SaisineStatus.LEVEL1, MeetingStatus.HELD)


def test_closing_requires_actions_done_or_a_reason() -> None:
    check_close_allowed([ActionStatus.DONE, ActionStatus.DROPPED], "")
    check_close_allowed([], "")
    with pytest.raises(DomainError, match="motif"):
        check_close_allowed([ActionStatus.DONE, ActionStatus.OPEN], "  ")
    check_close_allowed([ActionStatus.OPEN], "situation résolue autrement")


def _case(reference: str, day: date, **kw: object) -> ReportCase:
    base: dict[str, object] = {
        "reference": reference,
        "month_day": day,
        "referrer": "ICF Habitat",
        "status": SaisineStatus.CLOSED,
    }
    base.update(kw)
    return ReportCase(**base)  # type: ignore[arg-type]


def test_yearly_report_rows_and_counts() -> None:
    cases = [
        _case(
            "2022-05",
            date(2022, 11, 15),
            referrer="CHL - Service majeurs protégés",
            decision="Organisation d'une réunion de concertation par le DAC une fois par an",
            invited=("MDPH", "Un chez Soi d'Abord"),
        ),
        _case(
            "2022-01",
            date(2022, 1, 20),
            orientation="Organisation d'une réunion de concertation par ICF Habitat et le DAC-PTA",
            orientation_kind=OrientationKind.CONCERTATION_MEETING,
            meeting_cancelled=True,
        ),
        _case(
            "2022-03",
            date(2022, 7, 8),
            referrer="D2SP",
            orientation="Mise en lien avec CHL et DAC-PTA",
            orientation_kind=OrientationKind.HOME_INTERVENTION,
        ),
        _case("2022-07", date(2022, 9, 1), status=SaisineStatus.URGENT_CLOSED),
        _case("2021-08", date(2021, 12, 1), orientation="hors année"),
    ]
    report = build_report(2022, cases)
    assert [(r.month, r.reference) for r in report.rows] == [
        ("Janvier", "2022-01"),
        ("Juillet", "2022-03"),
        ("Septembre", "2022-07"),
        ("Novembre", "2022-05"),
    ]
    january, july, september, november = report.rows
    assert january.decisions == (
        "Niveau 1 : Organisation d'une réunion de concertation par ICF Habitat et le DAC-PTA"
    )
    assert january.note == "Réunion de cellule annulée"
    assert july.note == "Intervention bilatérale au domicile"
    assert september.level is ReportLevel.URGENT
    assert november.decisions.startswith("Niveau 2 : réunion de cellule. Décision : Organisation")
    assert november.note == "Membres invités : MDPH, Un chez Soi d'Abord"
    assert report.counts[ReportLevel.LEVEL1] == 2
    assert report.counts[ReportLevel.LEVEL2] == 1
    assert report.counts[ReportLevel.URGENT] == 1
    assert report.total == 4
    csv_rows = report_csv_rows(report)
    assert csv_rows[0][:4] == ["Réunion", "Saisine (source)", "Décisions", "Note"]
    assert csv_rows[1][1] == "ICF Habitat"


def test_an_escalated_saisine_without_decision_yet_counts_at_level2() -> None:
    report = build_report(2026, [_case("2026-01", date(2026, 3, 2), escalated=True)])
    assert report.rows[0].decisions == "Niveau 2 : réunion de cellule. Décision à venir"
    assert report.counts[ReportLevel.LEVEL2] == 1
