"""The JSON API (bearer token or session): me, cases, history, resume retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from models.core.people import UserPublic
from service.casework import (
    CasePublic,
    HistoryFilters,
    HistoryPublic,
    case_public,
    read_case,
    visible_case,
    visible_cases,
)
from service.deps import CurrentUser, SessionDep, Writer, actor_of
from service.errors import problem_responses
from service.resumes import retry_resumes
from service.routes.history import csv_response, load_history

router = APIRouter(prefix="/api", tags=["api"])

Filters = Annotated[HistoryFilters, Query()]


class ResumeReport(BaseModel):
    """Reprises tentées : nombre par résultat (resumed, busy, finished, unreachable)."""

    outcomes: dict[str, int]


@router.get("/me", summary="Mon compte", responses=problem_responses(401))
def me(user: CurrentUser) -> UserPublic:
    """Le compte du jeton ou de la session."""
    return UserPublic.model_validate(user, from_attributes=True)


@router.get("/cases", summary="Dossiers visibles", responses=problem_responses(401))
def cases(user: CurrentUser, session: SessionDep) -> list[CasePublic]:
    """Les dossiers de mon CLSM (tous pour un admin), avec leurs attentes."""
    return [case_public(session, case) for case in visible_cases(session, user)]


@router.get(
    "/cases/{case_type}/{case_id}",
    summary="Un dossier (consultation auditée)",
    responses=problem_responses(401, 403, 404),
)
def case(
    request: Request, case_type: str, case_id: int, user: CurrentUser, session: SessionDep
) -> CasePublic:
    """Statut, étape en cours, attentes ; la consultation est enregistrée."""
    found = read_case(session, user, actor_of(request, user), case_type, case_id)
    return case_public(session, found)


@router.get(
    "/cases/{case_type}/{case_id}/history",
    summary="Historique d'un dossier",
    responses=problem_responses(401, 403, 404, 422),
)
def history(
    request: Request,
    case_type: str,
    case_id: int,
    filters: Filters,
    user: CurrentUser,
    session: SessionDep,
) -> HistoryPublic:
    """Historique paginé et filtrable ; la lecture est enregistrée dans l'historique."""
    return load_history(request, session, user, case_type, case_id, filters, "json")


@router.get(
    "/cases/{case_type}/{case_id}/history.csv",
    summary="Historique d'un dossier (CSV)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 404, 422)},
)
def history_csv(
    request: Request,
    case_type: str,
    case_id: int,
    filters: Filters,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    """Historique complet (filtré) en CSV ; la lecture est enregistrée."""
    return csv_response(load_history(request, session, user, case_type, case_id, filters, "csv"))


@router.post(
    "/cases/{case_type}/{case_id}/resume",
    summary="Relancer les reprises en attente",
    responses=problem_responses(401, 403, 404),
)
async def resume(
    request: Request, case_type: str, case_id: int, user: Writer, session: SessionDep
) -> ResumeReport:
    """Réservé à la coordination et aux admins (un audit reçoit 403)."""
    found = visible_case(session, user, case_type, case_id)
    return ResumeReport(outcomes=await retry_resumes(session, found, actor_of(request, user)))
