"""The one source of "now": real UTC time plus an offset that tests and demos can set.

The offset lives in the database so that every process (service, worker, flow runs
started in new processes) sees the same time. Production refuses an offset.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlmodel import Field, Session, SQLModel

from models.core.settings import Environment, get_settings


class ClockOffset(SQLModel, table=True):
    __tablename__ = "clock_offset"

    id: int = Field(default=1, primary_key=True)
    seconds: float = 0.0


class ClockRefused(Exception):
    """Moving the clock is not allowed in production."""


def offset(session: Session) -> timedelta:
    if get_settings().env is Environment.PRODUCTION:
        return timedelta(0)
    # by key: read once per transaction, then from the session's identity map (a step
    # asks the time for each row and event it writes)
    row = session.get(ClockOffset, 1)
    return timedelta(seconds=row.seconds) if row else timedelta(0)


def now(session: Session) -> datetime:
    """Aware UTC time as the whole installation sees it."""
    return datetime.now(UTC) + offset(session)


def set_offset(*, session: Session, delta: timedelta) -> None:
    if get_settings().env is Environment.PRODUCTION:
        raise ClockRefused("l'horloge ne peut pas être déplacée en production")
    row = session.get(ClockOffset, 1) or ClockOffset(id=1)
    row.seconds = delta.total_seconds()
    session.add(row)


def advance(*, session: Session, delta: timedelta) -> datetime:
    """Move the installation's clock forward by delta; returns the new now."""
    set_offset(session=session, delta=offset(session) + delta)
    session.flush()
    return now(session)


# Dates people give are taken between these bounds (no case lives elsewhere; beyond them,
# converting time zones overflows).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


def within_bounds(day: date) -> bool:
    return FIRST_DAY <= day <= LAST_DAY
