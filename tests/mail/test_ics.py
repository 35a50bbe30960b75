"""Calendar parts: a short VTIMEZONE around the event, the same wall-clock time everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import icalendar

from models.core.outbox import CalendarMethod, CalendarPart
from notifications.ics import build_calendar


def _calendar(start: str, end: str, method: CalendarMethod) -> icalendar.Calendar:
    part = CalendarPart(
        uid="clsm-session-1-preparation@clsm",
        sequence=2,
        method=method,
        summary="Journée de préparation",
        start=start,
        end=end,
        location="Salle A",
        description="",
    )
    text = build_calendar(
        part,
        organizer_name="CLSM",
        organizer_email="coordination@clsm.example",
        attendee_name="Camille",
        attendee_email="camille@ccas.example",
        stamp=datetime(2026, 3, 1, tzinfo=UTC),
    )
    return icalendar.Calendar.from_ical(text)


def test_an_invitation_carries_the_paris_zone_of_its_years_only() -> None:
    calendar = _calendar(
        "2026-03-30T07:00:00+00:00", "2026-03-30T15:00:00+00:00", CalendarMethod.REQUEST
    )
    (zone,) = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Paris"
    text = zone.to_ical().decode()
    assert "20260329T030000" in text  # the change to summer time before the event
    assert "2031" not in text and "1990" not in text  # not forty years of transitions
    (event,) = calendar.walk("VEVENT")
    start = event.decoded("DTSTART")
    assert start.tzinfo is not None and start.astimezone(ZoneInfo("Europe/Paris")).hour == 9
    assert event["SEQUENCE"] == 2 and calendar["METHOD"] == "REQUEST"


def test_a_cancellation_across_a_new_year_keeps_both_years() -> None:
    calendar = _calendar(
        "2027-12-31T08:00:00+00:00", "2028-01-02T16:00:00+00:00", CalendarMethod.CANCEL
    )
    (zone,) = calendar.walk("VTIMEZONE")
    text = zone.to_ical().decode()
    assert "2027" in text and "2028" in text
    (event,) = calendar.walk("VEVENT")
    assert event["STATUS"] == "CANCELLED" and calendar["METHOD"] == "CANCEL"
    assert event.decoded("DTEND").astimezone(ZoneInfo("Europe/Paris")).hour == 17
