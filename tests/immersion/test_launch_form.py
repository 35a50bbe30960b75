"""The session's launch form in the Prefect UI: days as date fields and times of day as
selects in Paris time, never a date-time widget (UTC in the UI, refused when naive)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from prefect.utilities.callables import parameter_schema

from flows.immersion import immersion_session
from flows.inputs.fields import TIMES, at_paris
from models.immersion.plan import launch_moments

PARIS = ZoneInfo("Europe/Paris")


def _properties() -> dict[str, Any]:
    schema = parameter_schema(immersion_session.fn).model_dump_for_openapi()
    properties: dict[str, Any] = schema["properties"]
    return properties


def test_no_field_of_the_launch_form_is_a_date_time() -> None:
    properties = _properties()
    assert not [name for name, field in properties.items() if field.get("format") == "date-time"]
    for day in ("call_closes_on", "preparation_on", "restitution_on"):
        assert properties[day]["format"] == "date", properties[day]
    shown = {
        name: (field["title"], field["default"])
        for name, field in properties.items()
        if name.endswith("_time")
    }
    assert shown == {
        "call_closes_time": ("Clôture de l'appel : heure (heure de Paris)", "18:00"),
        "preparation_time": ("Journée de préparation : heure de début (heure de Paris)", "09:00"),
        "restitution_time": ("Restitution : heure de début (heure de Paris)", "14:00"),
    }
    for name in shown:  # a select of the quarters of an hour, nothing to type
        assert properties[name]["enum"] == list(TIMES), properties[name]


def test_the_days_and_times_are_read_in_paris_whatever_the_season() -> None:
    winter = datetime(2027, 1, 12, 9, 0, tzinfo=PARIS)
    summer = datetime(2027, 7, 6, 14, 30, tzinfo=PARIS)
    closing = datetime(2026, 12, 18, 17, 0, tzinfo=ZoneInfo("UTC"))  # 18:00 in Paris
    form = launch_moments(closing, winter, summer)
    assert form == {
        "call_closes_on": "2026-12-18",
        "call_closes_time": "18:00",
        "preparation_on": "2027-01-12",
        "preparation_time": "09:00",
        "restitution_on": "2027-07-06",
        "restitution_time": "14:30",
    }
    for name, moment in (
        ("call_closes", closing),
        ("preparation", winter),
        ("restitution", summer),
    ):
        day = datetime.fromisoformat(form[f"{name}_on"]).date()
        read = at_paris(day, form[f"{name}_time"])
        assert read == moment and read.tzinfo is not None
        assert read.astimezone(PARIS).time() == time.fromisoformat(form[f"{name}_time"])
