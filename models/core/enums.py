"""Every status of the domain, with the transitions it allows.

A transition table maps each status to the statuses it may move to;
`models.core.status.change_status` is the only way to move; it refuses anything not in the table.
"""

from __future__ import annotations

from enum import StrEnum


class CaseType(StrEnum):
    SESSION = "session"
    SAISINE = "saisine"
    MEETING = "meeting"
    INSTALLATION = "installation"


class Role(StrEnum):
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"
    ADMIN = "admin"


class ActorKind(StrEnum):
    USER = "user"
    CONTACT = "contact"
    COORDINATOR_UI = "coordinator-ui"
    SYSTEM = "system"


class Channel(StrEnum):
    LINK = "link"
    PREFECT_UI = "prefect-ui"
    SERVICE = "service"
    API = "api"
    CLI = "cli"
    SYSTEM = "system"


class SessionStatus(StrEnum):
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


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    SELECTED = "selected"
    WAITLISTED = "waitlisted"
    OFFERED = "offered"
    NOT_SELECTED = "not_selected"
    WITHDRAWN = "withdrawn"
    COMPLETED = "completed"


class PlacementStatus(StrEnum):
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    SIGNED = "signed"
    DONE = "done"
    CANCELLED = "cancelled"


class AgreementStatus(StrEnum):
    PENDING = "pending"
    SIGNED = "signed"
    CANCELLED = "cancelled"


class SaisineStatus(StrEnum):
    RECEIVED = "received"
    URGENT_CLOSED = "urgent_closed"
    LEVEL1 = "level1"
    ORIENTED = "oriented"
    FOLLOW_UP = "follow_up"
    LEVEL2 = "level2"
    DECIDED = "decided"
    CLOSED = "closed"


class ConsultationStatus(StrEnum):
    ASKED = "asked"
    ANSWERED = "answered"
    ESCALATED = "escalated"
    CLOSED = "closed"


class MeetingStatus(StrEnum):
    PLANNED = "planned"
    HELD = "held"
    CANCELLED = "cancelled"


class ActionStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    DROPPED = "dropped"


S, A, P, G = SessionStatus, ApplicationStatus, PlacementStatus, AgreementStatus
V, C, M, X = SaisineStatus, ConsultationStatus, MeetingStatus, ActionStatus

TRANSITIONS: dict[type[StrEnum], dict[StrEnum, frozenset[StrEnum]]] = {
    SessionStatus: {
        S.DRAFT: frozenset({S.CALL_OPEN, S.CANCELLED}),
        S.CALL_OPEN: frozenset({S.SELECTION, S.CANCELLED}),
        S.SELECTION: frozenset({S.PLACEMENT, S.CANCELLED}),
        S.PLACEMENT: frozenset({S.AGREEMENTS, S.CANCELLED}),
        S.AGREEMENTS: frozenset({S.PREPARATION, S.CANCELLED}),
        S.PREPARATION: frozenset({S.IMMERSION, S.CANCELLED}),
        S.IMMERSION: frozenset({S.EVALUATION, S.CANCELLED}),
        S.EVALUATION: frozenset({S.RESTITUTION, S.CANCELLED}),
        S.RESTITUTION: frozenset({S.REPORT, S.CANCELLED}),
        S.REPORT: frozenset({S.CLOSED}),
        S.CLOSED: frozenset(),
        S.CANCELLED: frozenset(),
    },
    ApplicationStatus: {
        A.SUBMITTED: frozenset({A.SELECTED, A.WAITLISTED, A.NOT_SELECTED, A.WITHDRAWN}),
        A.SELECTED: frozenset({A.WITHDRAWN, A.COMPLETED}),
        A.WAITLISTED: frozenset({A.OFFERED, A.NOT_SELECTED, A.WITHDRAWN}),
        A.OFFERED: frozenset({A.SELECTED, A.WAITLISTED, A.NOT_SELECTED, A.WITHDRAWN}),
        A.NOT_SELECTED: frozenset(),
        A.WITHDRAWN: frozenset(),
        A.COMPLETED: frozenset(),
    },
    PlacementStatus: {
        P.PROPOSED: frozenset({P.CONFIRMED, P.CANCELLED}),
        P.CONFIRMED: frozenset({P.SIGNED, P.CANCELLED}),
        P.SIGNED: frozenset({P.DONE, P.CANCELLED}),
        P.DONE: frozenset(),
        P.CANCELLED: frozenset(),
    },
    AgreementStatus: {
        G.PENDING: frozenset({G.SIGNED, G.CANCELLED}),
        G.SIGNED: frozenset({G.CANCELLED}),
        G.CANCELLED: frozenset(),
    },
    SaisineStatus: {
        V.RECEIVED: frozenset({V.LEVEL1, V.URGENT_CLOSED}),
        V.URGENT_CLOSED: frozenset(),
        V.LEVEL1: frozenset({V.ORIENTED, V.LEVEL2, V.CLOSED}),
        V.ORIENTED: frozenset({V.FOLLOW_UP, V.CLOSED}),
        V.FOLLOW_UP: frozenset({V.CLOSED, V.LEVEL1, V.LEVEL2}),
        V.LEVEL2: frozenset({V.DECIDED, V.LEVEL1, V.CLOSED}),
        V.DECIDED: frozenset({V.CLOSED}),
        V.CLOSED: frozenset(),
    },
    ConsultationStatus: {
        C.ASKED: frozenset({C.ANSWERED, C.ESCALATED, C.CLOSED}),
        C.ESCALATED: frozenset({C.ANSWERED, C.CLOSED}),
        C.ANSWERED: frozenset({C.CLOSED}),
        C.CLOSED: frozenset(),
    },
    MeetingStatus: {
        M.PLANNED: frozenset({M.HELD, M.CANCELLED}),
        M.HELD: frozenset(),
        M.CANCELLED: frozenset(),
    },
    ActionStatus: {
        X.OPEN: frozenset({X.DONE, X.DROPPED}),
        X.DONE: frozenset(),
        X.DROPPED: frozenset(),
    },
}


def allowed(from_: StrEnum, to: StrEnum) -> bool:
    table = TRANSITIONS[type(from_)]
    return type(to) is type(from_) and to in table[from_]


STATUS_LABELS: dict[StrEnum, str] = {
    S.DRAFT: "brouillon",
    S.CALL_OPEN: "appel à candidatures ouvert",
    S.SELECTION: "sélection des candidatures",
    S.PLACEMENT: "attribution des structures d'accueil",
    S.AGREEMENTS: "signature des conventions",
    S.PREPARATION: "journée de préparation",
    S.IMMERSION: "immersions en cours",
    S.EVALUATION: "évaluations",
    S.RESTITUTION: "restitution",
    S.REPORT: "bilan",
    S.CLOSED: "clôturée",
    S.CANCELLED: "annulée",
    V.RECEIVED: "reçue",
    V.URGENT_CLOSED: "close (situation d'urgence)",
    V.LEVEL1: "niveau 1 : échanges bilatéraux",
    V.ORIENTED: "orientée",
    V.FOLLOW_UP: "suivi de l'orientation",
    V.LEVEL2: "niveau 2 : réunion de cellule",
    V.DECIDED: "décision prise",
    V.CLOSED: "close",
}
