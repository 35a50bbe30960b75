"""Calendar invitations (iCalendar, RFC 5545/5546) for meetings.

REQUEST invites; CANCEL withdraws, with the same UID and a higher SEQUENCE (a moved meeting
is a new REQUEST with a higher SEQUENCE). Times are written in the installation's time zone
(Europe/Paris) with its VTIMEZONE, so every calendar shows the right wall-clock time.
"""

from __future__ import annotations

from datetime import date, datetime
from email.utils import parseaddr
from functools import lru_cache

from icalendar import Calendar, Event, Timezone, vCalAddress, vText

from models.core.outbox import CalendarMethod, CalendarPart
from models.core.settings import get_settings

PRODID = "-//CLSM//Moteur de processus des CLSM//FR"


def _address(email: str, name: str, role: str | None = None) -> vCalAddress:
    address = vCalAddress(f"mailto:{parseaddr(email)[1] or email}")
    if name:
        address.params["CN"] = vText(name)
    if role:
        address.params["ROLE"] = vText(role)
        address.params["PARTSTAT"] = vText("NEEDS-ACTION")
        address.params["RSVP"] = vText("TRUE")
    return address


@lru_cache(maxsize=64)
def _vtimezone_text(tzid: str, year: int) -> str:
    """The VTIMEZONE of tzid for the years around `year`, as iCalendar text.

    Written once per zone and year and spliced into every invitation: icalendar derives
    it from the zone's transitions, which was most of the cost of rendering an
    invitation; a few years keep it short.
    """
    zone = Timezone.from_tzid(tzid, first_date=date(year - 1, 1, 1), last_date=date(year + 2, 1, 1))
    return str(zone.to_ical().decode())


def build_calendar(
    part: CalendarPart,
    *,
    organizer_name: str,
    organizer_email: str,
    attendee_name: str,
    attendee_email: str,
    stamp: datetime,
) -> str:
    """The iCalendar text of one invitation (REQUEST) or cancellation (CANCEL)."""
    tz = get_settings().tz
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", part.method.value)
    event = Event()
    event.add("uid", part.uid)
    event.add("sequence", part.sequence)
    event.add("dtstamp", stamp)
    start = datetime.fromisoformat(part.start).astimezone(tz)
    event.add("dtstart", start)
    event.add("dtend", datetime.fromisoformat(part.end).astimezone(tz))
    event.add("summary", part.summary)
    if part.location:
        event.add("location", part.location)
    if part.description:
        event.add("description", part.description)
    event.add("organizer", _address(organizer_email, organizer_name))
    event.add("attendee", _address(attendee_email, attendee_name, "REQ-PARTICIPANT"))
    cancelled = part.method is CalendarMethod.CANCEL
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    calendar.add_component(event)
    zones = "".join(_vtimezone_text(tzid, start.year) for tzid in calendar.get_missing_tzids())
    text = str(calendar.to_ical().decode())
    # the zones go before the event, as icalendar would put them (RFC 5545 allows any order)
    head, begin_event, rest = text.partition("BEGIN:VEVENT\r\n")
    return f"{head}{zones}{begin_event}{rest}"
