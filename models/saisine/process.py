"""The saisine process as the catalogue sees it: its case kinds and partner steps."""

from __future__ import annotations

from models.core.enums import Status
from models.core.kinds import CaseKind, StepKind
from models.saisine.states import ActionStatus, ConsultationStatus, MeetingStatus, SaisineStatus
from models.saisine.steps import MEETING_KIND, SAISINE_KIND
from models.saisine.steps import STEP_KINDS as _STEPS

CASE_KINDS: tuple[CaseKind, ...] = (SAISINE_KIND, MEETING_KIND)
STEP_KINDS: tuple[StepKind, ...] = _STEPS
STATUSES: tuple[type[Status], ...] = (
    SaisineStatus,
    ConsultationStatus,
    MeetingStatus,
    ActionStatus,
)
