"""History of a case: timeline page, JSON and CSV; every read is itself audited."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from service.casework import (
    HistoryFilters,
    HistoryPublic,
    HistoryRead,
    action_label,
    history_csv,
    read_history,
    visible_case,
)
from service.deps import CurrentUser, SessionDep, actor_of, page_context, templates
from service.errors import problem_responses

router = APIRouter(tags=["historique"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
Filters = Annotated[HistoryFilters, Query()]


def load_history(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    case_type: str,
    case_id: int,
    filters: HistoryFilters,
    form: str,
) -> HistoryPublic:
    """Check access, record the read and read the history (one transaction)."""
    case = visible_case(session, user, case_type, case_id)
    history = read_history(
        session=session,
        case=case,
        filters=filters,
        reader=HistoryRead(actor=actor_of(request, user), form=form),
        everything=form == "csv",
    )
    session.commit()
    return history


def csv_response(history: HistoryPublic) -> Response:
    name = f"historique-{history.case_type.value}-{history.case_id}.csv"
    return Response(
        "\ufeff" + history_csv(history),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/cases/{case_type}/{case_id}/history",
    response_class=HTMLResponse,
    summary="Historique d'un dossier (page)",
    responses=READ_ERRORS,
)
def history_page(
    request: Request,
    case_type: str,
    case_id: int,
    filters: Filters,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    """Chronologie paginée et filtrable, avec le résultat de la vérification de la chaîne."""
    history = load_history(request, session, user, case_type, case_id, filters, "html")
    return templates.TemplateResponse(
        request,
        "history.html",
        page_context(
            request,
            user,
            title=f"Historique — {history.reference}",
            history=history,
            action_label=action_label,
            query=urlencode({k: v for k, v in history.filters.items() if k != "page"}),
            page_query=lambda page: urlencode({**history.filters, "page": page}),
        ),
    )


@router.get(
    "/cases/{case_type}/{case_id}/history.json",
    summary="Historique d'un dossier (JSON)",
    responses=READ_ERRORS,
)
def history_json(
    request: Request,
    case_type: str,
    case_id: int,
    filters: Filters,
    user: CurrentUser,
    session: SessionDep,
) -> HistoryPublic:
    """Les mêmes données que la page, en JSON."""
    return load_history(request, session, user, case_type, case_id, filters, "json")


@router.get(
    "/cases/{case_type}/{case_id}/history.csv",
    summary="Historique d'un dossier (CSV)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **READ_ERRORS},
)
def history_csv_file(
    request: Request,
    case_type: str,
    case_id: int,
    filters: Filters,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    """Tous les événements correspondant aux filtres, séparateur « ; », UTF-8."""
    return csv_response(load_history(request, session, user, case_type, case_id, filters, "csv"))
