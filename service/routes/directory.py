"""Pages of the network directory: CLSMs (admins), CLSM settings, overview and structures,
with the helpers shared by the other directory pages: contacts (directory_people),
conventions (directory_conventions), cell, orientations and past yearly totals
(directory_settings), import from a spreadsheet and export (directory_import).

Coordinators and auditors see their own CLSM (auditors read only), admins every CLSM.
Forms carry the CSRF token and the version read with the page: an edit made on a page
older than the last change is refused with a 409 page (models.core.errors.StaleUpdate).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlmodel import Session, col, select

from models.core import clock
from models.core import directory as d
from models.core.enums import Role
from models.core.errors import DomainError, StaleUpdate
from models.core.people import Clsm, Organisation, User
from service import directory_ops as ops
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
        row = ops.create_structure(
            session=session,
            clsm=clsm,
            data=parsed,
            actor=actor_of(request, user),
            confirm_near=bool(posted.get("confirm_near")),
        )
    except DomainError as error:
        session.rollback()
        near = error.near if isinstance(error, d.NearDuplicate) else []
        return again({"__root__": error.message}, 409, near)
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
            ops.update_structure(
                session=session,
                clsm=clsm,
                structure_id=structure_id,
                data=parsed,
                version=version,
                actor=actor_of(request, user),
            )
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
    row = ops.set_structure_active(
        session=session,
        clsm=clsm_of(session, user, slug),
        structure_id=structure_id,
        active=active,
        version=version,
        actor=actor_of(request, user),
    )
    done = "reactivee" if active else "desactivee"
    return RedirectResponse(f"/directory/{slug}/structures/{row.id}?fait={done}", status_code=303)
