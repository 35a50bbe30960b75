"""Builders shared by the immersion tests: a CLSM with structures and a session's dates."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from models import clock
from models.calendar import add_business_days, is_business_day
from models.people import Clsm, Organisation
from tests import factories

PARIS = ZoneInfo("Europe/Paris")
STRUCTURES = ["CCAS", "CHL", "Département", "DAC", "UDAF"]


def build_clsm(session: Session) -> tuple[Clsm, list[Organisation]]:
    clsm = factories.clsm(session)
    orgs = []
    for name in STRUCTURES:
        org = factories.organisation(session, clsm, name)
        factories.contact(session, org, f"Référent {name}", f"referent@{name.lower()}.example")
        orgs.append(org)
    return clsm, orgs


def _next_business_day(day: date) -> date:
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def session_dates(now: datetime) -> dict[str, Any]:
    """Launch parameters of a session whose call closes in ten days (dates from `now`)."""
    today = now.astimezone(PARIS).date()
    prep = _next_business_day(today + timedelta(days=21))
    window_start = _next_business_day(prep + timedelta(days=7))
    window_end = window_start + timedelta(days=27)
    restitution = _next_business_day(window_end + timedelta(days=7))
    return {
        "call_opens_on": today,
        "call_closes_at": datetime.combine(today + timedelta(days=10), time(18), PARIS),
        "preparation_at": datetime.combine(prep, time(9), PARIS),
        "preparation_end": datetime.combine(prep, time(17), PARIS),
        "preparation_place": "Maison des solidarités, Poitiers",
        "facilitator_name": "CODES 34",
        "facilitator_email": "animation@codes.example",
        "window_start": window_start,
        "window_end": window_end,
        "min_days": 1,
        "max_days": 5,
        "restitution_at": datetime.combine(restitution, time(14), PARIS),
        "restitution_end": datetime.combine(restitution, time(17, 30), PARIS),
        "restitution_place": "CCAS de Poitiers",
        "withdrawal_cutoff": datetime.combine(prep - timedelta(days=2), time(18), PARIS),
    }


def immersion_days(window_start: date, count: int = 3, offset: int = 0) -> list[date]:
    first = add_business_days(window_start, offset) if offset else window_start
    days = [first]
    while len(days) < count:
        days.append(add_business_days(days[-1], 1))
    return days


def now(session: Session) -> datetime:
    return clock.now(session)
