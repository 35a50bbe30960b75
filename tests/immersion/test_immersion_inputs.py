"""The coordinator's immersion forms as the Prefect UI reads them (their JSON schema)."""

from __future__ import annotations

from flows.inputs.immersion import (
    PlacementReviewForm,
    PreparationAttendanceForm,
    SelectionForm,
    with_choices,
)
from flows.waits import prefilled

LABELS = ["n° 1 — Amélie Garnier (CCAS)", "n° 2 — Bruno Chevalier (CHL)"]


def test_a_text_that_may_stay_empty_is_not_required() -> None:
    """The UI drops a text field a person empties: were it required, the answer would be
    refused in English ("'withdraw_reason' is a required property")."""
    selection = prefilled(
        with_choices(SelectionForm, {"kept": LABELS, "waitlist": LABELS, "pairs": LABELS}),
        "Sélection",
        {"kept": LABELS},
    )
    assert set(selection.model_json_schema()["required"]) == {"kept", "waitlist", "pairs"}
    attendance = prefilled(
        with_choices(PreparationAttendanceForm, {"present": LABELS, "withdrawn": LABELS}),
        "Présences",
        {"present": LABELS},
    )
    assert set(attendance.model_json_schema()["required"]) == {"present", "withdrawn"}
    # what the UI sends once the comment and the motive are emptied
    answer = selection.model_validate({"kept": LABELS[:1], "waitlist": [], "pairs": []})
    assert answer.comment == ""
    came = attendance.model_validate({"present": LABELS[:1], "withdrawn": []})
    assert came.withdraw_reason == "" and came.present == LABELS[:1]


def test_each_line_of_the_review_offers_the_participants_and_the_hosts() -> None:
    hosts = ["CHL", "DAC", "Aucune pour l'instant (accueil à trouver par la coordination)"]
    choices = {"participant": LABELS, "host": hosts}
    review = prefilled(
        with_choices(PlacementReviewForm, {"placements": choices}),
        "Accueils",
        {"placements": [{"participant": LABELS[0], "host": "CHL"}]},
    )
    schema = review.model_json_schema()
    assert set(schema["required"]) == {"placements"}  # the comment may stay empty
    line = schema["properties"]["placements"]["items"]
    assert set(line["required"]) == {"participant", "host"}
    assert line["properties"]["participant"]["enum"] == LABELS
    assert line["properties"]["host"]["enum"] == hosts
    assert line["properties"]["host"]["title"] == "Structure d'accueil"
    assert schema["properties"]["placements"]["default"] == [
        {"participant": LABELS[0], "host": "CHL"}
    ]
    answer = review.model_validate({"placements": [{"participant": LABELS[1], "host": "DAC"}]})
    assert answer.comment == "" and answer.placements[0].host == "DAC"
