"""The generic partner form, read against every step the processes declare."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from models.catalogue import STEP_KINDS
from models.core.settings import get_settings
from models.immersion.evaluations import ParticipantEvaluationForm
from models.immersion.placements import HostForm
from models.saisine.level1 import ConsultationAnswer
from models.saisine.outcome import Acknowledgement
from service.forms import (
    CHOICE_ERROR,
    EMPTY_ERROR,
    form_fields,
    parse_form,
    parse_french_date,
    parse_french_datetime,
)

HOST = {
    "answer": ["accepter"],
    "tutor_name": ["Hélène Lefèvre-Nguyễn"],
    "tutor_email": ["helene.lefevre@chl.example"],
    "tutor_function": ["Cadre de santé"],
    "capacity": ["2"],
    "may_observe": ["Réunions d'équipe, entretiens d'accueil"],
    "may_not_observe": ["Entretiens individuels"],
}


@pytest.mark.parametrize("name", sorted(STEP_KINDS))
def test_no_step_caps_a_list_as_characters_nor_presets_a_choice(name: str) -> None:
    """max_length of a list counts its items: it never becomes a character limit."""
    kind = STEP_KINDS[name]
    for field in form_fields(kind.form):
        if field.widget == "lines":
            assert field.max_length is None, f"{name}.{field.name}"
        if field.widget in ("radio", "select"):
            assert field.value is None, f"{name}.{field.name} is preset"
            assert field.required or "" in dict(field.options), f"{name}.{field.name}"
        if field.max_length is not None:
            assert field.widget in ("text", "textarea", "email"), f"{name}.{field.name}"


def test_the_host_days_are_a_list_of_french_dates_of_at_most_five_lines() -> None:
    (days,) = [f for f in form_fields(HostForm) if f.name == "days"]
    assert (days.widget, days.max_length, days.max_items, days.item) == ("lines", None, 5, "date")
    assert "jj/mm/aaaa, 5 au plus" in days.format_hint
    typed = "05/01/2027\n6/1/2027\n  \n2027-01-07"
    answer, _, errors = parse_form(HostForm, {**HOST, "days": [typed]})
    assert errors == {} and isinstance(answer, HostForm)
    assert answer.days == [date(2027, 1, 5), date(2027, 1, 6), date(2027, 1, 7)]
    shown = form_fields(HostForm, answer.model_dump())
    assert next(f for f in shown if f.name == "days").value == "05/01/2027\n06/01/2027\n07/01/2027"


def test_a_wrong_day_is_named_by_its_line_and_the_typed_text_is_kept() -> None:
    typed = "05/01/2027\n31/02/2027"
    answer, kept, errors = parse_form(HostForm, {**HOST, "days": [typed]})
    assert answer is None and kept["days"] == typed
    assert errors == {"days": "Ligne 2 : « 31/02/2027 » n'est pas une date valide (jj/mm/aaaa)."}
    six = "\n".join(f"{d:02d}/01/2027" for d in range(4, 10))
    _, _, errors = parse_form(HostForm, {**HOST, "days": [six]})
    assert errors == {"days": "Indiquez au plus 5 éléments."}


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("05/01/2027", date(2027, 1, 5)),
        ("5/1/2027", date(2027, 1, 5)),
        ("05.01.2027", date(2027, 1, 5)),
        ("2027-01-05", date(2027, 1, 5)),
    ],
)
def test_french_dates(typed: str, expected: date) -> None:
    assert parse_french_date(typed) == expected


@pytest.mark.parametrize("typed", ["05/01/27", "2027-13-01", "32/01/2027", "demain", ""])
def test_not_a_date(typed: str) -> None:
    with pytest.raises(ValueError, match="jj/mm/aaaa"):
        parse_french_date(typed)


@pytest.mark.parametrize(
    "typed", ["23/12/2026 14:00", "23/12/2026 à 14h", "23/12/2026 14h00", "2026-12-23T14:00"]
)
def test_french_moments_are_paris_time(typed: str) -> None:
    expected = datetime(2026, 12, 23, 14, 0, tzinfo=get_settings().tz)
    assert parse_french_datetime(typed) == expected


def test_an_empty_post_on_a_consultation_records_nothing() -> None:
    """No "non / aucune proposition" by default: the partner must answer the question."""
    answer, _, errors = parse_form(ConsultationAnswer, {})
    assert answer is None and errors["knows_situation"] == CHOICE_ERROR
    answer, _, errors = parse_form(ConsultationAnswer, {"proposal": ["Visite à domicile"]})
    assert answer is None and errors == {"knows_situation": CHOICE_ERROR}
    answer, _, errors = parse_form(
        ConsultationAnswer, {"knows_situation": ["non"], "proposal": [""]}
    )
    assert errors == {} and isinstance(answer, ConsultationAnswer)


def test_a_form_of_optional_text_refuses_an_empty_post_but_not_an_empty_answer() -> None:
    assert parse_form(Acknowledgement, {})[2] == {"__root__": EMPTY_ERROR}
    answer, _, errors = parse_form(Acknowledgement, {"comment": [""]})
    assert errors == {} and isinstance(answer, Acknowledgement)


def test_a_rating_is_a_choice_from_one_to_five_with_none_preset() -> None:
    (rating,) = [f for f in form_fields(ParticipantEvaluationForm) if f.name == "rating"]
    assert rating.widget == "radio" and rating.value is None
    assert [v for v, _ in rating.options] == ["1", "2", "3", "4", "5"]
    _, _, errors = parse_form(
        ParticipantEvaluationForm,
        {"missions": ["Accueil"], "practices": ["Entretiens"], "limits": ["Secret"]},
    )
    assert errors == {"rating": CHOICE_ERROR}
