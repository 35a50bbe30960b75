"""Pages of the network directory: import from a spreadsheet (upload, preview,
confirm) and export.

Helpers, path types and responses come from service.routes.directory.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from models.core.directory import sheet, sheet_export, sheet_import
from models.core.errors import DomainError
from models.core.people import Clsm, User
from service.deps import CurrentUser, SessionDep, Writer, actor_of
from service.errors import problem_responses
from service.routes.directory import (
    DONE,
    READ,
    Slug,
    _id,
    _render,
    clsm_of,
)

router = APIRouter(tags=["annuaire"])


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
