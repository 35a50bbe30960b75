"""What a process tells the generic machinery about itself: types only, no registry.

A process package builds values of these types (its case kinds, its partner steps); the
one list of them is `models.catalogue`, made of plain imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from models.core.audit import Actor
from models.core.enums import CaseType
from models.core.links import StepLink


@dataclass(frozen=True)
class CaseScope:
    """One case as the generic machinery sees it: what mails and links are filed under."""

    case_type: CaseType
    case_id: int
    clsm_id: int
    label: str  # French, e.g. "Session « Immersions 2022-2 »", "Saisine 2022-05"


@dataclass(frozen=True)
class CaseSummary:
    case_type: CaseType
    case_id: int
    reference: str  # e.g. "Session « Immersions 2022-2 »", "Saisine 2022-05"
    status: str  # French label
    clsm_id: int
    opened_at: datetime
    flow_run_id: str | None = None
    version: int | None = None  # optimistic locking of coordinator edits, where the case has it

    @property
    def scope(self) -> CaseScope:
        return CaseScope(self.case_type, self.case_id, self.clsm_id, self.reference)


@dataclass(frozen=True)
class CaseKind:
    case_type: CaseType
    label: str  # French, e.g. "session d'immersion"
    summaries: Callable[[Session, int], list[CaseSummary]]
    """All cases of one CLSM."""
    summary: Callable[[Session, int], CaseSummary | None]
    """One case by id, or None."""
    wait_label: Callable[[str], str | None] = lambda _step: None
    """What a wait step of this kind of case means, in French (None: not one of its own)."""
    mail_with: Callable[[Session, int], list[tuple[CaseType, int]]] = lambda _s, _id: []
    """Other cases whose mail one of this case's runs queues, hence sends with its own (a
    saisine's cell meetings: their convocations are filed under the meeting)."""


@dataclass(frozen=True)
class StepPage:
    """What the page of a step shows above its form (French)."""

    title: str
    case_label: str
    paragraphs: list[str] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)  # label, value
    closed: str = ""
    """Why nothing can be answered here any more (French): the page shows it, not the form."""


@dataclass(frozen=True)
class StepKind:
    """A step partners answer by link: its form, its page, how its answer is recorded.

    The service resolves the link, renders the form, validates, calls `record` in the same
    transaction as consuming the link, then wakes the waiting flow run (`wait_step`).
    """

    name: str
    form: type[BaseModel]
    page: Callable[[Session, StepLink], StepPage]
    record: Callable[[Session, StepLink, Any, Actor], str]
    """Record the validated answer; returns the French confirmation shown to the person."""
    wait_step: Callable[[Session, StepLink], str | None] = lambda _s, _l: None
    initial: Callable[[Session, StepLink], dict[str, Any]] = lambda _s, _l: {}
    submit_label: str = "Envoyer"
    open_call: bool = False
    """Anyone holding the link may answer, as someone not known yet (a call for
    applications): the service limits such answers per link and per address."""
    after_sending: str = ""
    """What happens once the form is sent (French); the service says it generically if empty."""
    form_of: Callable[[Session, StepLink], type[BaseModel]] | None = None
    """The form for this link now, when it depends on the case (a participant may only
    withdraw once the call is closed); `form` otherwise."""

    def form_for(self, session: Session, link: StepLink) -> type[BaseModel]:
        return self.form_of(session, link) if self.form_of is not None else self.form
