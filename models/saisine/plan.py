"""When things happen in a saisine: deadlines in business days (French holidays), the
moments of reminders and alerts, and the calendar part of a cell meeting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from models.core.calendar import add_business_days, at_local
from models.core.outbox import CalendarMethod, CalendarPart
from models.core.settings import get_settings
from models.saisine.states import WaitName, wait_step
from models.saisine.tables import CellMeeting, DecisionAction, FollowUp

CONSULTATION_DAYS = 5  # business days to answer a consultation
REMINDER_DAYS = 3  # business days before the first reminder
FOLLOW_UP_REMINDER_DAYS = 5  # business days after the follow-up request
MEETING_LEAD_DAYS = 10  # business days ahead: the date proposed for a new meeting
MEETING_HOURS = 2


class Task(StrEnum):
    """A step of the run that needs nobody: reminders, alerts, applying an answer, closing."""

    ASK_DESCRIPTION = "ask-description"
    REMIND_PARTNERS = "remind-partners"
    REPORT_SILENT_PARTNERS = "report-silent-partners"
    START_FOLLOW_UP = "start-follow-up"
    ALERT_FOLLOW_UP = "alert-follow-up"
    APPLY_FOLLOW_UP = "apply-follow-up"
    REMIND_OWNERS = "remind-owners"
    CLOSE = "close"


@dataclass(frozen=True)
class Next:
    """What a saisine's run does next, as its phase's question answers it: a task, then at
    most one wait (a coordinator form, or partners' answers and a due time)."""

    task: Task | None = None
    wait: WaitName | None = None
    step: str = ""  # the wait's step: its name with the round or the meeting
    due_at: datetime | None = None
    meeting_id: int | None = None
    close_reason: str = ""

    @classmethod
    def until(
        cls,
        wait: WaitName,
        *,
        due_at: datetime | None = None,
        round_: int = 0,
        meeting_id: int | None = None,
        task: Task | None = None,
    ) -> Next:
        step = wait_step(wait, round_=round_, meeting_id=meeting_id)
        return cls(task=task, wait=wait, step=step, due_at=due_at, meeting_id=meeting_id)


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
