"""The saisine process as the catalogue sees it: its case kinds, partner steps, mails,
statuses, and the French label of each wait of its runs."""

from __future__ import annotations

from models.core.enums import Status
from models.core.kinds import CaseKind, StepKind
from models.core.mails import MailContext
from models.saisine import decisions, follow_up, intake, level1, meetings, outcome
from models.saisine.common import CoordinatorAlertMail, OutcomeMail
from models.saisine.states import (
    ActionStatus,
    ConsultationStatus,
    MeetingStatus,
    SaisineStatus,
    wait_label,
)
from models.saisine.summary import MEETING_KIND, SAISINE_KIND

CASE_KINDS: tuple[CaseKind, ...] = (SAISINE_KIND, MEETING_KIND)
STEP_KINDS: tuple[StepKind, ...] = (
    level1.CONSULTATION_STEP,
    follow_up.FOLLOW_UP_STEP,
    meetings.ATTENDANCE_STEP,
    decisions.ACTION_STEP,
    outcome.OUTCOME_STEP,
)
MAILS: tuple[type[MailContext], ...] = (
    intake.UrgentMail,
    *level1.MAILS,
    *follow_up.MAILS,
    *meetings.MAILS,
    *decisions.MAILS,
    CoordinatorAlertMail,
    OutcomeMail,
)
STATUSES: tuple[type[Status], ...] = (
    SaisineStatus,
    ConsultationStatus,
    MeetingStatus,
    ActionStatus,
)

__all__ = ["CASE_KINDS", "MAILS", "STATUSES", "STEP_KINDS", "wait_label"]
