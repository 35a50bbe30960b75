"""When things happen in a session: deadlines, calendar parts, and dates as people read them.

Pure functions of the session row (no database): the steps and the flow ask them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from models.core.calendar import add_business_days, at_local
from models.core.outbox import CalendarMethod, CalendarPart
from models.core.settings import get_settings
from models.immersion.rules import reminder_day
from models.immersion.states import Meeting
from models.immersion.tables import ImmersionSession, Placement


def local(moment: datetime) -> datetime:
    return moment.astimezone(get_settings().tz)


def when(moment: datetime) -> str:
    """A moment as people read it in mails and pages: 04/10/2022 à 09:00 (Paris)."""
    return f"{local(moment):%d/%m/%Y à %H:%M}"


def launch_moments(
    call_closes_at: datetime, preparation_at: datetime, restitution_at: datetime
) -> dict[str, str]:
    """The session launch form's days and Paris times (`immersion_session`'s parameters) of
    these moments: each a date and a time of day, so that no time zone can shift them."""
    moments = (
        ("call_closes", call_closes_at),
        ("preparation", preparation_at),
        ("restitution", restitution_at),
    )
    parameters: dict[str, str] = {}
    for name, moment in moments:
        parameters[f"{name}_on"] = f"{local(moment):%Y-%m-%d}"
        parameters[f"{name}_time"] = f"{local(moment):%H:%M}"
    return parameters


def days_label(days: Sequence[date]) -> str:
    return ", ".join(f"{d:%d/%m/%Y}" for d in days)


def window_label(row: ImmersionSession) -> str:
    return f"du {row.window_start:%d/%m/%Y} au {row.window_end:%d/%m/%Y}"


def duration_label(row: ImmersionSession) -> str:
    return f"{row.min_days} à {row.max_days} jours"


def preparation_label(row: ImmersionSession) -> str:
    return f"{when(row.preparation_at)}, {row.preparation_place}"


def _evening(day: date, business_days: int) -> datetime:
    return at_local(add_business_days(day, business_days), 18, get_settings().tz)


def default_withdrawal_cutoff(preparation_at: datetime, business_days: int = 2) -> datetime:
    """Replacements stop two (or `business_days`) business days before the preparation day
    (18:00)."""
    return _evening(local(preparation_at).date(), -business_days)


def host_deadline(row: ImmersionSession) -> datetime:
    """Hosts confirm five business days before the preparation day (18:00)."""
    return _evening(local(row.preparation_at).date(), -5)


def signature_deadline(row: ImmersionSession) -> datetime:
    """Agreements are signed two business days before the preparation day (18:00)."""
    return _evening(local(row.preparation_at).date(), -2)


def call_reminder_at(row: ImmersionSession) -> datetime:
    """Two business days before the call closes, at 9:00."""
    return at_local(reminder_day(local(row.call_closes_at).date()), 9, get_settings().tz)


def day_reminder_at(placement: Placement) -> datetime:
    """The business day before a placement's first day, at 9:00 (the eve of a Monday is the
    Friday before: the mail names the day rather than saying "demain")."""
    return at_local(reminder_day(min(placement.day_list), 1), 9, get_settings().tz)


def end_of_days(row: ImmersionSession, days: Sequence[date]) -> datetime:
    """After the last immersion day (or the window's end if no day is known), at 18:00."""
    last = max(days) if days else row.window_end
    return at_local(min(last, row.window_end), 18, get_settings().tz)


def meeting_part(row: ImmersionSession, which: Meeting) -> CalendarPart:
    """The invitation to the preparation day or the restitution (its current SEQUENCE)."""
    if which == "preparation":
        return CalendarPart(
            uid=f"clsm-session-{row.id}-preparation@clsm",
            sequence=row.preparation_sequence,
            method=CalendarMethod.REQUEST,
            summary=f"Journée de préparation — {row.title}",
            start=row.preparation_at.isoformat(),
            end=row.preparation_end.isoformat(),
            location=row.preparation_place,
            description=(
                "Journée de préparation des immersions : représentations des structures, "
                "grille d'observation et évaluation de fin de stage."
            ),
        )
    return CalendarPart(
        uid=f"clsm-session-{row.id}-restitution@clsm",
        sequence=row.restitution_sequence,
        method=CalendarMethod.REQUEST,
        summary=f"Restitution — {row.title}",
        start=row.restitution_at.isoformat(),
        end=row.restitution_end.isoformat(),
        location=row.restitution_place,
        description="Retour d'expériences avec l'ensemble des binômes de la session.",
    )


def immersion_part(row: ImmersionSession, placement: Placement, host: str) -> CalendarPart:
    """The invitation to a placement's days, from the first at 9:00 to the last at 17:00."""
    days = placement.day_list
    tz = get_settings().tz
    return CalendarPart(
        uid=f"clsm-session-{row.id}-placement-{placement.id}@clsm",
        sequence=placement.calendar_sequence,
        method=CalendarMethod.REQUEST,
        summary=f"Immersion — {host}",
        start=at_local(min(days), 9, tz).isoformat(),
        end=at_local(max(days), 17, tz).isoformat(),
        location=host,
        description=f"Jours d'immersion : {days_label(days)}",
    )


def cancelled(part: CalendarPart, *, bump: bool = False) -> CalendarPart:
    """The CANCEL of an invitation (a higher SEQUENCE when the event itself is cancelled)."""
    return CalendarPart(
        **{
            **part.as_dict(),
            "method": CalendarMethod.CANCEL,
            "sequence": part.sequence + 1 if bump else part.sequence,
        }
    )
