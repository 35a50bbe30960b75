"""Business days with French public holidays; the installation clock."""

from __future__ import annotations

import secrets
from datetime import date, timedelta

import pytest
from sqlmodel import Session

from models.core import clock
from models.core.calendar import add_business_days, business_days_between, is_business_day


def test_weekends_and_french_holidays_are_not_business_days() -> None:
    assert not is_business_day(date(2026, 11, 11))  # Armistice, a Wednesday
    assert not is_business_day(date(2026, 11, 14))  # Saturday
    assert is_business_day(date(2026, 11, 12))


def test_adding_business_days_skips_weekend_and_11_november() -> None:
    # Friday 6 Nov 2026 + 3 business days: Mon 9, Tue 10, (Wed 11 off), Thu 12
    assert add_business_days(date(2026, 11, 6), 3) == date(2026, 11, 12)
    assert add_business_days(date(2026, 11, 12), -3) == date(2026, 11, 6)
    assert business_days_between(date(2026, 11, 6), date(2026, 11, 12)) == 3


def test_clock_offset_is_shared_through_the_database(session: Session) -> None:
    before = clock.now(session)
    clock.advance(session=session, delta=timedelta(days=10))
    session.commit()
    assert clock.now(session) - before >= timedelta(days=10)


def test_clock_cannot_move_in_production(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.core.settings import get_settings

    monkeypatch.setenv("CLSM_ENV", "production")
    monkeypatch.setenv("CLSM_SECRET_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("CLSM_AUDIT_KEY", secrets.token_urlsafe(32))
    get_settings.cache_clear()
    try:
        with pytest.raises(clock.ClockRefused):
            clock.advance(session=session, delta=timedelta(days=1))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
