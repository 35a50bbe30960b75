"""The saisine forms' schemas as the Prefect UI reads them, and the date rules of the meeting.

What the UI shows is decided by the schema (checked in the browser by
test_saisine_forms_browser): required fields listed in `required` (no "(Optional)"), no
`anyOf` (no "Property is type None"), no `date-time` (a UTC picker), choices as `enum`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prefect.input import RunInput

from flows.inputs.fields import INSIST, at_paris, check_open_day, wall_clock
from flows.inputs.saisine import (
    NO_OWNER,
    ActionsWatchForm,
    decision_form,
    meeting_form,
    meeting_watch_form,
    orientation_form,
    partners_form,
)
from flows.waits import prefilled
from models.core.errors import DomainError

PARIS = ZoneInfo("Europe/Paris")


def _schema(form: type[RunInput]) -> dict[str, Any]:
    from prefect._internal.pydantic.v2_schema import create_v2_schema

    return create_v2_schema(form.__name__, model_base=form)


FORMS: dict[str, type[RunInput]] = {
    "partners": partners_form(["CHL", "DAC-PTA"]),
    "orientation": orientation_form(["Mise en lien avec la coordinatrice de parcours"]),
    "meeting": prefilled(
        meeting_form(["Réunion du 17/12/2026 09:30 chez CCAS"], ["CCAS", "CHL"], ["MDPH"]),
        "…",
        {"day": date(2026, 12, 21), "at": "14:00", "host": "CCAS"},
    ),
    "decision": decision_form(["Référent CHL (CHL)"], date(2027, 1, 24)),
    "meeting watch": prefilled(
        meeting_watch_form(), "…", {"new_day": date(2026, 12, 17), "new_at": "09:30"}
    ),
    "actions watch": ActionsWatchForm,
}

REQUIRED = {
    "partners": ["partners"],
    "orientation": ["outcome", "who_acts", "follow_up_days"],
    "meeting": ["meeting", "day", "at", "host"],
    "decision": ["meeting_held", "text"],
    "meeting watch": ["action", "new_day", "new_at"],
    "actions watch": [],
}


@pytest.mark.parametrize("name", FORMS)
def test_each_form_reads_plainly_in_the_prefect_ui(name: str) -> None:
    schema = _schema(FORMS[name])
    text = json.dumps(schema, ensure_ascii=False)
    assert schema.get("required", []) == REQUIRED[name]
    for banned in ('"anyOf"', '"date-time"', '"null"', '"const"', '"reason"', "reference"):
        assert banned not in text, (name, banned)
    assert "description" not in schema  # no developer's docstring shown to the coordinator
    for prop in schema["properties"].values():
        assert prop["title"] and "(Optional)" not in prop["title"]


def test_an_action_line_is_required_whole_and_its_owner_a_select() -> None:
    schema = _schema(FORMS["decision"])
    line = schema["definitions"]["Action"]
    assert line["required"] == ["text", "owner", "due_on"]
    assert line["properties"]["owner"]["enum"] == [NO_OWNER, "Référent CHL (CHL)"]
    assert line["properties"]["due_on"] == {
        "default": "2027-01-24",
        "format": "date",
        "title": "Échéance",
        "type": "string",
    }


def test_a_refused_answer_comes_back_as_typed_even_in_nested_lines() -> None:
    typed = {
        "meeting_held": True,
        "text": "Visite conjointe « Les Tilleuls »",
        "actions": [{"text": "Appeler la sœur", "owner": NO_OWNER, "due_on": "2027-01-24"}],
        "starts_at": "2026-12-23T14:00:00",  # a field of an older form: left out
    }
    form = prefilled(FORMS["decision"], "Saisie refusée", typed)
    schema = _schema(form)
    assert schema["properties"]["text"]["default"] == typed["text"]
    assert schema["properties"]["actions"]["default"] == typed["actions"]
    assert schema.get("required") == ["meeting_held", "text"]  # still required once prefilled
    answer = form.model_validate({k: v for k, v in typed.items() if k != "starts_at"})
    assert answer.model_dump(mode="json")["actions"] == typed["actions"]


def test_a_prefilled_field_the_person_empties_comes_back_empty() -> None:
    """The UI leaves an emptied field out of the answer: it must not come back as the text it
    was prefilled with (the refused answer's actions, say, deleted by the coordinator)."""
    typed = {
        "meeting_held": True,
        "text": "Visite conjointe",
        "actions": [{"text": "Appeler la sœur", "owner": NO_OWNER, "due_on": "2027-01-24"}],
    }
    form = prefilled(FORMS["decision"], "Saisie refusée", typed)
    assert _schema(form)["properties"]["actions"]["default"] == typed["actions"]  # shown
    answer = form.model_validate({"meeting_held": True, "text": "Visite conjointe"})
    assert answer.model_dump(mode="json")["actions"] == []


def test_tick_and_the_service_still_wake_the_watch_forms() -> None:
    for name in ("meeting watch", "actions watch"):
        schema = _schema(FORMS[name])
        assert schema.get("additionalProperties") is not False  # {"reason": "due"} passes
        assert FORMS[name].model_validate({"reason": "due"}).reason == "due"  # type: ignore[attr-defined]


def test_times_are_paris_wall_clock_times() -> None:
    assert at_paris(date(2026, 12, 17), "09:30") == datetime(2026, 12, 17, 9, 30, tzinfo=PARIS)
    assert at_paris(date(2026, 7, 2), "09:30").utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert wall_clock(datetime(2026, 12, 17, 8, 30, tzinfo=ZoneInfo("UTC"))) == (
        date(2026, 12, 17),
        "09:30",
    )
    with pytest.raises(DomainError, match="choisissez-la dans la liste"):
        at_paris(date(2026, 12, 17), "23:00")


def test_meetings_avoid_weekends_and_holidays_unless_insisted() -> None:
    with pytest.raises(DomainError) as saturday:
        check_open_day(date(2026, 12, 19), insist=False)
    assert saturday.value.message == (
        f"Le samedi 19/12/2026 est un week-end : choisissez un autre jour, ou cochez « {INSIST} »."
    )
    with pytest.raises(DomainError, match="Le vendredi 25/12/2026 est un jour férié"):
        check_open_day(date(2026, 12, 25), insist=False)
    check_open_day(date(2026, 12, 25), insist=True)
    check_open_day(date(2026, 12, 17), insist=False)
