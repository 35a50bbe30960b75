"""Errors as French pages for people and problem JSON (RFC 9457) for the API; no stack trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.core.errors import DomainError
from service.deps import LoginRequired, RateLimited, page_context, templates, wants_json
from service.forms import french_message

log = logging.getLogger("clsm.service")
_CODES = {status.value for status in HTTPStatus}

TITLES: dict[int, str] = {
    400: "Requête incorrecte",
    401: "Connexion nécessaire",
    403: "Accès refusé",
    404: "Page introuvable",
    405: "Méthode non autorisée",
    409: "Opération impossible",
    410: "Lien plus valable",
    413: "Envoi trop volumineux",
    422: "Données invalides",
    429: "Trop de tentatives",
    500: "Erreur interne",
}

DETAILS: dict[int, str] = {
    401: "Connectez-vous pour accéder à cette page.",
    403: "Vous n'avez pas le droit d'accéder à cette page.",
    404: "L'adresse demandée n'existe pas.",
    405: "Cette adresse ne s'utilise pas de cette manière.",
    413: "Le contenu envoyé dépasse la taille autorisée.",
    429: "Trop de tentatives en peu de temps. Patientez quelques minutes puis réessayez.",
    500: "Une erreur inattendue s'est produite. Elle a été enregistrée ; réessayez plus tard.",
}


class Problem(BaseModel):
    """Problem details (RFC 9457)."""

    type: str = Field(default="about:blank")
    title: str
    status: int
    detail: str
    errors: dict[str, str] | None = Field(default=None, description="Erreurs par champ")


def problem_response(
    request: Request,
    status: int,
    detail: str | None = None,
    *,
    errors: dict[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    title = TITLES.get(status, "Erreur")
    text = detail or DETAILS.get(status, title)
    if wants_json(request):
        body = Problem(title=title, status=status, detail=text, errors=errors)
        return JSONResponse(
            body.model_dump(exclude_none=True),
            status_code=status,
            media_type="application/problem+json",
            headers=dict(headers or {}),
        )
    return templates.TemplateResponse(
        request,
        "error.html",
        page_context(request, title=title, status=status, detail=text, errors=errors or {}),
        status_code=status,
        headers=dict(headers or {}),
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's default detail is the English phrase of the status: show ours instead
        english = HTTPStatus(exc.status_code).phrase if exc.status_code in _CODES else ""
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != english else None
        return problem_response(request, exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors: dict[str, str] = {}
        for item in exc.errors():
            location = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
            errors.setdefault(".".join(location) or "requête", french_message(item))
        summary = "; ".join(f"{k} : {v}" for k, v in errors.items())
        return problem_response(request, 422, f"Données invalides — {summary}", errors=errors)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        return problem_response(request, exc.status_code, exc.message)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if wants_json(request) or request.method != "GET":
            return problem_response(request, 401, headers={"WWW-Authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited) -> Response:
        return problem_response(request, 429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(request, 500)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI description of the problem responses of a route."""
    return {
        status: {
            "model": Problem,
            "description": TITLES.get(status, "Erreur"),
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }
