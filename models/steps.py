"""Registry of the steps partners answer by link.

A domain module (immersion, saisine) declares each step it mails: the pydantic form the
service renders, what the page shows, and the data function that records the answer (and
its audit event). The service stays generic: it resolves the link, renders the form,
validates, calls `record` in the same transaction as consuming the link, then wakes the
waiting flow run (the wait named `wait_step` on the link's case).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from models.audit import Actor
from models.links import StepLink


@dataclass(frozen=True)
class StepPage:
    """What the page of a step shows above its form (French)."""

    title: str
    case_label: str
    paragraphs: list[str] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)  # label, value


@dataclass(frozen=True)
class StepKind:
    name: str
    form: type[BaseModel]
    page: Callable[[Session, StepLink], StepPage]
    record: Callable[[Session, StepLink, Any, Actor], str]
    """Record the validated answer; returns the French confirmation shown to the person."""
    wait_step: Callable[[Session, StepLink], str | None] = lambda _s, _l: None
    initial: Callable[[Session, StepLink], dict[str, Any]] = lambda _s, _l: {}
    submit_label: str = "Envoyer"
    after_sending: str = ""
    """What happens once the form is sent (French); the service says it generically if empty."""


STEP_KINDS: dict[str, StepKind] = {}


def register(kind: StepKind) -> StepKind:
    if kind.name in STEP_KINDS and STEP_KINDS[kind.name] is not kind:
        raise ValueError(f"step {kind.name!r} registered twice")
    STEP_KINDS[kind.name] = kind
    return kind


def step_kind(name: str) -> StepKind:
    import models.tables  # noqa: F401  (domain modules register their steps on import)

    return STEP_KINDS[name]
