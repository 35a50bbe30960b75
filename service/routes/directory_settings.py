"""Pages of the network directory: cell of the CLSM, orientation catalogue,
past yearly totals.

Helpers, path types and responses come from service.routes.directory.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from models.core import directory as d
from models.core.errors import DomainError
from models.core.people import Clsm, User
from service.deps import CurrentUser, SessionDep, Writer, actor_of
from service.forms import FormField, form_fields, parse_form
from service.routes.directory import (
    DONE,
    READ,
    RowId,
    Slug,
    Version,
    _id,
    _posted,
    _render,
    clsm_of,
)

router = APIRouter(tags=["annuaire"])


# -- cell, orientations, past totals -------------------------------------------------------


@router.get(
    "/directory/{slug}/cell",
    summary="Membres permanents de la cellule",
    response_class=HTMLResponse,
    responses=READ,
)
def cell_page(request: Request, slug: Slug, user: CurrentUser, session: SessionDep) -> Response:
    """Membres permanents dans l'ordre de rotation des réunions."""
    clsm = clsm_of(session, user, slug)
    return _render(
        request,
        user,
        "directory_cell.html",
        title=f"Cellule de concertation — {clsm.name}",
        clsm=clsm,
        members=d.cell_members(session, _id(clsm)),
    )


@router.get(
    "/directory/{slug}/orientations",
    summary="Catalogue des orientations",
    response_class=HTMLResponse,
    responses=READ,
)
def orientation_page(
    request: Request, slug: Slug, user: CurrentUser, session: SessionDep
) -> Response:
    """Catalogue des orientations du CLSM, retirées comprises."""
    clsm = clsm_of(session, user, slug)
    return _orientations(request, user, session, clsm)


def _orientations(
    request: Request,
    user: User,
    session: Session,
    clsm: Clsm,
    errors: dict[str, str] | None = None,
    status: int = 200,
    typed: str = "",
) -> Response:
    return _render(
        request,
        user,
        "directory_orientations.html",
        status,
        title=f"Orientations — {clsm.name}",
        clsm=clsm,
        entries=d.orientation_catalogue(session, _id(clsm), include_retired=True),
        errors=errors or {},
        typed=typed,
    )


@router.post("/directory/{slug}/orientations", summary="Ajouter une orientation", responses=DONE)
async def orientation_add(
    request: Request, slug: Slug, user: Writer, session: SessionDep
) -> Response:
    """Ajoute une orientation à la fin du catalogue."""
    clsm = clsm_of(session, user, slug)
    parsed, typed, errors = parse_form(d.OrientationCreate, await _posted(request))
    if parsed is not None:
        assert isinstance(parsed, d.OrientationCreate)
        try:
            d.add_orientation(
                session=session, clsm_id=_id(clsm), data=parsed, actor=actor_of(request, user)
            )
            session.commit()
            return RedirectResponse(f"/directory/{slug}/orientations", status_code=303)
        except DomainError as error:
            session.rollback()
            errors = {"label": error.message}
    return _orientations(request, user, session, clsm, errors, 422, str(typed.get("label", "")))


@router.post(
    "/directory/{slug}/orientations/{entry_id}", summary="Renommer une orientation", responses=DONE
)
def orientation_rename(
    request: Request,
    slug: Slug,
    entry_id: RowId,
    user: Writer,
    session: SessionDep,
    version: Version,
    label: Annotated[str, Form(min_length=3, max_length=200)],
) -> Response:
    """Les dossiers déjà orientés gardent le libellé qu'ils ont enregistré."""
    clsm = clsm_of(session, user, slug)
    row = d.get_orientation(session, _id(clsm), entry_id)
    d.rename_orientation(
        session=session,
        row=row,
        data=d.OrientationCreate(label=label),
        version=version,
        actor=actor_of(request, user),
    )
    session.commit()
    return RedirectResponse(f"/directory/{slug}/orientations", status_code=303)


@router.post(
    "/directory/{slug}/orientations/{entry_id}/active",
    summary="Retirer ou rétablir une orientation",
    responses=DONE,
)
def orientation_active(
    request: Request,
    slug: Slug,
    entry_id: RowId,
    user: Writer,
    session: SessionDep,
    version: Version,
    active: Annotated[bool, Form()],
) -> Response:
    """Une orientation retirée n'est plus proposée ; les dossiers gardent leur libellé."""
    clsm = clsm_of(session, user, slug)
    row = d.get_orientation(session, _id(clsm), entry_id)
    d.set_orientation_active(
        session=session, row=row, active=active, version=version, actor=actor_of(request, user)
    )
    session.commit()
    return RedirectResponse(f"/directory/{slug}/orientations", status_code=303)


@router.get(
    "/directory/{slug}/totals",
    summary="Activité des années passées",
    response_class=HTMLResponse,
    responses=READ,
)
def totals_page(request: Request, slug: Slug, user: CurrentUser, session: SessionDep) -> Response:
    """Totaux annuels saisis pour les années d'avant l'outil."""
    clsm = clsm_of(session, user, slug)
    return _totals(request, user, session, clsm, form_fields(d.PastTotalsCreate))


def _totals(
    request: Request,
    user: User,
    session: Session,
    clsm: Clsm,
    fields: list[FormField],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return _render(
        request,
        user,
        "directory_totals.html",
        status,
        title=f"Activité des années passées — {clsm.name}",
        clsm=clsm,
        totals=d.past_totals(session, _id(clsm)),
        fields=fields,
        errors=errors or {},
    )


@router.post("/directory/{slug}/totals", summary="Saisir les totaux d'une année", responses=DONE)
async def totals_set(request: Request, slug: Slug, user: Writer, session: SessionDep) -> Response:
    """Une année déjà saisie est corrigée (modification auditée, avant → après)."""
    clsm = clsm_of(session, user, slug)
    posted = await _posted(request)
    parsed, typed, errors = parse_form(d.PastTotalsCreate, posted)
    if parsed is None:
        fields = form_fields(d.PastTotalsCreate, typed, errors, raw=True)
        return _totals(request, user, session, clsm, fields, errors, 422)
    assert isinstance(parsed, d.PastTotalsCreate)
    given = posted.get("version", [""])[-1]
    d.set_past_totals(
        session=session,
        clsm_id=_id(clsm),
        data=parsed,
        version=int(given) if given.isdigit() else None,
        actor=actor_of(request, user),
    )
    session.commit()
    return RedirectResponse(f"/directory/{slug}/totals", status_code=303)
