"""Pages of the network directory: conventions signed with the structures.

Helpers, path types and responses come from service.routes.directory.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from models.core import clock
from models.core import directory as d
from models.core.errors import DomainError, StaleUpdate
from models.core.people import Clsm
from service.deps import CurrentUser, SessionDep, Writer, actor_of
from service.forms import FormField, form_fields, parse_form
from service.routes.directory import (
    DONE,
    READ,
    RowId,
    Slug,
    Version,
    _form_page,
    _id,
    _posted,
    _render,
    _structure_options,
    _values,
    _with_options,
    clsm_of,
)

router = APIRouter(tags=["annuaire"])


# -- conventions ---------------------------------------------------------------------------


@router.get(
    "/directory/{slug}/conventions",
    summary="Conventions bilatérales",
    response_class=HTMLResponse,
    responses=READ,
)
def convention_list(
    request: Request, slug: Slug, user: CurrentUser, session: SessionDep
) -> Response:
    """Conventions, leur validité et celles qui expirent sous 60 jours."""
    clsm = clsm_of(session, user, slug)
    today = clock.now(session).date()
    return _render(
        request,
        user,
        "directory_conventions.html",
        title=f"Conventions — {clsm.name}",
        clsm=clsm,
        rows=d.conventions(session, _id(clsm)),
        expiring={p.id for p, _o in d.expiring_conventions(session, _id(clsm), today)},
        today=today,
    )


def _convention_fields(
    session: Session,
    clsm: Clsm,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    raw: bool = False,
) -> list[FormField]:
    fields = form_fields(d.ConventionCreate, values, errors, raw=raw)
    return _with_options(fields, {"organisation_id": _structure_options(session, clsm)})


@router.get(
    "/directory/{slug}/conventions/new",
    summary="Nouvelle convention",
    response_class=HTMLResponse,
    responses=READ,
)
def convention_new(
    request: Request,
    slug: Slug,
    user: CurrentUser,
    session: SessionDep,
    structure: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Formulaire d'une nouvelle convention bilatérale."""
    clsm = clsm_of(session, user, slug)
    values = {"organisation_id": structure} if structure else None
    return _form_page(
        request,
        user,
        clsm,
        title="Nouvelle convention",
        fields=_convention_fields(session, clsm, values),
        action=f"/directory/{slug}/conventions",
        submit="Enregistrer la convention",
    )


@router.post("/directory/{slug}/conventions", summary="Enregistrer une convention", responses=DONE)
async def convention_create(
    request: Request, slug: Slug, user: Writer, session: SessionDep
) -> Response:
    """Enregistre une convention (auditée) ; la fin ne peut précéder le début."""
    clsm = clsm_of(session, user, slug)
    parsed, typed, errors = parse_form(d.ConventionCreate, await _posted(request))
    if parsed is not None:
        assert isinstance(parsed, d.ConventionCreate)
        try:
            d.create_convention(
                session=session, clsm_id=_id(clsm), data=parsed, actor=actor_of(request, user)
            )
            session.commit()
            return RedirectResponse(f"/directory/{slug}/conventions", status_code=303)
        except DomainError as error:
            session.rollback()
            errors = {"__root__": error.message}
    return _form_page(
        request,
        user,
        clsm,
        title="Nouvelle convention",
        fields=_convention_fields(session, clsm, typed, errors, raw=True),
        action=f"/directory/{slug}/conventions",
        submit="Enregistrer la convention",
        errors=errors,
        status=422,
    )


@router.get(
    "/directory/{slug}/conventions/{convention_id}",
    summary="Une convention",
    response_class=HTMLResponse,
    responses=READ,
)
def convention_page(
    request: Request, slug: Slug, convention_id: RowId, user: CurrentUser, session: SessionDep
) -> Response:
    """Fiche modifiable d'une convention."""
    clsm = clsm_of(session, user, slug)
    row = d.get_convention(session, _id(clsm), convention_id)
    return _form_page(
        request,
        user,
        clsm,
        title="Convention bilatérale",
        fields=_convention_fields(session, clsm, _values(row, d.ConventionCreate)),
        action=f"/directory/{slug}/conventions/{row.id}",
        submit="Enregistrer les modifications",
        version=row.version,
    )


@router.post(
    "/directory/{slug}/conventions/{convention_id}",
    summary="Modifier une convention",
    responses=DONE,
)
async def convention_update(
    request: Request,
    slug: Slug,
    convention_id: RowId,
    user: Writer,
    session: SessionDep,
    version: Version,
) -> Response:
    """Enregistre les modifications (auditées) ; page périmée : 409."""
    clsm = clsm_of(session, user, slug)
    row = d.get_convention(session, _id(clsm), convention_id)
    parsed, typed, errors = parse_form(d.ConventionCreate, await _posted(request))
    if parsed is not None:
        assert isinstance(parsed, d.ConventionCreate)
        try:
            d.update_convention(
                session=session,
                clsm_id=_id(clsm),
                row=row,
                data=parsed,
                version=version,
                actor=actor_of(request, user),
            )
            session.commit()
            return RedirectResponse(f"/directory/{slug}/conventions", status_code=303)
        except StaleUpdate:
            raise
        except DomainError as error:
            session.rollback()
            errors = {"__root__": error.message}
    return _form_page(
        request,
        user,
        clsm,
        title="Convention bilatérale",
        fields=_convention_fields(session, clsm, typed, errors, raw=True),
        action=f"/directory/{slug}/conventions/{row.id}",
        submit="Enregistrer les modifications",
        version=row.version,
        errors=errors,
        status=422,
    )
