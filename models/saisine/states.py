"""Statuses of a saisine and of its parts, their transitions and French labels."""

from __future__ import annotations

from models.core.enums import Status, Transitions


class SaisineStatus(Status):
    RECEIVED = "received"
    URGENT_CLOSED = "urgent_closed"
    LEVEL1 = "level1"
    ORIENTED = "oriented"
    FOLLOW_UP = "follow_up"
    LEVEL2 = "level2"
    DECIDED = "decided"
    CLOSED = "closed"

    @classmethod
    def transitions(cls) -> Transitions:
        return _TRANSITIONS[cls]


class ConsultationStatus(Status):
    ASKED = "asked"
    ANSWERED = "answered"
    ESCALATED = "escalated"
    CLOSED = "closed"

    @classmethod
    def transitions(cls) -> Transitions:
        return _TRANSITIONS[cls]


class MeetingStatus(Status):
    PLANNED = "planned"
    HELD = "held"
    CANCELLED = "cancelled"

    @classmethod
    def transitions(cls) -> Transitions:
        return _TRANSITIONS[cls]


class ActionStatus(Status):
    OPEN = "open"
    DONE = "done"
    DROPPED = "dropped"

    @classmethod
    def transitions(cls) -> Transitions:
        return _TRANSITIONS[cls]


_TRANSITIONS: dict[type[Status], Transitions] = {
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
            {ConsultationStatus.ANSWERED, ConsultationStatus.ESCALATED, ConsultationStatus.CLOSED}
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
