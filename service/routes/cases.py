"""Case pages for coordinators, auditors and admins: the list, one case, a resume retry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from models.core.people import User
from service.casework import case_public, read_case, visible_case, visible_cases
from service.deps import CurrentUser, SessionDep, Writer, actor_of, page_context, templates
from service.errors import problem_responses
from service.resumes import retry_resumes

router = APIRouter(tags=["dossiers"])


@router.get(
    "/cases",
    response_class=HTMLResponse,
    summary="Dossiers de mon CLSM",
    responses=problem_responses(401),
)
def case_list(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Statut, étape en cours, qui doit répondre depuis quand, lien vers le run Prefect."""
    cases = [case_public(session, case) for case in visible_cases(session, user)]
    return templates.TemplateResponse(
        request, "cases.html", page_context(request, user, title="Dossiers", cases=cases)
    )


@router.get(
    "/cases/{case_type}/{case_id}",
    response_class=HTMLResponse,
    summary="Page d'un dossier (consultation auditée)",
    responses=problem_responses(401, 403, 404),
)
def case_page(
    request: Request, case_type: str, case_id: int, user: CurrentUser, session: SessionDep
) -> Response:
    """Ouvrir un dossier est une consultation enregistrée dans son historique."""
    return render_case_page(request, user, session, case_type, case_id)


def render_case_page(
    request: Request,
    user: User,
    session: Session,
    case_type: str,
    case_id: int,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    """A case's page, read (and audited) for `user`; `extra` for its template (a refused
    action's reason and typed values)."""
    case = read_case(session, user, actor_of(request, user), case_type, case_id)
    context = page_context(
        request, user, title=case.reference, case=case_public(session, case), **extra
    )
    return templates.TemplateResponse(request, "case.html", context, status_code=status_code)


@router.post(
    "/cases/{case_type}/{case_id}/resume",
    summary="Relancer la reprise du processus (coordination)",
    responses={303: {"description": "Relance faite"}, **problem_responses(401, 403, 404)},
)
async def resume_case(
    request: Request, case_type: str, case_id: int, user: Writer, session: SessionDep
) -> Response:
    """Retente les reprises en attente du dossier (Prefect était injoignable)."""
    case = visible_case(session, user, case_type, case_id)
    await retry_resumes(session, case, actor_of(request, user))
    return RedirectResponse(f"/cases/{case.case_type.value}/{case.case_id}", status_code=303)
