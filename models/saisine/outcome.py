"""The outcome page: what the referrer and the partners concerned read of an orientation or
of the cell's decision (the mail only links to it)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlmodel import Session

from models.core.audit import Actor
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.saisine.common import actions_of, decision_of, event, get_saisine, orientations
from models.saisine.states import STATUS_LABELS, Step


class Acknowledgement(BaseModel):
    comment: str = Field(default="", max_length=2000, title="Remarque (facultative)")


def _page(session: Session, link: StepLink) -> StepPage:
    saisine = get_saisine(session, link.case_id)
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


def _record(session: Session, link: StepLink, answer: Acknowledgement, actor: Actor) -> str:
    saisine = get_saisine(session, link.case_id)
    event(session, saisine, "outcome.acknowledged", actor, {"comment": answer.comment.strip()})
    return "Merci, c'est noté."


OUTCOME_STEP = StepKind(
    name=Step.OUTCOME,
    form=Acknowledgement,
    page=_page,
    record=_record,
    submit_label="Bien reçu",
    after_sending="Après l'envoi, la coordination du CLSM sait que vous avez pris "
    "connaissance de la suite donnée ; aucune autre démarche ne vous est demandée.",
)
