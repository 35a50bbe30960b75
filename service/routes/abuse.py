"""Abuse of a session's call link, for its coordinator: applications refused by the limits,
applications flagged as abusive, and their purge before the selection (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from models.core.enums import CaseType
from models.core.people import User
from models.immersion.abuse import (
    abuse_overview,
    flag_application,
    get_application,
    purge_application,
)
from models.immersion.common import get_session
from models.immersion.states import APPLICATION_LABELS
from models.immersion.tables import Application
from service.casework import read_case, visible_case
from service.deps import CurrentUser, SessionDep, Writer, actor_of, page_context, templates
from service.errors import problem_responses

router = APIRouter(tags=["dossiers"])

SessionId = Annotated[int, Path(ge=1, description="Numéro de la session")]
ApplicationId = Annotated[int, Path(ge=1, description="Numéro interne de la candidature")]


def _page(session_id: int) -> str:
    return f"/cases/session/{session_id}/abuse"


def _application(session: Session, user: User, session_id: int, application_id: int) -> Application:
    """The application of a session the coordinator's CLSM holds (404 otherwise)."""
    visible_case(session, user, CaseType.SESSION.value, session_id)
    return get_application(session, get_session(session, session_id), application_id)


@router.get(
    "/cases/session/{session_id}/abuse",
    response_class=HTMLResponse,
    summary="Candidatures abusives d'une session (consultation auditée)",
    responses=problem_responses(401, 403, 404),
)
def abuse_page(
    request: Request, session_id: SessionId, user: CurrentUser, session: SessionDep
) -> Response:
    """Les candidatures, celles signalées comme abusives, et les envois refusés par les
    limites du lien d'appel (comptés par heure et adresse chiffrée, jamais ce qui fut saisi)."""
    case = read_case(
        session,
        user,
        actor_of(request, user),
        CaseType.SESSION.value,
        session_id,
        payload={"page": "candidatures abusives"},
    )
    overview = abuse_overview(session, get_session(session, session_id))
    return templates.TemplateResponse(
        request,
        "session_abuse.html",
        page_context(
            request,
            user,
            title=f"Candidatures abusives — {case.reference}",
            overview=overview,
            labels=APPLICATION_LABELS,
        ),
    )


@router.post(
    "/cases/session/{session_id}/applications/{application_id}/flag",
    summary="Signaler une candidature comme abusive (coordination)",
    responses={
        303: {"description": "Candidature signalée"},
        **problem_responses(401, 403, 404, 409),
    },
)
async def flag(
    request: Request,
    session_id: SessionId,
    application_id: ApplicationId,
    user: Writer,
    session: SessionDep,
    reason: Annotated[str, Form(min_length=3, max_length=300)],
) -> Response:
    """Signale la candidature ; la coordination peut ensuite l'effacer avant la sélection."""
    application = _application(session, user, session_id, application_id)
    flag_application(
        session=session, application=application, reason=reason, actor=actor_of(request, user)
    )
    session.commit()
    return RedirectResponse(_page(session_id), status_code=303)


@router.post(
    "/cases/session/{session_id}/applications/{application_id}/purge",
    summary="Effacer une candidature signalée comme abusive (coordination)",
    responses={
        303: {"description": "Candidature effacée"},
        **problem_responses(401, 403, 404, 409),
    },
)
async def purge(
    request: Request,
    session_id: SessionId,
    application_id: ApplicationId,
    user: Writer,
    session: SessionDep,
) -> Response:
    """Efface la candidature et les contacts qu'elle a créés ; refusé une fois la sélection
    faite. Elle n'est jamais proposée à la sélection."""
    application = _application(session, user, session_id, application_id)
    purge_application(session=session, application=application, actor=actor_of(request, user))
    session.commit()
    return RedirectResponse(_page(session_id), status_code=303)
