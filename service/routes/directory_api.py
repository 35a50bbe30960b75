"""JSON API of the network directory (bearer token or session), for coordinators' tools.

The same rules as the pages: own CLSM (admins: every CLSM), auditors read only, every change
audited on the CLSM's chain, `version` checked (409 when stale), errors as problem JSON.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from models.core import clock
from models.core import directory as d
from models.core.directory import sheet, sheet_import
from models.core.people import (
    ClsmPublic,
    ContactPublic,
    Organisation,
    OrganisationPublic,
    PartnershipPublic,
)
from service import directory_ops as ops
from service.deps import CurrentUser, SessionDep, Writer, actor_of
from service.errors import problem_response, problem_responses
from service.routes.directory import RowId, Slug, clsm_of

router = APIRouter(prefix="/api/directory/{slug}", tags=["api"])

READ = problem_responses(401, 403, 404)
WRITE = problem_responses(401, 403, 404, 409, 422)


class Versioned(BaseModel):
    version: int = Field(ge=1, description="Version lue (verrou optimiste : 409 si périmée)")


class StructureUpdate(d.StructureCreate, Versioned):
    pass


class ContactUpdate(d.ContactCreate, Versioned):
    pass


class ConventionUpdate(d.ConventionCreate, Versioned):
    pass


class OrientationUpdate(d.OrientationCreate, Versioned):
    pass


class ActiveChange(Versioned):
    active: bool = Field(description="false : désactiver (retirer) ; true : réactiver")


class OrientationPublic(BaseModel):
    id: int
    code: str
    label: str
    position: int
    active: bool
    version: int


class PastTotalsPublic(BaseModel):
    year: int
    level1: int
    level2: int
    urgent: int
    note: str
    version: int


class MatchPublic(BaseModel):
    """Ce que désigne un nom saisi : une structure, ou les structures proches à proposer."""

    found: OrganisationPublic | None
    by_alias: bool
    near: list[OrganisationPublic]


class PlanLinePublic(BaseModel):
    line: int
    what: str
    label: str
    action: str
    changes: list[str]
    warning: str


class ImportReport(BaseModel):
    written: bool
    summary: str
    lines: list[PlanLinePublic]


def _org(row: Organisation) -> OrganisationPublic:
    return OrganisationPublic.model_validate(row, from_attributes=True)


class ClsmUpdate(d.ClsmSettings, Versioned):
    pass


@router.get("", summary="Paramètres du CLSM", responses=READ)
def clsm_read(slug: Slug, user: CurrentUser, session: SessionDep) -> ClsmPublic:
    """Nom, territoire, coordination, fuseau horaire, adresses d'expédition et de réponse."""
    return ClsmPublic.model_validate(clsm_of(session, user, slug), from_attributes=True)


@router.put("", summary="Modifier les paramètres du CLSM", responses=WRITE)
def clsm_update(
    request: Request, slug: Slug, data: ClsmUpdate, user: Writer, session: SessionDep
) -> ClsmPublic:
    """Modification auditée ; `version` périmée : 409. L'identifiant ne change pas."""
    clsm = clsm_of(session, user, slug)
    d.update_clsm(
        session=session,
        row=clsm,
        data=d.ClsmSettings.model_validate(data.model_dump(exclude={"version"})),
        version=data.version,
        actor=actor_of(request, user),
    )
    session.commit()
    return ClsmPublic.model_validate(clsm, from_attributes=True)


# -- structures ----------------------------------------------------------------------------


@router.get("/structures", summary="Structures du réseau", responses=READ)
def structure_list(
    slug: Slug,
    user: CurrentUser,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> list[OrganisationPublic]:
    """Structures du CLSM, désactivées comprises ; `q` cherche dans les noms et alias."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    return [_org(o) for o in d.structures(session, clsm.id, search=q)]


@router.get("/structures/match", summary="Reconnaître un nom de structure", responses=READ)
def structure_match(
    slug: Slug,
    user: CurrentUser,
    session: SessionDep,
    name: Annotated[str, Query(min_length=1, max_length=200)],
) -> MatchPublic:
    """Casse, accents, espaces, tirets, apostrophes et alias ignorés ; sinon les noms proches."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    match = d.match_structure(session=session, clsm_id=clsm.id, name=name)
    return MatchPublic(
        found=_org(match.found) if match.found else None,
        by_alias=match.by_alias,
        near=[_org(o) for o in match.near],
    )


@router.post("/structures", summary="Créer une structure", responses=WRITE)
def structure_create(
    request: Request,
    slug: Slug,
    data: d.StructureCreate,
    user: Writer,
    session: SessionDep,
    confirm_near: Annotated[bool, Query(description="Créer malgré un nom proche")] = False,
) -> OrganisationPublic:
    """Un nom proche d'une structure existante est refusé (409) sauf `confirm_near=true`."""
    row = ops.create_structure(
        session=session,
        clsm=clsm_of(session, user, slug),
        data=data,
        actor=actor_of(request, user),
        confirm_near=confirm_near,
    )
    return _org(row)


@router.put("/structures/{structure_id}", summary="Modifier une structure", responses=WRITE)
def structure_update(
    request: Request,
    slug: Slug,
    structure_id: RowId,
    data: StructureUpdate,
    user: Writer,
    session: SessionDep,
) -> OrganisationPublic:
    """Modification auditée (avant → après) ; `version` périmée : 409."""
    row = ops.update_structure(
        session=session,
        clsm=clsm_of(session, user, slug),
        structure_id=structure_id,
        data=d.StructureCreate.model_validate(data.model_dump(exclude={"version"})),
        version=data.version,
        actor=actor_of(request, user),
    )
    return _org(row)


@router.post(
    "/structures/{structure_id}/active",
    summary="Désactiver ou réactiver une structure",
    responses=WRITE,
)
def structure_active(
    request: Request,
    slug: Slug,
    structure_id: RowId,
    data: ActiveChange,
    user: Writer,
    session: SessionDep,
) -> OrganisationPublic:
    """Désactivation (jamais de suppression) ou réactivation, auditée."""
    row = ops.set_structure_active(
        session=session,
        clsm=clsm_of(session, user, slug),
        structure_id=structure_id,
        active=data.active,
        version=data.version,
        actor=actor_of(request, user),
    )
    return _org(row)


# -- contacts ------------------------------------------------------------------------------


@router.get("/contacts", summary="Contacts du réseau", responses=READ)
def contact_list(
    slug: Slug,
    user: CurrentUser,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> list[ContactPublic]:
    """Contacts du CLSM ; `q` cherche dans le nom, le courriel et la structure."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    return [
        ContactPublic.model_validate(c, from_attributes=True)
        for c, _o in d.contacts(session, clsm.id, search=q)
    ]


@router.post("/contacts", summary="Créer un contact", responses=WRITE)
def contact_create(
    request: Request, slug: Slug, data: d.ContactCreate, user: Writer, session: SessionDep
) -> ContactPublic:
    """Un courriel déjà connu dans le CLSM est refusé (409)."""
    row = ops.create_contact(
        session=session, clsm=clsm_of(session, user, slug), data=data, actor=actor_of(request, user)
    )
    return ContactPublic.model_validate(row, from_attributes=True)


@router.put("/contacts/{contact_id}", summary="Modifier un contact", responses=WRITE)
def contact_update(
    request: Request,
    slug: Slug,
    contact_id: RowId,
    data: ContactUpdate,
    user: Writer,
    session: SessionDep,
) -> ContactPublic:
    """Modification auditée ; `version` périmée : 409."""
    row = ops.update_contact(
        session=session,
        clsm=clsm_of(session, user, slug),
        contact_id=contact_id,
        data=d.ContactCreate.model_validate(data.model_dump(exclude={"version"})),
        version=data.version,
        actor=actor_of(request, user),
    )
    return ContactPublic.model_validate(row, from_attributes=True)


@router.post(
    "/contacts/{contact_id}/active", summary="Désactiver ou réactiver un contact", responses=WRITE
)
def contact_active(
    request: Request,
    slug: Slug,
    contact_id: RowId,
    data: ActiveChange,
    user: Writer,
    session: SessionDep,
) -> ContactPublic:
    """Désactivation ou réactivation d'un contact, auditée."""
    row = ops.set_contact_active(
        session=session,
        clsm=clsm_of(session, user, slug),
        contact_id=contact_id,
        active=data.active,
        version=data.version,
        actor=actor_of(request, user),
    )
    return ContactPublic.model_validate(row, from_attributes=True)


# -- conventions ---------------------------------------------------------------------------


@router.get("/conventions", summary="Conventions bilatérales", responses=READ)
def convention_list(
    slug: Slug,
    user: CurrentUser,
    session: SessionDep,
    expiring: Annotated[
        bool, Query(description="Seulement celles qui expirent sous 60 jours")
    ] = False,
) -> list[PartnershipPublic]:
    """Conventions du CLSM, ou seulement celles qui expirent sous 60 jours."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    rows = (
        d.expiring_conventions(session, clsm.id, clock.now(session).date())
        if expiring
        else d.conventions(session, clsm.id)
    )
    return [PartnershipPublic.model_validate(p, from_attributes=True) for p, _o in rows]


@router.post("/conventions", summary="Enregistrer une convention", responses=WRITE)
def convention_create(
    request: Request, slug: Slug, data: d.ConventionCreate, user: Writer, session: SessionDep
) -> PartnershipPublic:
    """Convention bilatérale avec une structure du CLSM, auditée."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    row = d.create_convention(
        session=session, clsm_id=clsm.id, data=data, actor=actor_of(request, user)
    )
    session.commit()
    return PartnershipPublic.model_validate(row, from_attributes=True)


@router.put("/conventions/{convention_id}", summary="Modifier une convention", responses=WRITE)
def convention_update(
    request: Request,
    slug: Slug,
    convention_id: RowId,
    data: ConventionUpdate,
    user: Writer,
    session: SessionDep,
) -> PartnershipPublic:
    """Modification auditée ; `version` périmée : 409."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    row = d.get_convention(session, clsm.id, convention_id)
    d.update_convention(
        session=session,
        clsm_id=clsm.id,
        row=row,
        data=d.ConventionCreate.model_validate(data.model_dump(exclude={"version"})),
        version=data.version,
        actor=actor_of(request, user),
    )
    session.commit()
    return PartnershipPublic.model_validate(row, from_attributes=True)


# -- orientations and past totals ----------------------------------------------------------


@router.get("/orientations", summary="Catalogue des orientations", responses=READ)
def orientation_list(
    slug: Slug,
    user: CurrentUser,
    session: SessionDep,
    retired: Annotated[bool, Query(description="Inclure les orientations retirées")] = False,
) -> list[OrientationPublic]:
    """Catalogue des orientations, dans l'ordre."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    entries = d.orientation_catalogue(session, clsm.id, include_retired=retired)
    return [OrientationPublic.model_validate(e, from_attributes=True) for e in entries]


@router.post("/orientations", summary="Ajouter une orientation", responses=WRITE)
def orientation_add(
    request: Request, slug: Slug, data: d.OrientationCreate, user: Writer, session: SessionDep
) -> OrientationPublic:
    """Nouvelle orientation à la fin du catalogue."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    row = d.add_orientation(
        session=session, clsm_id=clsm.id, data=data, actor=actor_of(request, user)
    )
    session.commit()
    return OrientationPublic.model_validate(row, from_attributes=True)


@router.put("/orientations/{entry_id}", summary="Renommer une orientation", responses=WRITE)
def orientation_rename(
    request: Request,
    slug: Slug,
    entry_id: RowId,
    data: OrientationUpdate,
    user: Writer,
    session: SessionDep,
) -> OrientationPublic:
    """Nouveau libellé pour les prochains dossiers ; les anciens gardent le leur."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    row = d.get_orientation(session, clsm.id, entry_id)
    d.rename_orientation(
        session=session,
        row=row,
        data=d.OrientationCreate(label=data.label),
        version=data.version,
        actor=actor_of(request, user),
    )
    session.commit()
    return OrientationPublic.model_validate(row, from_attributes=True)


@router.post(
    "/orientations/{entry_id}/active",
    summary="Retirer ou rétablir une orientation",
    responses=WRITE,
)
def orientation_active(
    request: Request,
    slug: Slug,
    entry_id: RowId,
    data: ActiveChange,
    user: Writer,
    session: SessionDep,
) -> OrientationPublic:
    """Retirer ou rétablir une orientation."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    row = d.get_orientation(session, clsm.id, entry_id)
    d.set_orientation_active(
        session=session,
        row=row,
        active=data.active,
        version=data.version,
        actor=actor_of(request, user),
    )
    session.commit()
    return OrientationPublic.model_validate(row, from_attributes=True)


@router.get("/totals", summary="Activité des années passées", responses=READ)
def totals_list(slug: Slug, user: CurrentUser, session: SessionDep) -> list[PastTotalsPublic]:
    """Totaux annuels des années passées (niveau 1, niveau 2, urgences)."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    return [
        PastTotalsPublic.model_validate(t, from_attributes=True)
        for t in d.past_totals(session, clsm.id)
    ]


@router.put("/totals", summary="Saisir ou corriger une année", responses=WRITE)
def totals_set(
    request: Request,
    slug: Slug,
    data: d.PastTotalsCreate,
    user: Writer,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1, description="Version lue (année existante)")] = None,
) -> PastTotalsPublic:
    """Saisit ou corrige une année ; `version` vérifiée pour une année existante."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    row = d.set_past_totals(
        session=session, clsm_id=clsm.id, data=data, version=version, actor=actor_of(request, user)
    )
    session.commit()
    return PastTotalsPublic.model_validate(row, from_attributes=True)


# -- import --------------------------------------------------------------------------------


@router.post(
    "/import",
    summary="Importer un tableur (tout ou rien)",
    response_model=ImportReport,
    responses=WRITE,
)
async def import_sheet(
    request: Request,
    slug: Slug,
    user: Writer,
    session: SessionDep,
    file: Annotated[UploadFile, File(description=".csv, .xlsx ou .ods")],
    dry_run: Annotated[bool, Query(description="Aperçu seulement, rien n'est écrit")] = False,
) -> Response:
    """Une ligne fautive refuse tout le fichier : 422, un message par ligne dans `errors`."""
    clsm = clsm_of(session, user, slug)
    assert clsm.id is not None
    filename = file.filename or "annuaire.csv"
    content = await file.read()
    try:
        plan = sheet_import.plan_import(
            session=session, clsm_id=clsm.id, filename=filename, content=content
        )
    except sheet.ImportRefused as refused:
        errors = {
            p.split(" : ", 1)[0] if p.startswith("Ligne ") else "fichier": p.split(" : ", 1)[-1]
            for p in refused.problems
        }
        return problem_response(request, 422, refused.message, errors=errors)
    if not dry_run:
        sheet_import.apply_plan(
            session=session,
            clsm_id=clsm.id,
            plan=plan,
            actor=actor_of(request, user),
            filename=filename,
        )
        session.commit()
    report = ImportReport(
        written=not dry_run,
        summary=plan.summary,
        lines=[
            PlanLinePublic(
                line=p.line,
                what=p.what,
                label=p.label,
                action=p.action,
                changes=p.changes,
                warning=p.warning,
            )
            for p in plan.lines
        ],
    )
    return JSONResponse(report.model_dump())
