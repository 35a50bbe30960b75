"""Statuses of an immersion session and of its parts, their transitions and French labels."""

from __future__ import annotations

from models.core.enums import Status, Transitions


class SessionStatus(Status):
    DRAFT = "draft"
    CALL_OPEN = "call_open"
    SELECTION = "selection"
    PLACEMENT = "placement"
    AGREEMENTS = "agreements"
    PREPARATION = "preparation"
    IMMERSION = "immersion"
    EVALUATION = "evaluation"
    RESTITUTION = "restitution"
    REPORT = "report"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @classmethod
    def transitions(cls) -> Transitions:
        return _TRANSITIONS[cls]


class ApplicationStatus(Status):
    SUBMITTED = "submitted"
    SELECTED = "selected"
    WAITLISTED = "waitlisted"
    OFFERED = "offered"
    NOT_SELECTED = "not_selected"
    WITHDRAWN = "withdrawn"
    COMPLETED = "completed"

    @classmethod
    def transitions(cls) -> Transitions:
        return _TRANSITIONS[cls]


class PlacementStatus(Status):
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    SIGNED = "signed"
    DONE = "done"
    CANCELLED = "cancelled"

    @classmethod
    def transitions(cls) -> Transitions:
        return _TRANSITIONS[cls]


class AgreementStatus(Status):
    PENDING = "pending"
    SIGNED = "signed"
    CANCELLED = "cancelled"

    @classmethod
    def transitions(cls) -> Transitions:
        return _TRANSITIONS[cls]


_TRANSITIONS: dict[type[Status], Transitions] = {
    SessionStatus: {
        SessionStatus.DRAFT: frozenset({SessionStatus.CALL_OPEN, SessionStatus.CANCELLED}),
        SessionStatus.CALL_OPEN: frozenset({SessionStatus.SELECTION, SessionStatus.CANCELLED}),
        SessionStatus.SELECTION: frozenset({SessionStatus.PLACEMENT, SessionStatus.CANCELLED}),
        SessionStatus.PLACEMENT: frozenset({SessionStatus.AGREEMENTS, SessionStatus.CANCELLED}),
        SessionStatus.AGREEMENTS: frozenset({SessionStatus.PREPARATION, SessionStatus.CANCELLED}),
        SessionStatus.PREPARATION: frozenset({SessionStatus.IMMERSION, SessionStatus.CANCELLED}),
        SessionStatus.IMMERSION: frozenset({SessionStatus.EVALUATION, SessionStatus.CANCELLED}),
        SessionStatus.EVALUATION: frozenset({SessionStatus.RESTITUTION, SessionStatus.CANCELLED}),
        SessionStatus.RESTITUTION: frozenset({SessionStatus.REPORT, SessionStatus.CANCELLED}),
        SessionStatus.REPORT: frozenset({SessionStatus.CLOSED}),
        SessionStatus.CLOSED: frozenset(),
        SessionStatus.CANCELLED: frozenset(),
    },
    ApplicationStatus: {
        ApplicationStatus.SUBMITTED: frozenset(
            {
                ApplicationStatus.SELECTED,
                ApplicationStatus.WAITLISTED,
                ApplicationStatus.NOT_SELECTED,
                ApplicationStatus.WITHDRAWN,
            }
        ),
        ApplicationStatus.SELECTED: frozenset(
            {ApplicationStatus.WITHDRAWN, ApplicationStatus.COMPLETED}
        ),
        ApplicationStatus.WAITLISTED: frozenset(
            {ApplicationStatus.OFFERED, ApplicationStatus.NOT_SELECTED, ApplicationStatus.WITHDRAWN}
        ),
        ApplicationStatus.OFFERED: frozenset(
            {
                ApplicationStatus.SELECTED,
                ApplicationStatus.WAITLISTED,
                ApplicationStatus.NOT_SELECTED,
                ApplicationStatus.WITHDRAWN,
            }
        ),
        ApplicationStatus.NOT_SELECTED: frozenset(),
        ApplicationStatus.WITHDRAWN: frozenset(),
        ApplicationStatus.COMPLETED: frozenset(),
    },
    PlacementStatus: {
        PlacementStatus.PROPOSED: frozenset({PlacementStatus.CONFIRMED, PlacementStatus.CANCELLED}),
        PlacementStatus.CONFIRMED: frozenset({PlacementStatus.SIGNED, PlacementStatus.CANCELLED}),
        PlacementStatus.SIGNED: frozenset({PlacementStatus.DONE, PlacementStatus.CANCELLED}),
        PlacementStatus.DONE: frozenset(),
        PlacementStatus.CANCELLED: frozenset(),
    },
    AgreementStatus: {
        AgreementStatus.PENDING: frozenset({AgreementStatus.SIGNED, AgreementStatus.CANCELLED}),
        AgreementStatus.SIGNED: frozenset({AgreementStatus.CANCELLED}),
        AgreementStatus.CANCELLED: frozenset(),
    },
}

STATUS_LABELS: dict[Status, str] = {
    SessionStatus.DRAFT: "brouillon",
    SessionStatus.CALL_OPEN: "appel à candidatures ouvert",
    SessionStatus.SELECTION: "sélection des candidatures",
    SessionStatus.PLACEMENT: "attribution des structures d'accueil",
    SessionStatus.AGREEMENTS: "signature des conventions",
    SessionStatus.PREPARATION: "journée de préparation",
    SessionStatus.IMMERSION: "immersions en cours",
    SessionStatus.EVALUATION: "évaluations",
    SessionStatus.RESTITUTION: "restitution",
    SessionStatus.REPORT: "bilan",
    SessionStatus.CLOSED: "clôturée",
    SessionStatus.CANCELLED: "annulée",
}
