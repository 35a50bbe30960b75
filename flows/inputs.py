"""Forms the coordinator fills in the Prefect UI (Resume dialog of a suspended run).

Every field has a default and a French title; the flow prefills them with
`with_initial_data` (through `flows.waits.ask`) and describes the decision in markdown.
"""

from __future__ import annotations

from copy import copy
from typing import Any, TypeVar

import pydantic
from prefect.input import RunInput
from pydantic import Field

F = TypeVar("F", bound=RunInput)


def prefilled(form: type[F], values: dict[str, Any]) -> type[F]:
    """The form with these values as defaults, keeping each field's French title.

    (`RunInput.with_initial_data` of Prefect 3.8.8 rebuilds prefilled fields from their
    annotation only, so the Resume dialog would show the English field names.)
    """
    fields: dict[str, Any] = {}
    for key, value in values.items():
        info = copy(form.model_fields[key])
        info.default = value
        fields[key] = (info.annotation, info)
    model: type[F] = pydantic.create_model(form.__name__, __base__=form, **fields)
    return model


class SelectionForm(RunInput):
    """Approve or edit the proposed selection of an immersion session."""

    kept: str = Field(
        default="",
        title="Candidatures retenues (numéros)",
        description="Numéros séparés par des virgules, par exemple : 1, 2, 5",
    )
    waitlist: str = Field(
        default="",
        title="Liste d'attente (numéros, dans l'ordre)",
        description="Le premier numéro sera le premier appelé en cas de désistement",
    )
    comment: str = Field(default="", title="Commentaire (facultatif)")


class AttendanceForm(RunInput):
    """Who came to a meeting of the session (preparation day, restitution)."""

    present: str = Field(
        default="",
        title="Participants présents (numéros de candidature)",
        description="Retirez les numéros des absents",
    )
    withdraw: str = Field(
        default="",
        title="Participants à retirer de la session (numéros)",
        description="Pour la journée de préparation seulement : retrait décidé par la "
        "coordination (le motif ci-dessous est enregistré)",
    )
    withdraw_reason: str = Field(default="", title="Motif du retrait")
