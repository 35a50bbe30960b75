"""Forms the coordinator fills in the Prefect UI (Resume dialog of a suspended run).

Every field has a default and a French title; `flows.waits.ask` prefills them (keeping the
titles) and shows the decision's markdown description above the form.
"""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import Field


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
