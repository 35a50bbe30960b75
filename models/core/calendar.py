"""Business days with French public holidays, in the installation's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from models.core.errors import InvalidInput
from models.core.french import WEEKDAYS


@lru_cache(maxsize=64)
def _french_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", years=year).keys())


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _french_holidays(day.year)


INSIST = "Maintenir malgré le week-end / jour férié"
"""The label of the box a coordinator ticks to keep a meeting on a closed day."""


def closed_day(day: date) -> str | None:
    """Why `day` is not open ("le samedi 19/12/2026 est un week-end"), None when it is."""
    if is_business_day(day):
        return None
    kind = "un jour férié" if day.weekday() < 5 else "un week-end"
    return f"le {WEEKDAYS[day.weekday()]} {day:%d/%m/%Y} est {kind}"


def check_open_day(day: date, *, insist: bool) -> None:
    """Refuse a weekend or a French public holiday (in French), unless `insist`."""
    reason = None if insist else closed_day(day)
    if reason is not None:
        raise InvalidInput(
            f"{reason[:1].upper()}{reason[1:]} : choisissez un autre jour, ou cochez « {INSIST} »."
        )


def next_open_day(day: date) -> date:
    """`day` if it is open, else the first business day after it."""
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def add_business_days(day: date, count: int) -> date:
    """Move count business days forward (negative: backward) from day."""
    step = 1 if count >= 0 else -1
    remaining = abs(count)
    current = day
    while remaining:
        current += timedelta(days=step)
        if is_business_day(current):
            remaining -= 1
    return current


def business_days_between(start: date, end: date) -> int:
    """Business days in (start, end]; negative when end is before start."""
    if end < start:
        return -business_days_between(end, start)
    return sum(
        1
        for offset in range(1, (end - start).days + 1)
        if is_business_day(start + timedelta(days=offset))
    )


def at_local(day: date, hour: int, tz: ZoneInfo, minute: int = 0) -> datetime:
    """An aware datetime for a wall-clock time in tz (e.g. 9:00 Europe/Paris)."""
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()
