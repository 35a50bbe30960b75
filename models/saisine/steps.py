"""The saisine's steps answered by link, and its case kind, registered for the service.

Pages show the pseudonymised description to the consulted partner only (never in mails);
each `record` stores the answer with its audit event; `wait_step` names the wait of the
flow run to resume.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from models.core.audit import Actor
from models.core.enums import CaseType
from models.core.errors import NotFound
from models.core.kinds import CaseKind, CaseSummary, StepKind, StepPage
from models.core.links import StepLink
from models.core.people import Organisation
from models.core.settings import get_settings
from models.core.waits import WaitStatus, find_wait
from models.saisine.domain import (
    STEP_ACTION,
    STEP_ATTENDANCE,
    STEP_CONSULTATION,
    STEP_FOLLOW_UP,
    STEP_OUTCOME,
    CellMeeting,
    Consultation,
    DecisionAction,
    FollowUp,
    MeetingMember,
    Saisine,
    actions_of,
    close_action,
    decision_of,
    get_saisine,
    meeting_items,
    meeting_label,
    orientations,
    record_attendance,
    record_consultation_answer,
    record_follow_up_answer,
)
from models.saisine.states import STATUS_LABELS, MeetingStatus

YesNo = Literal["oui", "non"]
T = TypeVar("T", Consultation, FollowUp, MeetingMember, DecisionAction)


class ConsultationAnswer(BaseModel):
    knows_situation: YesNo = Field(default="non", title="Connaissez-vous cette situation ?")
    proposal: str = Field(
        default="",
        max_length=2000,
        title="Ce que votre structure peut proposer",
        description="Accompagnement, contact, rendez-vous, informations utiles…",
    )


class FollowUpAnswer(BaseModel):
    worked: YesNo = Field(default="oui", title="L'orientation proposée a-t-elle fonctionné ?")
    next_step: Literal["", "level1", "level2"] = Field(
        default="",
        title="Si non, quelle suite souhaitez-vous ?",
        description="level1 : reprendre les échanges avec les partenaires ; "
        "level2 : examen en réunion de cellule",
    )
    comment: str = Field(default="", max_length=2000, title="Commentaire")


class AttendanceAnswer(BaseModel):
    attending: YesNo = Field(default="oui", title="Serez-vous présent(e) à la réunion ?")


class ActionClosure(BaseModel):
    note: str = Field(default="", max_length=2000, title="Ce qui a été fait")


class Acknowledgement(BaseModel):
    comment: str = Field(default="", max_length=2000, title="Remarque (facultative)")


def _saisine(session: Session, link: StepLink) -> Saisine:
    return get_saisine(session, link.case_id)


def _description(saisine: Saisine) -> list[tuple[str, str]]:
    if saisine.purged_at is not None:
        return [("Description", "effacée (fin de la durée de conservation)")]
    return [
        ("Initiales", saisine.initials or "—"),
        ("Tranche d'âge", saisine.age_range or "—"),
        ("Commune", saisine.commune or "—"),
        ("Difficulté rencontrée", saisine.difficulty or "—"),
        (
            "Consentement de la personne",
            "recueilli" if saisine.consent_given else f"non recueilli : {saisine.consent_note}",
        ),
    ]


def _subject(session: Session, model: type[T], link: StepLink) -> T:
    row = session.get(model, link.subject_id) if link.subject_id is not None else None
    if row is None:
        raise NotFound("Cette demande n'existe plus.")
    return row


def _open_wait_step(session: Session, saisine: Saisine, *steps: str) -> str | None:
    assert saisine.id is not None
    for step in steps:
        wait = find_wait(session=session, case_type=CaseType.SAISINE, case_id=saisine.id, step=step)
        if wait is not None and wait.status is WaitStatus.OPEN:
            return step
    return None


# -- consultation (level 1) ---------------------------------------------------------------------
def answers_wait_steps(round_: int) -> tuple[str, str]:
    return f"answers-r{round_}-reminder", f"answers-r{round_}"


def _consultation_page(session: Session, link: StepLink) -> StepPage:
    saisine = _saisine(session, link)
    return StepPage(
        title="Consultation de la cellule de concertation",
        case_label=saisine.label,
        paragraphs=[
            "La coordination du CLSM sollicite votre structure sur une situation psychosociale "
            "complexe. Ces informations sont confidentielles et réservées à votre structure.",
        ],
        details=_description(saisine),
    )


def _consultation_record(
    session: Session, link: StepLink, answer: ConsultationAnswer, actor: Actor
) -> str:
    consultation = _subject(session, Consultation, link)
    record_consultation_answer(
        session=session,
        consultation=consultation,
        knows_situation=answer.knows_situation == "oui",
        proposal=answer.proposal,
        actor=actor,
    )
    return "Merci, votre réponse a été transmise à la coordination de la cellule."


def _consultation_wait(session: Session, link: StepLink) -> str | None:
    consultation = _subject(session, Consultation, link)
    return _open_wait_step(
        session, _saisine(session, link), *answers_wait_steps(consultation.round)
    )


# -- follow-up by the referrer ------------------------------------------------------------------
def follow_up_wait_step(round_: int) -> str:
    return f"followup-r{round_}"


def _follow_up_page(session: Session, link: StepLink) -> StepPage:
    saisine = _saisine(session, link)
    last = orientations(session, saisine)
    return StepPage(
        title="Suivi de l'orientation proposée",
        case_label=saisine.label,
        paragraphs=["Dites-nous si l'orientation proposée par la cellule a fonctionné."],
        details=[("Orientation", last[-1].text)] if last else [],
    )


def _follow_up_record(
    session: Session, link: StepLink, answer: FollowUpAnswer, actor: Actor
) -> str:
    follow_up = _subject(session, FollowUp, link)
    record_follow_up_answer(
        session=session,
        follow_up=follow_up,
        worked=answer.worked == "oui",
        next_step=answer.next_step,
        comment=answer.comment,
        actor=actor,
    )
    return "Merci, la coordination de la cellule a bien reçu votre réponse."


def _follow_up_wait(session: Session, link: StepLink) -> str | None:
    follow_up = _subject(session, FollowUp, link)
    return _open_wait_step(session, _saisine(session, link), follow_up_wait_step(follow_up.round))


# -- attendance at a cell meeting (case: the meeting) -------------------------------------------
def _attendance_page(session: Session, link: StepLink) -> StepPage:
    member = _subject(session, MeetingMember, link)
    meeting = session.get(CellMeeting, member.meeting_id)
    assert meeting is not None
    host = session.get(Organisation, meeting.host_organisation_id)
    tz = get_settings().tz
    return StepPage(
        title="Réunion de la cellule de concertation",
        case_label=f"Réunion de cellule n°{meeting.id}",
        paragraphs=[
            "Réunion annulée."
            if meeting.status is MeetingStatus.CANCELLED
            else "Merci d'indiquer votre présence."
        ],
        details=[
            ("Date", f"{meeting.starts_at.astimezone(tz):%d/%m/%Y à %H:%M}"),
            ("Lieu", host.name if host else "—"),
            ("Saisines examinées", ", ".join(s.reference for s in meeting_items(session, meeting))),
        ],
    )


def _attendance_record(
    session: Session, link: StepLink, answer: AttendanceAnswer, actor: Actor
) -> str:
    member = _subject(session, MeetingMember, link)
    record_attendance(
        session=session, member=member, attending=answer.attending == "oui", actor=actor
    )
    return "Merci, votre réponse est enregistrée."


# -- action closure by its owner ----------------------------------------------------------------
ACTIONS_WAIT_STEP = "actions"


def _action_page(session: Session, link: StepLink) -> StepPage:
    action = _subject(session, DecisionAction, link)
    saisine = _saisine(session, link)
    return StepPage(
        title="Action décidée par la cellule de concertation",
        case_label=saisine.label,
        paragraphs=["Quand l'action est réalisée, indiquez-le ci-dessous."],
        details=[("Action", action.text), ("Échéance", f"{action.due_on:%d/%m/%Y}")],
    )


def _action_record(session: Session, link: StepLink, answer: ActionClosure, actor: Actor) -> str:
    action = _subject(session, DecisionAction, link)
    close_action(session=session, action=action, note=answer.note, actor=actor, link_id=link.id)
    return "Merci, l'action est notée comme réalisée."


def _action_wait(session: Session, link: StepLink) -> str | None:
    return _open_wait_step(session, _saisine(session, link), ACTIONS_WAIT_STEP)


# -- outcome page (orientation or decision) -------------------------------------------------------
def _outcome_page(session: Session, link: StepLink) -> StepPage:
    saisine = _saisine(session, link)
    details: list[tuple[str, str]] = [("Statut", STATUS_LABELS[saisine.status])]
    decision = decision_of(session, saisine)
    if decision is not None:
        details.append(("Décision de la cellule", decision.text))
        for action in actions_of(session, saisine):
            details.append(("Action", f"{action.text} (échéance {action.due_on:%d/%m/%Y})"))
    else:
        last = orientations(session, saisine)
        if last:
            details.append(("Orientation", last[-1].text))
    return StepPage(
        title="Suite donnée à la saisine",
        case_label=saisine.label,
        paragraphs=["Voici la suite donnée par la cellule de concertation."],
        details=details,
    )


def _outcome_record(session: Session, link: StepLink, answer: Acknowledgement, actor: Actor) -> str:
    from models.core.audit import record_event

    record_event(
        session=session,
        case_type=CaseType.SAISINE,
        case_id=link.case_id,
        action="outcome.acknowledged",
        actor=actor,
        payload={"comment": answer.comment.strip()},
    )
    return "Merci, c'est noté."


CONSULTATION_STEP = StepKind(
    name=STEP_CONSULTATION,
    form=ConsultationAnswer,
    page=_consultation_page,
    record=_consultation_record,
    wait_step=_consultation_wait,
    submit_label="Envoyer ma réponse",
)
FOLLOW_UP_STEP = StepKind(
    name=STEP_FOLLOW_UP,
    form=FollowUpAnswer,
    page=_follow_up_page,
    record=_follow_up_record,
    wait_step=_follow_up_wait,
)
ATTENDANCE_STEP = StepKind(
    name=STEP_ATTENDANCE,
    form=AttendanceAnswer,
    page=_attendance_page,
    record=_attendance_record,
)
ACTION_STEP = StepKind(
    name=STEP_ACTION,
    form=ActionClosure,
    page=_action_page,
    record=_action_record,
    wait_step=_action_wait,
    submit_label="Action réalisée",
)
OUTCOME_STEP = StepKind(
    name=STEP_OUTCOME,
    form=Acknowledgement,
    page=_outcome_page,
    record=_outcome_record,
    submit_label="Bien reçu",
)


# -- case kinds ----------------------------------------------------------------------------
def _summary(saisine: Saisine) -> CaseSummary:
    assert saisine.id is not None
    return CaseSummary(
        case_type=CaseType.SAISINE,
        case_id=saisine.id,
        reference=saisine.label,
        status=STATUS_LABELS[saisine.status],
        clsm_id=saisine.clsm_id,
        opened_at=saisine.received_at,
        flow_run_id=saisine.flow_run_id,
    )


def _summaries(session: Session, clsm_id: int) -> list[CaseSummary]:
    rows = session.exec(select(Saisine).where(Saisine.clsm_id == clsm_id).order_by(col(Saisine.id)))
    return [_summary(s) for s in rows]


def _one(session: Session, saisine_id: int) -> CaseSummary | None:
    saisine = session.get(Saisine, saisine_id)
    return _summary(saisine) if saisine else None


MEETING_LABELS = {
    MeetingStatus.PLANNED: "prévue",
    MeetingStatus.HELD: "tenue",
    MeetingStatus.CANCELLED: "annulée",
}


def _meeting_summary(meeting: CellMeeting) -> CaseSummary:
    assert meeting.id is not None
    return CaseSummary(
        case_type=CaseType.MEETING,
        case_id=meeting.id,
        reference=meeting_label(meeting),
        status=MEETING_LABELS[meeting.status],
        clsm_id=meeting.clsm_id,
        opened_at=meeting.starts_at,
    )


SAISINE_KIND = CaseKind(
    case_type=CaseType.SAISINE, label="saisine", summaries=_summaries, summary=_one
)
MEETING_KIND = CaseKind(
    case_type=CaseType.MEETING,
    label="réunion de cellule",
    summaries=lambda s, clsm_id: [
        _meeting_summary(m)
        for m in s.exec(select(CellMeeting).where(CellMeeting.clsm_id == clsm_id))
    ],
    summary=lambda s, meeting_id: (
        _meeting_summary(m) if (m := s.get(CellMeeting, meeting_id)) else None
    ),
)

STEP_KINDS: tuple[StepKind, ...] = (
    CONSULTATION_STEP,
    FOLLOW_UP_STEP,
    ATTENDANCE_STEP,
    ACTION_STEP,
    OUTCOME_STEP,
)
