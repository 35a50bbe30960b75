"""The one place that lists the processes: their case kinds, partner steps and tables.

Plain imports and plain values, no registration by side effect: whoever needs to know
every process (the service, `tick`, migrations) imports this module.
"""

from __future__ import annotations

from sqlmodel import Session, SQLModel

from models.core import (  # noqa: F401  (every table of the core)
    access,
    audit,
    clock,
    directory,
    gateway,
    links,
    outbox,
    people,
    reminders,
    waits,
)
from models.core.enums import CaseType, Status
from models.core.kinds import CaseKind, CaseSummary, StepKind
from models.core.mails import GENERIC_MAILS, MailContext
from models.immersion import process as immersion
from models.saisine import process as saisine

metadata = SQLModel.metadata  # complete: every process's tables are imported above

CASE_KINDS: dict[CaseType, CaseKind] = {
    kind.case_type: kind for kind in (*immersion.CASE_KINDS, *saisine.CASE_KINDS)
}
STEP_KINDS: dict[str, StepKind] = {
    kind.name: kind for kind in (*immersion.STEP_KINDS, *saisine.STEP_KINDS)
}
STATUSES: tuple[type[Status], ...] = (*immersion.STATUSES, *saisine.STATUSES)
MAILS: dict[str, type[MailContext]] = {
    mail.template: mail
    for mail in (*GENERIC_MAILS, *directory.DIRECTORY_MAILS, *immersion.MAILS, *saisine.MAILS)
}
if len(STEP_KINDS) != len(immersion.STEP_KINDS) + len(saisine.STEP_KINDS):
    raise RuntimeError("two partner steps share a name")


def step_kind(name: str) -> StepKind:
    return STEP_KINDS[name]


def case_summary(session: Session, case_type: CaseType, case_id: int) -> CaseSummary | None:
    kind = CASE_KINDS.get(case_type)
    return kind.summary(session, case_id) if kind else None


def clsm_cases(session: Session, clsm_id: int) -> list[CaseSummary]:
    cases = [c for kind in CASE_KINDS.values() for c in kind.summaries(session, clsm_id)]
    return sorted(cases, key=lambda c: c.opened_at, reverse=True)
