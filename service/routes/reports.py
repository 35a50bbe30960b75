"""Reports: the yearly table of the cell's saisines (page and CSV)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from models import clock
from models.enums import Role
from models.errors import NotFound
from models.people import Clsm, User
from models.saisine import yearly_report, yearly_report_csv
from models.settings import get_settings
from service.deps import CurrentUser, SessionDep, page_context, templates
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
    year: Year, user: CurrentUser, session: SessionDep, clsm: ClsmSlug = ""
) -> Response:
    """Le même tableau en CSV (séparateur « ; », UTF-8)."""
    owner = _clsm_of(session, user, clsm)
    assert owner.id is not None
    return Response(
        yearly_report_csv(session, owner.id, year),
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
    """Tableau « Réunion / Saisine (source) / Décisions / Note », puis totaux par niveau."""
    owner = _clsm_of(session, user, clsm)
    assert owner.id is not None
    report = yearly_report(session, owner.id, year)
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
