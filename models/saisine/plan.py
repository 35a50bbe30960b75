"""When things happen in a saisine: deadlines in business days (French holidays), the
moments of reminders and alerts, and the calendar part of a cell meeting."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from models.core.calendar import add_business_days, at_local
from models.core.outbox import CalendarMethod, CalendarPart
from models.core.settings import get_settings
from models.saisine.tables import CellMeeting, DecisionAction, FollowUp

CONSULTATION_DAYS = 5  # business days to answer a consultation
REMINDER_DAYS = 3  # business days before the first reminder
FOLLOW_UP_REMINDER_DAYS = 5  # business days after the follow-up request
MEETING_LEAD_DAYS = 10  # business days ahead: the date proposed for a new meeting
MEETING_HOURS = 2


def consultation_moments(today: date) -> tuple[datetime, datetime]:
    """When silent partners are reminded, and the deadline of their answer."""
    tz = get_settings().tz
    return (
        at_local(add_business_days(today, REMINDER_DAYS), 9, tz),
        at_local(add_business_days(today, CONSULTATION_DAYS), 18, tz),
    )


def follow_up_moments(follow_up: FollowUp) -> tuple[datetime, datetime]:
    """When the referrer is asked, and when the coordinator hears of a silent referrer."""
    tz = get_settings().tz
    return (
        at_local(follow_up.due_on, 9, tz),
        at_local(add_business_days(follow_up.due_on, FOLLOW_UP_REMINDER_DAYS), 9, tz),
    )


def action_moments(action: DecisionAction) -> tuple[datetime, datetime]:
    """When the owner is reminded (2 business days before) and the coordinator alerted."""
    tz = get_settings().tz
    return (
        at_local(add_business_days(action.due_on, -2), 9, tz),
        at_local(add_business_days(action.due_on, 1), 9, tz),
    )


def proposed_meeting_start(today: date) -> datetime:
    """The date and time the meeting form proposes (Paris time)."""
    return at_local(add_business_days(today, MEETING_LEAD_DAYS), 14, get_settings().tz)


def meeting_calendar(
    meeting: CellMeeting,
    method: CalendarMethod,
    *,
    clsm_name: str,
    place: list[str],
    references: list[str],
) -> CalendarPart:
    """The invitation (REQUEST) or cancellation (CANCEL) of a cell meeting."""
    listed = ", ".join(references)
    return CalendarPart(
        uid=meeting.uid,
        sequence=meeting.sequence,
        method=method,
        summary=f"Réunion de la cellule de concertation — {clsm_name}",
        start=meeting.starts_at.isoformat(),
        end=(meeting.starts_at + timedelta(hours=MEETING_HOURS)).isoformat(),
        location=", ".join(x for x in place if x),
        description=f"Saisines examinées : {listed}" if listed else "",
    )
