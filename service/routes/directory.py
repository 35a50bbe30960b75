"""Pages of the network directory: CLSMs (admins), structures, contacts, conventions, cell,
orientation catalogue, past yearly totals, import from a spreadsheet and export.

Coordinators and auditors see their own CLSM (auditors read only), admins every CLSM.
Forms carry the CSRF token and the version read with the page: an edit made on a page
older than the last change is refused with a 409 page (models.core.errors.StaleUpdate).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlmodel import Session, col, select

from models.core import clock
from models.core import directory as d
from models.core.directory import sheet, sheet_export, sheet_import
from models.core.enums import Role
from models.core.errors import DomainError, StaleUpdate
from models.core.people import Clsm, Contact, Organisation, User
from service.deps import CurrentUser, SessionDep, Writer, actor_of, page_context, templates
from service.errors import problem_responses
from service.forms import FormField, form_fields, parse_form

router = APIRouter(tags=["annuaire"])

Slug = Annotated[str, Path(min_length=2, max_length=40, description="Identifiant du CLSM")]
RowId = Annotated[int, Path(ge=1)]
Version = Annotated[int, Form(ge=1, description="Version lue avec la page")]
SEARCH = Annotated[str, Query(max_length=200, description="Recherche (nom, alias, courriel)")]
READ = problem_responses(401, 403, 404)
DONE: dict[int | str, dict[str, Any]] = {
    303: {"description": "Fait"},
    **problem_responses(401, 403, 404, 409),
}


def clsm_of(session: Session, user: User, slug: str) -> Clsm:
    """The CLSM of the address, if the user may see it (admins: every CLSM)."""
    found = d.clsm_by_slug(session, slug)
    if user.role is not Role.ADMIN and user.clsm_id != found.id:
        raise HTTPException(403, "Cet annuaire est celui d'un autre CLSM.")
    return found


def _id(clsm: Clsm) -> int:
    assert clsm.id is not None
    return clsm.id


async def _posted(request: Request) -> dict[str, list[str]]:
    form = await request.form()
    return {key: [str(v) for v in form.getlist(key)] for key in form}


def _render(
    request: Request, user: User, template: str, status: int = 200, **extra: Any
) -> Response:
    return templates.TemplateResponse(
        request, template, page_context(request, user, **extra), status_code=status
    )


def _form_page(
    request: Request,
    user: User,
    clsm: Clsm,
    *,
    title: str,
    fields: list[FormField],
    action: str,
    submit: str,
    version: int | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    near: list[Any] | None = None,
    aside: dict[str, Any] | None = None,
) -> Response:
    return _render(
        request,
        user,
        "directory_form.html",
        status,
        title=title,
        clsm=clsm,
        fields=fields,
        action=action,
        submit=submit,
        version=version,
        errors=errors or {},
        near=near or [],
        aside=aside or {},
    )


def _structure_options(session: Session, clsm: Clsm) -> list[tuple[str, str]]:
    return [(str(o.id), o.name) for o in d.structures(session, _id(clsm), include_inactive=False)]


def _with_options(
    fields: list[FormField], options: dict[str, list[tuple[str, str]]]
) -> list[FormField]:
    for item in fields:
        if item.name in options:
            item.options = options[item.name]
            item.widget = "checkboxes" if item.name == "roles" else "select"
            if item.widget == "checkboxes" and not isinstance(item.value, list):
                item.value = [v for v in str(item.value).splitlines() if v]
    return fields


def _lines(data: dict[str, list[str]], name: str) -> dict[str, list[str]]:
    """A multiple choice posted as several values, as the generic parser reads a list."""
    return {**data, name: ["\n".join(data.get(name, []))]}


def _values(row: Any, model: type[BaseModel]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in model.model_fields if hasattr(row, name)}


ROLE_OPTIONS = [(role.value, label) for role, label in d.ROLE_LABELS.items()]


# -- CLSMs ---------------------------------------------------------------------------------


@router.get("/directory", summary="Annuaire : accueil", response_class=HTMLResponse, responses=READ)
def directory_home(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """La coordination va à l'annuaire de son CLSM ; un admin choisit un CLSM ou en crée un."""
    if user.role is not Role.ADMIN:
        if user.clsm_id is None:
            raise HTTPException(403, "Votre compte n'est rattaché à aucun CLSM.")
        own = session.get(Clsm, user.clsm_id)
        assert own is not None
        return RedirectResponse(f"/directory/{own.slug}", status_code=303)
    clsms = list(session.exec(select(Clsm).order_by(col(Clsm.name))))
    return _render(request, user, "directory_home.html", title="Annuaires des CLSM", clsms=clsms)


@router.get(
    "/directory/clsm/new",
    summary="Créer un CLSM (admin)",
    response_class=HTMLResponse,
    responses=READ,
)
def clsm_form(request: Request, user: CurrentUser) -> Response:
    """Formulaire de création d'un CLSM (administration)."""
    _admin(user)
    return _clsm_page(request, user, form_fields(d.ClsmCreate))


def _admin(user: User) -> None:
    if user.role is not Role.ADMIN:
        raise HTTPException(403, "Seule l'administration crée un CLSM.")


def _clsm_page(
    request: Request,
    user: User,
    fields: list[FormField],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return _render(
        request,
        user,
        "directory_form.html",
        status,
        title="Nouveau CLSM",
        clsm=None,
        fields=fields,
        action="/directory/clsm",
        submit="Créer le CLSM",
        version=None,
        errors=errors or {},
        near=[],
        aside={},
    )


@router.post("/directory/clsm", summary="Créer un CLSM (admin)", responses=DONE)
async def clsm_create(request: Request, user: Writer, session: SessionDep) -> Response:
    """Crée le CLSM avec le catalogue d'orientations par défaut ; création auditée."""
    _admin(user)
    parsed, typed, errors = parse_form(d.ClsmCreate, await _posted(request))
    if parsed is None:
        fields = form_fields(d.ClsmCreate, typed, errors, raw=True)
        return _clsm_page(request, user, fields, errors, 422)
    assert isinstance(parsed, d.ClsmCreate)
    try:
        row = d.create_clsm(session=session, data=parsed, actor=actor_of(request, user))
    except DomainError as error:
        session.rollback()
        errors = {"__root__": error.message}
        fields = form_fields(d.ClsmCreate, typed, errors, raw=True)
        return _clsm_page(request, user, fields, errors, error.status_code)
    session.commit()
    return RedirectResponse(f"/directory/{row.slug}", status_code=303)


@router.get(
    "/directory/{slug}/settings",
    summary="Paramètres du CLSM",
    response_class=HTMLResponse,
    responses=READ,
)
def settings_page(request: Request, slug: Slug, user: CurrentUser, session: SessionDep) -> Response:
    """Nom, territoire, coordination, fuseau horaire, adresses d'expédition et de réponse."""
    clsm = clsm_of(session, user, slug)
    values = _values(clsm, d.ClsmSettings)
    return _settings_page(request, user, clsm, form_fields(d.ClsmSettings, values))


def _settings_page(
    request: Request,
    user: User,
    clsm: Clsm,
    fields: list[FormField],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return _form_page(
        request,
        user,
        clsm,
        title=f"Paramètres — {clsm.name}",
        fields=fields,
        action=f"/directory/{clsm.slug}/settings",
        submit="Enregistrer les paramètres",
        version=clsm.version,
        errors=errors,
        status=status,
        aside={"done": request.query_params.get("fait", "")},
    )


@router.post(
    "/directory/{slug}/settings", summary="Modifier les paramètres du CLSM", responses=DONE
)
async def settings_update(
    request: Request, slug: Slug, user: Writer, session: SessionDep, version: Version
) -> Response:
    """Modification auditée sur la chaîne du CLSM ; page périmée : 409."""
    clsm = clsm_of(session, user, slug)
    parsed, typed, errors = parse_form(d.ClsmSettings, await _posted(request))
    if parsed is None:
        fields = form_fields(d.ClsmSettings, typed, errors, raw=True)
        return _settings_page(request, user, clsm, fields, errors, 422)
    assert isinstance(parsed, d.ClsmSettings)
    d.update_clsm(
        session=session, row=clsm, data=parsed, version=version, actor=actor_of(request, user)
    )
    session.commit()
    return RedirectResponse(f"/directory/{slug}/settings?fait=modifie", status_code=303)


# -- overview and structures ---------------------------------------------------------------


@router.get(
    "/directory/{slug}",
    summary="Annuaire d'un CLSM : structures",
    response_class=HTMLResponse,
    responses=READ,
)
def overview(
    request: Request, slug: Slug, user: CurrentUser, session: SessionDep, q: SEARCH = ""
) -> Response:
    """Structures (recherche par nom, alias, nom court) et conventions qui expirent bientôt."""
    clsm = clsm_of(session, user, slug)
    today = clock.now(session).date()
    return _render(
        request,
        user,
        "directory_overview.html",
        title=f"Annuaire — {clsm.name}",
        clsm=clsm,
        q=q,
        structures=d.structures(session, _id(clsm), search=q),
        expiring=d.expiring_conventions(session, _id(clsm), today),
        kinds=d.KIND_LABELS,
        today=today,
        done=request.query_params.get("fait", ""),
    )


@router.get(
    "/directory/{slug}/structures/new",
    summary="Nouvelle structure",
    response_class=HTMLResponse,
    responses=READ,
)
def structure_new(request: Request, slug: Slug, user: CurrentUser, session: SessionDep) -> Response:
    """Formulaire d'une nouvelle structure du réseau."""
    clsm = clsm_of(session, user, slug)
    return _form_page(
        request,
        user,
        clsm,
        title="Nouvelle structure",
        fields=form_fields(d.StructureCreate),
        action=f"/directory/{slug}/structures",
        submit="Créer la structure",
    )


@router.post("/directory/{slug}/structures", summary="Créer une structure", responses=DONE)
async def structure_create(
    request: Request, slug: Slug, user: Writer, session: SessionDep
) -> Response:
    """Un nom proche d'une structure existante est proposé et doit être confirmé."""
    clsm = clsm_of(session, user, slug)
    posted = await _posted(request)
    parsed, typed, errors = parse_form(d.StructureCreate, posted)

    def again(errors: dict[str, str], status: int, near: list[Organisation]) -> Response:
        return _form_page(
            request,
            user,
            clsm,
            title="Nouvelle structure",
            fields=form_fields(d.StructureCreate, typed, errors, raw=True),
            action=f"/directory/{slug}/structures",
            submit="Créer la structure",
            errors=errors,
            status=status,
            near=near,
        )

    if parsed is None:
        return again(errors, 422, [])
    assert isinstance(parsed, d.StructureCreate)
    try:
        row = d.create_structure(
            session=session,
            clsm_id=_id(clsm),
            data=parsed,
            actor=actor_of(request, user),
            confirm_near=bool(posted.get("confirm_near")),
        )
    except DomainError as error:
        session.rollback()
        near = error.near if isinstance(error, d.NearDuplicate) else []
        return again({"__root__": error.message}, 409, near)
    session.commit()
    return RedirectResponse(f"/directory/{slug}/structures/{row.id}?fait=cree", status_code=303)


def _structure_page(
    request: Request,
    user: User,
    session: Session,
    clsm: Clsm,
    row: Organisation,
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
        action=f"/directory/{clsm.slug}/structures/{row.id}",
        submit="Enregistrer les modifications",
        version=row.version,
        errors=errors,
        status=status,
        aside={
            "structure": row,
            "contacts": d.contacts(session, _id(clsm), structure_id=row.id),
            "conventions": d.conventions(session, _id(clsm), row.id),
            "done": request.query_params.get("fait", ""),
        },
    )


@router.get(
    "/directory/{slug}/structures/{structure_id}",
    summary="Une structure",
    response_class=HTMLResponse,
    responses=READ,
)
def structure_page(
    request: Request, slug: Slug, structure_id: RowId, user: CurrentUser, session: SessionDep
) -> Response:
    """Fiche modifiable d'une structure, avec ses contacts et ses conventions."""
    clsm = clsm_of(session, user, slug)
    row = d.get_structure(session, _id(clsm), structure_id)
    values = _values(row, d.StructureCreate)
    values["kind"] = row.kind or None
    fields = form_fields(d.StructureCreate, values)
    return _structure_page(request, user, session, clsm, row, fields)


@router.post(
    "/directory/{slug}/structures/{structure_id}", summary="Modifier une structure", responses=DONE
)
async def structure_update(
    request: Request,
    slug: Slug,
    structure_id: RowId,
    user: Writer,
    session: SessionDep,
    version: Version,
) -> Response:
    """Enregistre les modifications (auditées, avant → après) ; page périmée : 409."""
    clsm = clsm_of(session, user, slug)
    row = d.get_structure(session, _id(clsm), structure_id)
    parsed, typed, errors = parse_form(d.StructureCreate, await _posted(request))
    if parsed is not None:
        assert isinstance(parsed, d.StructureCreate)
        try:
            d.update_structure(
                session=session,
                row=row,
                data=parsed,
                version=version,
                actor=actor_of(request, user),
            )
            session.commit()
            return RedirectResponse(
                f"/directory/{slug}/structures/{row.id}?fait=modifie", status_code=303
            )
        except StaleUpdate:
            raise
        except DomainError as error:
            session.rollback()
            errors = {"__root__": error.message}
    fields = form_fields(d.StructureCreate, typed, errors, raw=True)
    return _structure_page(request, user, session, clsm, row, fields, errors, 422)


@router.post(
    "/directory/{slug}/structures/{structure_id}/active",
    summary="Désactiver ou réactiver une structure",
    responses=DONE,
)
def structure_active(
    request: Request,
    slug: Slug,
    structure_id: RowId,
    user: Writer,
    session: SessionDep,
    version: Version,
    active: Annotated[bool, Form()],
) -> Response:
    """Une structure désactivée sort des choix proposés ; son historique reste."""
    clsm = clsm_of(session, user, slug)
    row = d.get_structure(session, _id(clsm), structure_id)
    d.set_structure_active(
        session=session, row=row, active=active, version=version, actor=actor_of(request, user)
    )
    session.commit()
    done = "reactivee" if active else "desactivee"
    return RedirectResponse(f"/directory/{slug}/structures/{row.id}?fait={done}", status_code=303)


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
            row = d.create_contact(
                session=session, clsm_id=_id(clsm), data=parsed, actor=actor_of(request, user)
            )
            session.commit()
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
    row = d.get_contact(session, _id(clsm), contact_id)
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
            d.update_contact(
                session=session,
                clsm_id=_id(clsm),
                row=row,
                data=parsed,
                version=version,
                actor=actor_of(request, user),
            )
            session.commit()
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
    clsm = clsm_of(session, user, slug)
    row = d.get_contact(session, _id(clsm), contact_id)
    d.set_contact_active(
        session=session,
        clsm_id=_id(clsm),
        row=row,
        active=active,
        version=version,
        actor=actor_of(request, user),
    )
    session.commit()
    done = "reactive" if active else "desactive"
    return RedirectResponse(f"/directory/{slug}/contacts/{row.id}?fait={done}", status_code=303)


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


# -- import and export ---------------------------------------------------------------------


@router.get(
    "/directory/{slug}/import",
    summary="Importer un tableur",
    response_class=HTMLResponse,
    responses=READ,
)
def import_form(request: Request, slug: Slug, user: CurrentUser, session: SessionDep) -> Response:
    """Formulaire d'envoi d'un tableur (.csv, .xlsx, .ods)."""
    clsm = clsm_of(session, user, slug)
    return _render(
        request, user, "directory_import.html", title="Importer l'annuaire", clsm=clsm, plan=None
    )


@router.post("/directory/{slug}/import", summary="Aperçu d'un import", responses=DONE)
async def import_preview(
    request: Request, slug: Slug, user: Writer, session: SessionDep
) -> Response:
    """Lit le fichier et montre ce qui sera créé, modifié ou laissé tel quel ; rien n'est
    enregistré avant la confirmation."""
    clsm = clsm_of(session, user, slug)
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return _import_refused(request, user, clsm, ["Choisissez un fichier à importer."])
    content = await upload.read()
    try:
        plan = sheet_import.plan_import(
            session=session, clsm_id=_id(clsm), filename=upload.filename, content=content
        )
    except sheet.ImportRefused as refused:
        return _import_refused(request, user, clsm, refused.problems)
    return _render(
        request,
        user,
        "directory_import.html",
        title="Aperçu de l'import",
        clsm=clsm,
        plan=plan,
        filename=upload.filename,
        content=base64.b64encode(content).decode(),
    )


def _import_refused(request: Request, user: User, clsm: Clsm, problems: list[str]) -> Response:
    return _render(
        request,
        user,
        "directory_import.html",
        422,
        title="Import refusé",
        clsm=clsm,
        plan=None,
        problems=problems,
    )


@router.post("/directory/{slug}/import/confirm", summary="Confirmer un import", responses=DONE)
def import_confirm(
    request: Request,
    slug: Slug,
    user: Writer,
    session: SessionDep,
    filename: Annotated[str, Form(max_length=255)],
    content: Annotated[str, Form()],
    fingerprint: Annotated[str, Form(max_length=64)],
) -> Response:
    """Enregistre l'import tel qu'il a été montré ; si l'annuaire a changé entre-temps, il
    faut relire l'aperçu (409)."""
    clsm = clsm_of(session, user, slug)
    try:
        raw = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "Fichier transmis illisible : recommencez l'import.") from None
    try:
        plan = sheet_import.plan_import(
            session=session, clsm_id=_id(clsm), filename=filename, content=raw
        )
    except sheet.ImportRefused as refused:
        return _import_refused(request, user, clsm, refused.problems)
    if plan.fingerprint != fingerprint:
        raise DomainError(
            "L'annuaire a été modifié depuis l'aperçu : relancez l'import pour voir le nouvel "
            "aperçu avant de confirmer."
        )
    sheet_import.apply_plan(
        session=session,
        clsm_id=_id(clsm),
        plan=plan,
        actor=actor_of(request, user),
        filename=filename,
    )
    session.commit()
    return RedirectResponse(f"/directory/{slug}?fait=import", status_code=303)


EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get(
    "/directory/{slug}/export.{fmt}",
    summary="Exporter l'annuaire (csv ou xlsx)",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in EXPORT_TYPES.values()}},
        **problem_responses(401, 403, 404),
    },
)
def export_file(
    request: Request, slug: Slug, fmt: str, user: CurrentUser, session: SessionDep
) -> Response:
    """Les colonnes de l'import : réimporter le fichier ne change rien. L'export est audité."""
    if fmt not in EXPORT_TYPES:
        raise HTTPException(404, "Formats d'export : .csv ou .xlsx.")
    clsm = clsm_of(session, user, slug)
    content = sheet_export.export(
        session=session, clsm_id=_id(clsm), fmt=fmt, actor=actor_of(request, user)
    )
    session.commit()
    return Response(
        content,
        media_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="annuaire-{slug}.{fmt}"'},
    )
