"""The immersion process as the catalogue sees it: its case kind and partner steps."""

from __future__ import annotations

from models.core.enums import Status
from models.core.kinds import CaseKind, StepKind
from models.immersion.domain import CASE_KIND
from models.immersion.domain import STEP_KINDS as _STEPS
from models.immersion.states import (
    AgreementStatus,
    ApplicationStatus,
    PlacementStatus,
    SessionStatus,
)

CASE_KINDS: tuple[CaseKind, ...] = (CASE_KIND,)
STEP_KINDS: tuple[StepKind, ...] = _STEPS
STATUSES: tuple[type[Status], ...] = (
    SessionStatus,
    ApplicationStatus,
    PlacementStatus,
    AgreementStatus,
)
