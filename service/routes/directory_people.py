"""Pages of the network directory: contacts of the CLSM's structures.

Helpers, path types and responses come from service.routes.directory.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from models.core import directory as d
from models.core.errors import DomainError, StaleUpdate
from models.core.people import Clsm, Contact, User
from service import directory_ops as ops
from service.deps import CurrentUser, SessionDep, Writer, actor_of
from service.forms import FormField, form_fields, parse_form
from service.routes.directory import (
    DONE,
    READ,
    ROLE_OPTIONS,
    SEARCH,
    RowId,
    Slug,
    Version,
    _form_page,
    _id,
    _lines,
    _posted,
    _render,
    _structure_options,
    _values,
    _with_options,
    clsm_of,
)

router = APIRouter(tags=["annuaire"])


# -- contacts ------------------------------------------------------------------------------


@router.get(
    "/directory/{slug}/contacts",
    summary="Contacts du réseau",
    response_class=HTMLResponse,
    responses=READ,
)
def contact_list(
    request: Request, slug: Slug, user: CurrentUser, session: SessionDep, q: SEARCH = ""
) -> Response:
    """Contacts des structures, recherche par nom, courriel ou structure."""
    clsm = clsm_of(session, user, slug)
    return _render(
        request,
        user,
        "directory_contacts.html",
        title=f"Contacts — {clsm.name}",
        clsm=clsm,
        q=q,
        rows=d.contacts(session, _id(clsm), search=q),
        roles=d.ROLE_LABELS,
    )


def _contact_fields(
    session: Session,
    clsm: Clsm,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    raw: bool = False,
) -> list[FormField]:
    fields = form_fields(d.ContactCreate, values, errors, raw=raw)
    return _with_options(
        fields, {"organisation_id": _structure_options(session, clsm), "roles": ROLE_OPTIONS}
    )


@router.get(
    "/directory/{slug}/contacts/new",
    summary="Nouveau contact",
    response_class=HTMLResponse,
    responses=READ,
)
def contact_new(
    request: Request,
    slug: Slug,
    user: CurrentUser,
    session: SessionDep,
    structure: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Formulaire d'un nouveau contact (structure proposée si indiquée)."""
    clsm = clsm_of(session, user, slug)
    values = {"organisation_id": structure} if structure else None
    return _form_page(
        request,
        user,
        clsm,
        title="Nouveau contact",
        fields=_contact_fields(session, clsm, values),
        action=f"/directory/{slug}/contacts",
        submit="Créer le contact",
    )


@router.post("/directory/{slug}/contacts", summary="Créer un contact", responses=DONE)
async def contact_create(
    request: Request, slug: Slug, user: Writer, session: SessionDep
) -> Response:
    """Un courriel déjà connu dans le CLSM est refusé."""
    clsm = clsm_of(session, user, slug)
    parsed, typed, errors = parse_form(d.ContactCreate, _lines(await _posted(request), "roles"))
    if parsed is not None:
        assert isinstance(parsed, d.ContactCreate)
        try:
            row = ops.create_contact(
                session=session, clsm=clsm, data=parsed, actor=actor_of(request, user)
            )
            return RedirectResponse(
                f"/directory/{slug}/contacts/{row.id}?fait=cree", status_code=303
            )
        except DomainError as error:
            session.rollback()
            errors = {"__root__": error.message}
    return _form_page(
        request,
        user,
        clsm,
        title="Nouveau contact",
        fields=_contact_fields(session, clsm, typed, errors, raw=True),
        action=f"/directory/{slug}/contacts",
        submit="Créer le contact",
        errors=errors,
        status=422,
    )


def _contact_page(
    request: Request,
    user: User,
    session: Session,
    clsm: Clsm,
    row: Contact,
    fields: list[FormField],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return _form_page(
        request,
        user,
        clsm,
        title=row.name,
        fields=fields,
        action=f"/directory/{clsm.slug}/contacts/{row.id}",
        submit="Enregistrer les modifications",
        version=row.version,
        errors=errors,
        status=status,
        aside={"contact": row, "done": request.query_params.get("fait", "")},
    )


@router.get(
    "/directory/{slug}/contacts/{contact_id}",
    summary="Un contact",
    response_class=HTMLResponse,
    responses=READ,
)
def contact_page(
    request: Request, slug: Slug, contact_id: RowId, user: CurrentUser, session: SessionDep
) -> Response:
    """Fiche modifiable d'un contact."""
    clsm = clsm_of(session, user, slug)
    row = ops.read_contact(
        session=session, clsm=clsm, contact_id=contact_id, actor=actor_of(request, user)
    )
    values = _values(row, d.ContactCreate)
    fields = _contact_fields(session, clsm, values)
    return _contact_page(request, user, session, clsm, row, fields)


@router.post(
    "/directory/{slug}/contacts/{contact_id}", summary="Modifier un contact", responses=DONE
)
async def contact_update(
    request: Request,
    slug: Slug,
    contact_id: RowId,
    user: Writer,
    session: SessionDep,
    version: Version,
) -> Response:
    """Enregistre les modifications (auditées) ; page périmée : 409."""
    clsm = clsm_of(session, user, slug)
    row = d.get_contact(session, _id(clsm), contact_id)
    parsed, typed, errors = parse_form(d.ContactCreate, _lines(await _posted(request), "roles"))
    if parsed is not None:
        assert isinstance(parsed, d.ContactCreate)
        try:
            ops.update_contact(
                session=session,
                clsm=clsm,
                contact_id=contact_id,
                data=parsed,
                version=version,
                actor=actor_of(request, user),
            )
            return RedirectResponse(
                f"/directory/{slug}/contacts/{row.id}?fait=modifie", status_code=303
            )
        except StaleUpdate:
            raise
        except DomainError as error:
            session.rollback()
            errors = {"__root__": error.message}
    fields = _contact_fields(session, clsm, typed, errors, raw=True)
    return _contact_page(request, user, session, clsm, row, fields, errors, 422)


@router.post(
    "/directory/{slug}/contacts/{contact_id}/active",
    summary="Désactiver ou réactiver un contact",
    responses=DONE,
)
def contact_active(
    request: Request,
    slug: Slug,
    contact_id: RowId,
    user: Writer,
    session: SessionDep,
    version: Version,
    active: Annotated[bool, Form()],
) -> Response:
    """Un contact désactivé n'est plus proposé ; son historique reste."""
    row = ops.set_contact_active(
        session=session,
        clsm=clsm_of(session, user, slug),
        contact_id=contact_id,
        active=active,
        version=version,
        actor=actor_of(request, user),
    )
    done = "reactive" if active else "desactive"
    return RedirectResponse(f"/directory/{slug}/contacts/{row.id}?fait={done}", status_code=303)
