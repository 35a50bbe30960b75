"""The coordinator's immersion forms as the Prefect UI reads them (their JSON schema)."""

from __future__ import annotations

from flows.inputs.immersion import (
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
