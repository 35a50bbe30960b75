"""Reports: the yearly table of the cell's saisines, the report of an immersion session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from models.core import clock
from models.core.audit import record_event
from models.core.enums import CaseType, Role
from models.core.errors import NotFound
from models.core.people import Clsm, User
from models.core.settings import get_settings
from models.immersion.report import (
    SessionReportData,
    report_participants_csv,
    report_structures_csv,
    session_report,
)
from models.saisine.report import record_report_read, yearly_report, yearly_report_csv
from models.saisine.rules import YearlyReport
from service.casework import visible_case
from service.deps import CurrentUser, SessionDep, actor_of, page_context, templates
from service.errors import problem_responses

router = APIRouter(tags=["rapports"])

Year = Annotated[int, Path(ge=2000, le=2100, description="Année du bilan")]
ClsmSlug = Annotated[str, Query(max_length=40, description="CLSM (admins seulement)")]


def _clsm_of(session: SessionDep, user: User, slug: str) -> Clsm:
    """The user's CLSM; an admin names one with ?clsm=slug."""
    if user.role is Role.ADMIN and slug:
        clsm = session.exec(select(Clsm).where(Clsm.slug == slug)).first()
    else:
        clsm = session.get(Clsm, user.clsm_id) if user.clsm_id else None
    if clsm is None or clsm.id is None:
        raise NotFound("Aucun CLSM pour ce bilan : un admin précise ?clsm=identifiant.")
    return clsm


def _audited_report(
    request: Request, session: SessionDep, user: User, clsm_id: int, year: int, form: str
) -> YearlyReport:
    report = yearly_report(session, clsm_id, year)
    record_report_read(
        session=session, clsm_id=clsm_id, report=report, actor=actor_of(request, user), form=form
    )
    session.commit()
    return report


@router.get(
    "/reports/saisines",
    summary="Bilan des saisines de l'année en cours",
    status_code=303,
    response_class=RedirectResponse,
    responses=problem_responses(401),
)
def saisines_this_year(user: CurrentUser, session: SessionDep) -> RedirectResponse:
    """Renvoie vers le bilan de l'année en cours (heure de Paris)."""
    year = clock.now(session).astimezone(get_settings().tz).year
    return RedirectResponse(f"/reports/saisines/{year}", status_code=303)


@router.get(
    "/reports/saisines/{year}.csv",
    response_class=Response,
    summary="Bilan annuel des saisines de la cellule (CSV)",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 404, 422)},
)
def saisines_csv(
    request: Request, year: Year, user: CurrentUser, session: SessionDep, clsm: ClsmSlug = ""
) -> Response:
    """Le même tableau en CSV (séparateur « ; », UTF-8) ; la lecture est enregistrée dans
    l'historique de chaque saisine du tableau."""
    owner = _clsm_of(session, user, clsm)
    assert owner.id is not None
    report = _audited_report(request, session, user, owner.id, year, "csv")
    return Response(
        yearly_report_csv(session, owner.id, year, report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="saisines-{year}.csv"'},
    )


@router.get(
    "/reports/saisines/{year}",
    response_class=HTMLResponse,
    summary="Bilan annuel des saisines de la cellule (page)",
    responses=problem_responses(401, 404, 422),
)
def saisines_page(
    request: Request, year: Year, user: CurrentUser, session: SessionDep, clsm: ClsmSlug = ""
) -> Response:
    """Tableau « Réunion / Saisine (source) / Décisions / Note », puis totaux par niveau ;
    la lecture est enregistrée dans l'historique de chaque saisine du tableau."""
    owner = _clsm_of(session, user, clsm)
    assert owner.id is not None
    report = _audited_report(request, session, user, owner.id, year, "html")
    return templates.TemplateResponse(
        request,
        "report_saisines.html",
        page_context(
            request,
            user,
            title=f"Saisines de la cellule en {year} — {owner.name}",
            report=report,
            clsm=owner,
        ),
    )


SessionId = Annotated[int, Path(ge=1, description="Numéro de la session")]


def _read_session_report(
    request: Request, session: SessionDep, user: User, session_id: int, form: str
) -> SessionReportData:
    """Check access and record the read (the report names participants)."""
    case = visible_case(session, user, CaseType.SESSION.value, session_id)
    record_event(
        session=session,
        case_type=case.case_type,
        case_id=case.case_id,
        action="report.read",
        actor=actor_of(request, user),
        payload={"format": form},
    )
    session.commit()
    return session_report(session, session_id)


@router.get(
    "/cases/session/{session_id}/report.csv",
    response_class=Response,
    summary="Bilan d'une session d'immersion : tableau par structure (CSV)",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 404, 422)},
)
def session_report_csv(
    request: Request, session_id: SessionId, user: CurrentUser, session: SessionDep
) -> Response:
    """Le tableau par structure ; la lecture est enregistrée."""
    data = _read_session_report(request, session, user, session_id, "csv")
    return _csv(report_structures_csv(data), f"bilan-session-{session_id}-structures.csv")


@router.get(
    "/cases/session/{session_id}/report-participants.csv",
    response_class=Response,
    summary="Bilan d'une session d'immersion : tableau par participant (CSV)",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 404, 422)},
)
def session_report_participants_csv(
    request: Request, session_id: SessionId, user: CurrentUser, session: SessionDep
) -> Response:
    """Le tableau par participant ; la lecture est enregistrée."""
    data = _read_session_report(request, session, user, session_id, "csv")
    return _csv(report_participants_csv(data), f"bilan-session-{session_id}-participants.csv")


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/cases/session/{session_id}/report",
    response_class=HTMLResponse,
    summary="Bilan d'une session d'immersion (page)",
    responses=problem_responses(401, 403, 404, 422),
)
def session_report_page(
    request: Request, session_id: SessionId, user: CurrentUser, session: SessionDep
) -> Response:
    """Candidatures, retenues, liste d'attente, retraits, immersions, jours, évaluations."""
    data = _read_session_report(request, session, user, session_id, "html")
    return templates.TemplateResponse(
        request,
        "report_session.html",
        page_context(request, user, title=f"Bilan — {data.title}", report=data),
    )
