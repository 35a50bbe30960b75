"""The yearly report of the cell: one row per saisine ("Réunion / Saisine (source) /
Décisions / Note"), then counts per level; also as CSV."""

from __future__ import annotations

from sqlmodel import Session, col, select

from models.core.audit import Actor
from models.core.calendar import local_date
from models.core.settings import get_settings
from models.core.spreadsheet import csv_text
from models.saisine.common import (
    decision_of,
    event,
    meeting_members,
    meetings_of,
    org_label,
    orientations,
)
from models.saisine.rules import ReportCase, YearlyReport, build_report, report_csv_rows
from models.saisine.states import MeetingStatus
from models.saisine.tables import Saisine


def _report_case(session: Session, saisine: Saisine) -> ReportCase:
    tz = get_settings().tz
    meetings = meetings_of(session, saisine)
    decision = decision_of(session, saisine)
    orientation_list = orientations(session, saisine)
    orientation = orientation_list[-1] if orientation_list else None
    held = next((m for m in meetings if m.id == decision.meeting_id), None) if decision else None
    if held is not None:
        day = local_date(held.starts_at, tz)
    elif orientation is not None:
        day = local_date(orientation.decided_at, tz)
    else:
        day = local_date(saisine.received_at, tz)
    invited: list[str] = []
    if held is not None:
        for member in meeting_members(session, held):
            if member.invited_for_saisine_id == saisine.id:
                invited.append(org_label(session, member.organisation_id))
    return ReportCase(
        reference=saisine.reference,
        month_day=day,
        referrer=org_label(session, saisine.referrer_organisation_id),
        status=saisine.status,
        orientation=orientation.text if orientation and not decision else "",
        orientation_kind=orientation.kind if orientation and not decision else None,
        decision=decision.text if decision else "",
        invited=tuple(invited),
        meeting_cancelled=any(m.status is MeetingStatus.CANCELLED for m in meetings),
        escalated=bool(meetings) and orientation is None,
    )


def yearly_report(session: Session, clsm_id: int, year: int) -> YearlyReport:
    """The table of the annual report: one row per saisine, then counts per level."""
    saisines = session.exec(select(Saisine).where(Saisine.clsm_id == clsm_id))
    return build_report(year, [_report_case(session, s) for s in saisines])


def record_report_read(
    *, session: Session, clsm_id: int, report: YearlyReport, actor: Actor, form: str
) -> int:
    """The yearly report names each saisine's referrer and decisions: its read is recorded
    in the history of every saisine it shows (`report.read`)."""
    references = [row.reference for row in report.rows]
    shown = session.exec(
        select(Saisine).where(Saisine.clsm_id == clsm_id, col(Saisine.reference).in_(references))
    ).all()
    for saisine in shown:
        event(
            session,
            saisine,
            "report.read",
            actor,
            {"report": f"bilan {report.year}", "format": form},
        )
    return len(shown)


def yearly_report_csv(
    session: Session, clsm_id: int, year: int, report: YearlyReport | None = None
) -> str:
    report = report or yearly_report(session, clsm_id, year)
    totals = [[f"Total {level.value}", str(count)] for level, count in report.counts.items()]
    return csv_text([*report_csv_rows(report), [], *totals])
