"""Names of an immersion session: statuses and transitions, partner steps, the waits of its
flow run, and the French labels people read for each of them."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from models.core.enums import Status, set_transitions


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


class ApplicationStatus(Status):
    SUBMITTED = "submitted"
    SELECTED = "selected"
    WAITLISTED = "waitlisted"
    OFFERED = "offered"
    NOT_SELECTED = "not_selected"
    WITHDRAWN = "withdrawn"
    COMPLETED = "completed"
    PURGED = "purged"  # flagged as abusive and erased by a coordinator before the selection


class PlacementStatus(Status):
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    SIGNED = "signed"
    DONE = "done"
    CANCELLED = "cancelled"


class AgreementStatus(Status):
    PENDING = "pending"
    SIGNED = "signed"
    CANCELLED = "cancelled"


set_transitions(
    {
        SessionStatus: {
            SessionStatus.DRAFT: frozenset({SessionStatus.CALL_OPEN, SessionStatus.CANCELLED}),
            SessionStatus.CALL_OPEN: frozenset({SessionStatus.SELECTION, SessionStatus.CANCELLED}),
            SessionStatus.SELECTION: frozenset({SessionStatus.PLACEMENT, SessionStatus.CANCELLED}),
            SessionStatus.PLACEMENT: frozenset({SessionStatus.AGREEMENTS, SessionStatus.CANCELLED}),
            SessionStatus.AGREEMENTS: frozenset(
                {SessionStatus.PREPARATION, SessionStatus.CANCELLED}
            ),
            SessionStatus.PREPARATION: frozenset(
                {SessionStatus.IMMERSION, SessionStatus.CANCELLED}
            ),
            SessionStatus.IMMERSION: frozenset({SessionStatus.EVALUATION, SessionStatus.CANCELLED}),
            SessionStatus.EVALUATION: frozenset(
                {SessionStatus.RESTITUTION, SessionStatus.CANCELLED}
            ),
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
                    ApplicationStatus.PURGED,
                }
            ),
            ApplicationStatus.SELECTED: frozenset(
                {ApplicationStatus.WITHDRAWN, ApplicationStatus.COMPLETED}
            ),
            ApplicationStatus.WAITLISTED: frozenset(
                {
                    ApplicationStatus.OFFERED,
                    ApplicationStatus.NOT_SELECTED,
                    ApplicationStatus.WITHDRAWN,
                }
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
            ApplicationStatus.PURGED: frozenset(),
        },
        PlacementStatus: {
            PlacementStatus.PROPOSED: frozenset(
                {PlacementStatus.CONFIRMED, PlacementStatus.CANCELLED}
            ),
            PlacementStatus.CONFIRMED: frozenset(
                {PlacementStatus.SIGNED, PlacementStatus.CANCELLED}
            ),
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
)

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

APPLICATION_LABELS: dict[ApplicationStatus, str] = {
    ApplicationStatus.SUBMITTED: "candidature reçue",
    ApplicationStatus.SELECTED: "retenu",
    ApplicationStatus.WAITLISTED: "liste d'attente",
    ApplicationStatus.OFFERED: "place proposée",
    ApplicationStatus.NOT_SELECTED: "non retenu",
    ApplicationStatus.WITHDRAWN: "retiré",
    ApplicationStatus.COMPLETED: "immersion réalisée",
    ApplicationStatus.PURGED: "effacée (abus)",
}


class Step(StrEnum):
    """The steps partners answer by link (the name of the link's step)."""

    APPLY = "immersion-apply"
    CHANGE = "immersion-application"
    OFFER = "immersion-offer"
    HOST = "immersion-host"
    SIGN = "immersion-sign"
    GRID = "immersion-evaluation"
    HOST_EVALUATION = "immersion-host-evaluation"


class WaitName(StrEnum):
    """What the session's flow run waits for (the step of its `Wait` rows)."""

    CALL_REMINDER = "call-reminder"
    CALL_CLOSE = "call-close"
    SELECTION = "selection"
    PLACEMENT_REVIEW = "placement-review"
    PARTNERS = "partners"
    PREPARATION_DAY = "preparation-day"
    PREPARATION_ATTENDANCE = "preparation-attendance"
    IMMERSION = "immersion"
    EVALUATIONS = "evaluations"
    RESTITUTION_DAY = "restitution-day"
    RESTITUTION_ATTENDANCE = "restitution-attendance"


WAIT_LABELS: dict[WaitName, str] = {
    WaitName.CALL_REMINDER: "rappel avant la clôture de l'appel",
    WaitName.CALL_CLOSE: "candidatures (clôture de l'appel)",
    WaitName.SELECTION: "la coordination (validation de la sélection)",
    WaitName.PLACEMENT_REVIEW: "la coordination (vérification des accueils proposés)",
    WaitName.PARTNERS: "structures d'accueil, signataires des conventions, liste d'attente",
    WaitName.PREPARATION_DAY: "journée de préparation",
    WaitName.PREPARATION_ATTENDANCE: "la coordination (présences : journée de préparation)",
    WaitName.IMMERSION: "immersions en cours",
    WaitName.EVALUATIONS: "grilles d'observation et évaluations",
    WaitName.RESTITUTION_DAY: "restitution",
    WaitName.RESTITUTION_ATTENDANCE: "la coordination (présences : restitution)",
}
"""What a person reads while the run waits (its `waiting_on`)."""


def wait_label(step: str) -> str | None:
    """French label of a session wait step, or None if it is not one of the session's."""
    try:
        return WAIT_LABELS[WaitName(step)]
    except ValueError:
        return None


PHASE_WAITS: dict[SessionStatus, frozenset[WaitName]] = {
    SessionStatus.CALL_OPEN: frozenset({WaitName.CALL_REMINDER, WaitName.CALL_CLOSE}),
    SessionStatus.SELECTION: frozenset({WaitName.SELECTION}),
    SessionStatus.PLACEMENT: frozenset({WaitName.PLACEMENT_REVIEW, WaitName.PARTNERS}),
    SessionStatus.AGREEMENTS: frozenset({WaitName.PARTNERS}),
    SessionStatus.PREPARATION: frozenset(
        {WaitName.PREPARATION_DAY, WaitName.PREPARATION_ATTENDANCE}
    ),
    SessionStatus.IMMERSION: frozenset({WaitName.IMMERSION}),
    SessionStatus.EVALUATION: frozenset({WaitName.EVALUATIONS}),
    SessionStatus.RESTITUTION: frozenset(
        {WaitName.RESTITUTION_DAY, WaitName.RESTITUTION_ATTENDANCE}
    ),
}
"""The waits each status may be in; the others are left over from phases already done."""

Meeting = Literal["preparation", "restitution"]
MEETING_LABELS: dict[Meeting, str] = {
    "preparation": "journée de préparation",
    "restitution": "restitution",
}
ATTENDANCE_WAITS: dict[Meeting, WaitName] = {
    "preparation": WaitName.PREPARATION_ATTENDANCE,
    "restitution": WaitName.RESTITUTION_ATTENDANCE,
}

Party = Literal["participant", "manager", "tutor"]
PARTIES: tuple[Party, ...] = ("participant", "manager", "tutor")
PARTY_LABELS: dict[Party, str] = {
    "participant": "stagiaire",
    "manager": "responsable de la structure d'origine",
    "tutor": "tuteur ou tutrice de la structure d'accueil",
}
"""A signatory's role, as it reads after "en tant que" or "signature du ou de la"."""

ACTION_LABELS: dict[str, str] = {
    "session.created": "session créée",
    "session.run-attached": "processus Prefect rattaché",
    "call.closed-early": "appel à candidatures clos avant la date",
    "application.submitted": "candidature déposée",
    "application.changed": "candidature modifiée",
    "application.flagged": "candidature signalée comme abusive",
    "application.purged": "candidature abusive effacée",
    "place.left-empty": "place laissée vacante",
    "placements.reviewed": "accueils vérifiés par la coordination",
    "placement.proposed": "accueil proposé",
    "placement.unassigned": "accueil retiré",
    "agreement.created": "convention préparée",
    "agreement.signed": "convention signée",
    "attendance.preparation": "présences à la journée de préparation",
    "attendance.restitution": "présences à la restitution",
    "evaluation.participant": "évaluation du ou de la stagiaire",
    "evaluation.host": "évaluation de la structure d'accueil",
    "meeting.moved": "réunion déplacée",
    "report.created": "bilan établi",
}
"""French labels of the audit actions of a session (beyond the generic ones)."""
