"""Statuses of a saisine and of its parts, their transitions; the names of its partner steps
and of its waits; their French labels."""

from __future__ import annotations

import re
from enum import StrEnum

from models.core.enums import Status, set_transitions


class SaisineStatus(Status):
    RECEIVED = "received"
    URGENT_CLOSED = "urgent_closed"
    LEVEL1 = "level1"
    ORIENTED = "oriented"
    FOLLOW_UP = "follow_up"
    LEVEL2 = "level2"
    DECIDED = "decided"
    CLOSED = "closed"


class ConsultationStatus(Status):
    ASKED = "asked"
    ANSWERED = "answered"
    ESCALATED = "escalated"
    CLOSED = "closed"


class MeetingStatus(Status):
    PLANNED = "planned"
    HELD = "held"
    CANCELLED = "cancelled"


class ActionStatus(Status):
    OPEN = "open"
    DONE = "done"
    DROPPED = "dropped"


set_transitions(
    {
        SaisineStatus: {
            SaisineStatus.RECEIVED: frozenset({SaisineStatus.LEVEL1, SaisineStatus.URGENT_CLOSED}),
            SaisineStatus.URGENT_CLOSED: frozenset(),
            SaisineStatus.LEVEL1: frozenset(
                {SaisineStatus.ORIENTED, SaisineStatus.LEVEL2, SaisineStatus.CLOSED}
            ),
            SaisineStatus.ORIENTED: frozenset({SaisineStatus.FOLLOW_UP, SaisineStatus.CLOSED}),
            SaisineStatus.FOLLOW_UP: frozenset(
                {SaisineStatus.CLOSED, SaisineStatus.LEVEL1, SaisineStatus.LEVEL2}
            ),
            SaisineStatus.LEVEL2: frozenset(
                {SaisineStatus.DECIDED, SaisineStatus.LEVEL1, SaisineStatus.CLOSED}
            ),
            SaisineStatus.DECIDED: frozenset({SaisineStatus.CLOSED}),
            SaisineStatus.CLOSED: frozenset(),
        },
        ConsultationStatus: {
            ConsultationStatus.ASKED: frozenset(
                {
                    ConsultationStatus.ANSWERED,
                    ConsultationStatus.ESCALATED,
                    ConsultationStatus.CLOSED,
                }
            ),
            ConsultationStatus.ESCALATED: frozenset(
                {ConsultationStatus.ANSWERED, ConsultationStatus.CLOSED}
            ),
            ConsultationStatus.ANSWERED: frozenset({ConsultationStatus.CLOSED}),
            ConsultationStatus.CLOSED: frozenset(),
        },
        MeetingStatus: {
            MeetingStatus.PLANNED: frozenset({MeetingStatus.HELD, MeetingStatus.CANCELLED}),
            MeetingStatus.HELD: frozenset(),
            MeetingStatus.CANCELLED: frozenset(),
        },
        ActionStatus: {
            ActionStatus.OPEN: frozenset({ActionStatus.DONE, ActionStatus.DROPPED}),
            ActionStatus.DONE: frozenset(),
            ActionStatus.DROPPED: frozenset(),
        },
    }
)

STATUS_LABELS: dict[Status, str] = {
    SaisineStatus.RECEIVED: "reçue",
    SaisineStatus.URGENT_CLOSED: "close (situation d'urgence)",
    SaisineStatus.LEVEL1: "niveau 1 : échanges bilatéraux",
    SaisineStatus.ORIENTED: "orientée",
    SaisineStatus.FOLLOW_UP: "suivi de l'orientation",
    SaisineStatus.LEVEL2: "niveau 2 : réunion de cellule",
    SaisineStatus.DECIDED: "décision prise",
    SaisineStatus.CLOSED: "close",
}

CONSULTATION_LABELS: dict[Status, str] = {
    ConsultationStatus.ASKED: "demandée",
    ConsultationStatus.ANSWERED: "répondue",
    ConsultationStatus.ESCALATED: "sans réponse à l'échéance",
    ConsultationStatus.CLOSED: "close",
}

ACTION_LABELS: dict[Status, str] = {
    ActionStatus.OPEN: "en cours",
    ActionStatus.DONE: "réalisée",
    ActionStatus.DROPPED: "abandonnée",
}

MEETING_LABELS: dict[Status, str] = {
    MeetingStatus.PLANNED: "prévue",
    MeetingStatus.HELD: "tenue",
    MeetingStatus.CANCELLED: "annulée",
}


class Step(StrEnum):
    """Steps partners answer by link (the `step` of their links)."""

    CONSULTATION = "saisine-consultation"
    FOLLOW_UP = "saisine-follow-up"
    ATTENDANCE = "saisine-attendance"
    ACTION = "saisine-action"
    OUTCOME = "saisine-outcome"


class WaitName(StrEnum):
    """What a saisine's run waits for. The wait's step is the name with its numbers
    (`wait_step`): the level 1 round, the meeting; a coordinator form gets the prefix
    of `flows.waits.ask` in front of it."""

    DESCRIPTION = "description"  # the coordinator types it on a page of the service
    PARTNERS = "partners"  # coordinator form: partners to consult
    ANSWERS_REMINDER = "answers-r{round}-reminder"
    ANSWERS = "answers-r{round}"
    ORIENTATION = "orientation"  # coordinator form
    FOLLOW_UP_DATE = "followup-r{round}-date"
    FOLLOW_UP = "followup-r{round}"
    MEETING = "meeting"  # coordinator form: plan the meeting
    MEETING_DAY = "meeting-{meeting}-day"
    DECISION = "decision-m{meeting}"  # coordinator form
    ACTIONS = "actions"


WAIT_LABELS: dict[WaitName, str] = {
    WaitName.DESCRIPTION: "description de la situation à saisir (page du service)",
    WaitName.PARTNERS: "choix des partenaires à consulter (formulaire Prefect)",
    WaitName.ANSWERS_REMINDER: "réponses des partenaires consultés",
    WaitName.ANSWERS: "réponses des partenaires consultés",
    WaitName.ORIENTATION: "orientation (formulaire Prefect)",
    WaitName.FOLLOW_UP_DATE: "suivi de l'orientation",
    WaitName.FOLLOW_UP: "suivi de l'orientation",
    WaitName.MEETING: "réunion de cellule à organiser (formulaire Prefect)",
    WaitName.MEETING_DAY: "réunion de cellule",
    WaitName.DECISION: "décision de la réunion (formulaire Prefect)",
    WaitName.ACTIONS: "actions décidées en cours",
}


WAITING_ON: dict[WaitName, str] = {
    WaitName.DESCRIPTION: "la coordination (description à saisir dans le service)",
    WaitName.ANSWERS_REMINDER: "les partenaires consultés",
    WaitName.ANSWERS: "les partenaires consultés",
    WaitName.FOLLOW_UP_DATE: "la date du suivi",
    WaitName.FOLLOW_UP: "la personne qui a saisi la cellule",
    WaitName.MEETING_DAY: "la date de la réunion de cellule",
    WaitName.ACTIONS: "les responsables des actions",
}
"""Who or what a wait that is not a coordinator form waits on (shown in the service)."""


def wait_step(name: WaitName, *, round_: int = 0, meeting_id: int | None = None) -> str:
    """The step of a wait: its name with the round or the meeting it is about."""
    return name.value.format(round=round_, meeting=meeting_id)


_COORDINATOR_FORM = re.compile(r"^ask-\d+-")
_N = 987654321  # stands for any number in the patterns of the steps
_PATTERNS = [
    (
        name,
        re.compile(re.escape(wait_step(name, round_=_N, meeting_id=_N)).replace(str(_N), r"\d+")),
    )
    for name in WaitName
]


def wait_name(step: str) -> WaitName | None:
    """The name of a wait step written by `wait_step` (coordinator forms included)."""
    bare = _COORDINATOR_FORM.sub("", step)
    return next((name for name, pattern in _PATTERNS if pattern.fullmatch(bare)), None)


def wait_label(step: str) -> str | None:
    """French label of a saisine wait step, or None if it is not one of the saisine's."""
    name = wait_name(step)
    return WAIT_LABELS[name] if name is not None else None
