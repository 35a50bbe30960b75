"""A session's dashboard, and coordinator actions on it: cancel it, move a meeting.

Both send calendar updates (CANCEL, or REQUEST with a higher SEQUENCE) to everyone
concerned, are audited, and wake the session's run so that it takes the change into account.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from models.core import clock
from models.core.enums import CaseType
from models.core.errors import DomainError, InvalidInput, StaleUpdate
from models.core.runs import deliver_resumes
from models.core.settings import get_settings
from models.core.waits import wake_case
from models.immersion import changes
from models.immersion.common import get_session
from models.immersion.states import SessionStatus
from models.immersion.tables import ImmersionSession
from service.casework import read_case, visible_case
from service.deps import (
    CurrentUser,
    SessionDep,
    Writer,
    actor_of,
    page_context,
    templates,
    wants_json,
)
from service.errors import problem_responses
from service.forms import parse_french_datetime
from service.routes.cases import render_case_page
from service.session_dashboard import session_dashboard

router = APIRouter(tags=["dossiers"])

SessionId = Annotated[int, Path(ge=1, description="Numéro de la session")]


@router.get(
    "/cases/session/{session_id}/dashboard",
    response_class=HTMLResponse,
    summary="Tableau de bord d'une session (consultation auditée)",
    responses=problem_responses(401, 403, 404),
)
def dashboard_page(
    request: Request, session_id: SessionId, user: CurrentUser, session: SessionDep
) -> Response:
    """Qui est accueilli où, quels jours, quelles signatures et évaluations manquent, qui est
    en retard, et la liste d'attente ; en lecture seule une fois la session close."""
    case = read_case(
        session,
        user,
        actor_of(request, user),
        CaseType.SESSION.value,
        session_id,
        payload={"page": "tableau de bord"},
    )
    board = session_dashboard(session, get_session(session, session_id))
    return templates.TemplateResponse(
        request,
        "session_dashboard.html",
        page_context(request, user, title=f"Tableau de bord — {case.reference}", board=board),
    )


def _wake(session: SessionDep, session_id: int) -> list[int]:
    return wake_case(session=session, case_type=CaseType.SESSION, case_id=session_id)


Version = Annotated[int, Form(ge=1, description="Version lue avec la page")]


def _unchanged(row: ImmersionSession, version: int) -> ImmersionSession:
    """Refuse an edit made on a page older than the last change (another coordinator)."""
    if row.version != version:
        raise StaleUpdate(f"La session « {row.title} »")
    return row


def _local(value: str) -> datetime:
    try:
        moment = parse_french_datetime(value)  # jj/mm/aaaa hh:mm as typed, or ISO
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    if not clock.within_bounds(moment.date()):
        raise InvalidInput(
            f"Date hors des bornes admises (entre le {clock.FIRST_DAY:%d/%m/%Y} "
            f"et le {clock.LAST_DAY:%d/%m/%Y})."
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=get_settings().tz)


@router.post(
    "/cases/session/{session_id}/cancel",
    summary="Annuler une session d'immersion (coordination)",
    responses={303: {"description": "Session annulée"}, **problem_responses(401, 403, 404, 409)},
)
async def cancel_session(
    request: Request,
    session_id: SessionId,
    user: Writer,
    session: SessionDep,
    reason: Annotated[str, Form(min_length=3, max_length=500)],
    version: Version,
) -> Response:
    """Annule la session : tous les invités reçoivent l'annulation de leurs rendez-vous."""
    visible_case(session, user, CaseType.SESSION.value, session_id)
    row = _unchanged(get_session(session, session_id), version)
    changes.cancel_and_wake(session=session, row=row, actor=actor_of(request, user), reason=reason)
    session.commit()
    await deliver_resumes()
    return RedirectResponse(f"/cases/session/{session_id}", status_code=303)


@router.post(
    "/cases/session/{session_id}/meetings/{meeting}",
    summary="Déplacer la journée de préparation ou la restitution (coordination)",
    responses={303: {"description": "Réunion déplacée"}, **problem_responses(401, 403, 404, 409)},
)
async def move_meeting(
    request: Request,
    session_id: SessionId,
    meeting: Literal["preparation", "restitution"],
    user: Writer,
    session: SessionDep,
    start: Annotated[str, Form(max_length=40)],
    end: Annotated[str, Form(max_length=40)],
    place: Annotated[str, Form(min_length=2, max_length=300)],
    version: Version,
    insist: Annotated[bool, Form(description="Maintenir un week-end ou un jour férié")] = False,
) -> Response:
    """Nouvelle date et nouveau lieu : mise à jour d'agenda envoyée à tous les invités ; un
    week-end ou un jour férié est refusé, sauf si la coordination le maintient."""
    visible_case(session, user, CaseType.SESSION.value, session_id)
    row = _unchanged(get_session(session, session_id), version)
    try:
        changes.move_meeting(
            session=session,
            row=row,
            meeting=meeting,
            start=_local(start),
            end=_local(end),
            place=place,
            actor=actor_of(request, user),
            insist=insist,
        )
    except DomainError as refusal:
        finished = row.status in (SessionStatus.CLOSED, SessionStatus.CANCELLED)
        if wants_json(request) or isinstance(refusal, StaleUpdate) or finished:
            raise  # (a finished session's page has no form to show the reason beside)
        # a person: the case page again, the reason beside the form, what was typed kept
        session.rollback()
        typed: dict[str, str | bool] = {
            "start": start,
            "end": end,
            "place": place,
            "insist": insist,
        }
        refused = {"meeting": meeting, "reason": refusal.message, **typed}
        return render_case_page(
            request,
            user,
            session,
            CaseType.SESSION.value,
            session_id,
            status_code=refusal.status_code,
            refused=refused,
        )
    ids = _wake(session, session_id)
    session.commit()
    await deliver_resumes(ids)
    return RedirectResponse(f"/cases/session/{session_id}", status_code=303)
