"""Follow-up of an orientation: on the chosen date the referrer is asked by link whether it
worked; the answer closes the saisine, reopens level 1 or escalates to level 2. A silent
referrer is reported to the coordinator."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.status import change_status
from models.saisine.common import (
    EXAMPLE_REFERENCE,
    SaisineMail,
    alert_coordinator,
    close_saisine,
    contact,
    current_follow_up,
    escalate_to_level2,
    event,
    get_saisine,
    link_to,
    mail,
    open_wait_step,
    orientations,
    reopen_level1,
    subject_of,
    touch,
)
from models.saisine.plan import Next, Task, follow_up_moments
from models.saisine.states import SaisineStatus, Step, WaitName, wait_step
from models.saisine.tables import FollowUp, Saisine


class FollowUpMail(SaisineMail):
    """To the referrer: did the orientation work? (answer by the link)"""

    template: ClassVar[str] = "saisine_follow_up"
    link_id: int

    @classmethod
    def example(cls) -> FollowUpMail:
        return cls(reference=EXAMPLE_REFERENCE, link_id=1)


def follow_up_wait_step(round_: int) -> str:
    """The wait for the referrer's answer."""
    return wait_step(WaitName.FOLLOW_UP, round_=round_)


def next_when_oriented(session: Session, saisine: Saisine) -> Next:
    """Closed at once without a follow-up; else the follow-up date, then the question."""
    follow_up = current_follow_up(session, saisine)
    if follow_up is None:
        return Next(task=Task.CLOSE, close_reason="orientation proposée")
    ask_at, _ = follow_up_moments(follow_up)
    if clock.now(session) < ask_at:
        return Next.until(WaitName.FOLLOW_UP_DATE, due_at=ask_at, round_=follow_up.round)
    return Next(task=Task.START_FOLLOW_UP)


def next_in_follow_up(session: Session, saisine: Saisine) -> Next:
    """The referrer's answer, awaited (the coordinator told if it is late), then applied."""
    follow_up = current_follow_up(session, saisine)
    assert follow_up is not None
    if follow_up.answered_at is not None:
        return Next(task=Task.APPLY_FOLLOW_UP)
    _, alert_at = follow_up_moments(follow_up)
    if clock.now(session) < alert_at:
        return Next.until(WaitName.FOLLOW_UP, due_at=alert_at, round_=follow_up.round)
    return Next.until(WaitName.FOLLOW_UP, round_=follow_up.round, task=Task.ALERT_FOLLOW_UP)


def start_follow_up(*, session: Session, saisine: Saisine) -> FollowUp:
    """The follow-up date has come: ask the referrer whether the orientation worked."""
    follow_up = current_follow_up(session, saisine)
    if follow_up is None:
        raise DomainError(f"{saisine.label} : aucun suivi prévu.")
    follow_up.asked_at = clock.now(session)
    session.add(follow_up)
    change_status(session=session, entity=saisine, to=SaisineStatus.FOLLOW_UP, actor=Actor.system())
    link = link_to(session, saisine, saisine.referrer_contact_id, Step.FOLLOW_UP, follow_up.id)
    assert link.id is not None
    mail(
        session,
        saisine,
        to=contact(session, saisine.referrer_contact_id),
        message=FollowUpMail(reference=saisine.reference, link_id=link.id),
        dedup_key=f"follow-up-{follow_up.id}",
    )
    touch(session, saisine)
    return follow_up


def alert_silent_referrer(*, session: Session, saisine: Saisine) -> None:
    """The referrer has not answered the follow-up: the coordinator is told (once)."""
    alert_coordinator(
        session,
        saisine,
        alert="follow-up",
        names=[],
        dedup_key=f"follow-up-r{saisine.round}-silent",
    )


def record_follow_up_answer(
    *,
    session: Session,
    follow_up: FollowUp,
    worked: bool,
    next_step: str,
    comment: str,
    actor: Actor,
) -> None:
    if follow_up.answered_at is not None:
        raise DomainError("Ce suivi a déjà reçu une réponse.")
    if not worked and next_step not in ("level1", "level2"):
        raise DomainError("Indiquez la suite souhaitée : reprendre les échanges ou la cellule.")
    follow_up.worked = worked
    follow_up.next_step = "" if worked else next_step
    follow_up.comment = comment.strip()
    follow_up.answered_at = clock.now(session)
    session.add(follow_up)
    saisine = get_saisine(session, follow_up.saisine_id)
    event(
        session,
        saisine,
        "follow-up.answered",
        actor,
        {
            "follow_up_id": follow_up.id,
            "worked": worked,
            "next": follow_up.next_step,
            "comment": follow_up.comment,
        },
    )


def apply_follow_up(*, session: Session, saisine: Saisine) -> None:
    """After the referrer's answer: close, reopen level 1 or escalate to level 2."""
    follow_up = current_follow_up(session, saisine)
    assert follow_up is not None and follow_up.answered_at is not None
    system = Actor.system()
    if follow_up.worked:
        close_saisine(session=session, saisine=saisine, reason="orientation efficace", actor=system)
    elif follow_up.next_step == "level2":
        escalate_to_level2(
            session=session, saisine=saisine, actor=system, reason="l'orientation n'a pas abouti"
        )
    else:
        reopen_level1(
            session=session,
            saisine=saisine,
            reason="l'orientation n'a pas abouti : reprise des échanges",
            actor=system,
        )


# -- the referrer's page --------------------------------------------------------------------------
class FollowUpAnswer(BaseModel):
    worked: Literal["oui", "non"] = Field(title="L'orientation proposée a-t-elle fonctionné ?")
    next_step: Literal["", "level1", "level2"] = Field(
        default="",
        title="Si non, quelle suite souhaitez-vous ?",
        json_schema_extra={
            "labels": {
                "": "aucune (l'orientation a fonctionné)",
                "level1": "reprendre les échanges avec les partenaires",
                "level2": "examen en réunion de cellule",
            }
        },
    )
    comment: str = Field(default="", max_length=2000, title="Commentaire")


def _page(session: Session, link: StepLink) -> StepPage:
    saisine = get_saisine(session, link.case_id)
    last = orientations(session, saisine)
    return StepPage(
        title="Suivi de l'orientation proposée",
        case_label=saisine.label,
        paragraphs=["Dites-nous si l'orientation proposée par la cellule a fonctionné."],
        details=[("Orientation", last[-1].text)] if last else [],
    )


def _record(session: Session, link: StepLink, answer: FollowUpAnswer, actor: Actor) -> str:
    record_follow_up_answer(
        session=session,
        follow_up=subject_of(session, FollowUp, link),
        worked=answer.worked == "oui",
        next_step=answer.next_step,
        comment=answer.comment,
        actor=actor,
    )
    return "Merci, la coordination de la cellule a bien reçu votre réponse."


def _wait(session: Session, link: StepLink) -> str | None:
    follow_up = subject_of(session, FollowUp, link)
    saisine = get_saisine(session, link.case_id)
    return open_wait_step(session, saisine, follow_up_wait_step(follow_up.round))


FOLLOW_UP_STEP = StepKind(
    name=Step.FOLLOW_UP,
    form=FollowUpAnswer,
    page=_page,
    record=_record,
    wait_step=_wait,
    after_sending="Après l'envoi, la coordination du CLSM lit votre réponse : si l'orientation "
    "a fonctionné, la saisine est close ; sinon elle reprend au niveau que vous indiquez et "
    "vous en serez informé(e) par courriel. Ce lien ne sert qu'une fois.",
)
MAILS = (FollowUpMail,)
