"""The immersion process as the catalogue sees it: its case kind and partner steps."""

from __future__ import annotations

from models.core.kinds import CaseKind, StepKind
from models.immersion.domain import CASE_KIND
from models.immersion.domain import STEP_KINDS as _STEPS

CASE_KINDS: tuple[CaseKind, ...] = (CASE_KIND,)
STEP_KINDS: tuple[StepKind, ...] = _STEPS
