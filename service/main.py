"""The FastAPI application: partner links, coordinator and auditor pages, the API."""

from __future__ import annotations

import gc
import logging
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import models.catalogue  # noqa: F401  (every table)
from models.core.settings import Environment, get_settings
from service.deps import FailureLimiter, current_user, optional_user, templates
from service.errors import install_error_handlers, problem_response
from service.gateway import PREFIX as PREFECT_PREFIX

MAX_BODY_BYTES = 256 * 1024

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# Swagger UI is served by the service itself (no CDN); it sets inline styles on its nodes.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; worker-src 'self' blob:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
DOCS_PATHS = ("/docs",)
# The Prefect UI (served through the gateway) styles its nodes inline, draws in canvases
# and workers, and keeps live sockets to the gateway.
PREFECT_UI_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; script-src 'self'; worker-src 'self' blob:; "
    "connect-src 'self' {sockets}; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)
STATIC_PATHS = ("/static/", "/docs/assets/")


class SecurityHeaders:
    """Security headers on every response; bodies over the limit refused with 413."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body
        base = get_settings().base_url
        self.prefect_csp = PREFECT_UI_CSP.format(sockets=base.replace("http", "ws", 1))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        csp = (
            DOCS_CSP
            if path.startswith(DOCS_PATHS)
            else self.prefect_csp
            if path.startswith(PREFECT_PREFIX + "/")
            else CSP
        )

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                headers = list(message.get("headers", []))
                if not path.startswith(STATIC_PATHS):
                    # pages and API answers may show personal data: no cache keeps them
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*headers, *extra]
            await send(message)

        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, receive, secured_send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, secured_send)
        except BodyTooLarge:
            await self._too_large(scope, receive, secured_send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request

        response = problem_response(Request(scope, receive), 413)
        response.headers["connection"] = "close"
        await response(scope, receive, send)


class BodyTooLarge(Exception):
    pass


_LINK_PATH = re.compile(r"/r/[^/\s?#\"']+")


def redact_links(text: str) -> str:
    """A partner link's token is its holder's key: logs show `/r/<redacted>`."""
    return _LINK_PATH.sub("/r/<redacted>", text)


class RedactLinkTokens(logging.Filter):
    """Rewrites the records of a logger (the access log) so that no link token is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_links(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_links(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


TOKEN_LOGGERS = ("uvicorn.access", "uvicorn.error", "httpx", "clsm.service")


def _redact_logs() -> None:
    for name in TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactLinkTokens) for f in logger.filters):
            logger.addFilter(RedactLinkTokens())


def create_app() -> FastAPI:
    from service import gateway
    from service.routes import (
        abuse,
        api,
        auth,
        cases,
        dev,
        directory,
        directory_api,
        directory_conventions,
        directory_import,
        directory_people,
        directory_settings,
        history,
        links,
        reports,
        saisine_pages,
        sessions,
    )

    settings = get_settings()
    _redact_logs()
    app = FastAPI(
        title="CLSM — moteur de processus",
        description=(
            "Étapes des partenaires par lien, dossiers et historiques pour la coordination "
            "et l'audit, API authentifiée par jeton (`Authorization: Bearer …`). Les erreurs "
            "de l'API sont des « problem details » (RFC 9457)."
        ),
        version="0.1.0",
        docs_url=None,  # served below from local assets
        redoc_url=None,
        openapi_url=None,  # served below: behind login in production
        openapi_tags=[
            {"name": "liens", "description": "Étapes des partenaires, par lien à usage unique"},
            {"name": "comptes", "description": "Connexion des coordinations, audits, admins"},
            {"name": "dossiers", "description": "Liste et pages des dossiers"},
            {"name": "historique", "description": "Historique audité de chaque dossier"},
            {"name": "rapports", "description": "Bilans annuels et de session"},
            {"name": "annuaire", "description": "Structures, contacts, conventions du réseau"},
            {"name": "api", "description": "API JSON (jeton porteur)"},
            {"name": "développement", "description": "Outils hors production"},
            {"name": "système", "description": "État du service"},
        ],
    )
    app.state.base_url = settings.base_url
    app.state.limiters = {
        # unknown link tokens, per client address
        "links": FailureLimiter(limit=20, window_seconds=600, scope="links"),
        # refused answers and renewal requests, per link (a NAT shares one address)
        "link": FailureLimiter(limit=10, window_seconds=600, scope="link"),
        # wrong passwords: per address, and per account whatever the address
        "login": FailureLimiter(limit=30, window_seconds=900, scope="login"),
        "account": FailureLimiter(limit=10, window_seconds=900, scope="account"),
        # applications through a call link, per link and per address
        # a real call takes a few dozen applications (Poitiers: 24), some from one hospital
        "apply-link": FailureLimiter(limit=60, window_seconds=3600, scope="apply-link"),
        "apply-address": FailureLimiter(limit=30, window_seconds=3600, scope="apply-address"),
    }
    install_error_handlers(app)
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"
    )
    swagger_ui = str(files("swagger_ui").joinpath("static"))  # Swagger UI 5, from swagger-ui-py
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui), name="docs-assets")
    for module in (
        links,
        abuse,
        auth,
        cases,
        saisine_pages,
        sessions,
        history,
        reports,
        directory,
        directory_people,
        directory_conventions,
        directory_settings,
        directory_import,
        api,
        directory_api,
        gateway,
    ):
        app.include_router(module.router)
    if settings.env is not Environment.PRODUCTION:
        app.include_router(dev.router)

    production = settings.env is Environment.PRODUCTION
    # in production the API's map is for people with an account only
    docs_reader = current_user if production else optional_user

    reader = [Depends(docs_reader)]

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse, dependencies=reader)
    def docs(request: Request) -> Response:
        return templates.TemplateResponse(request, "docs.html", {"title": app.title})

    @app.get("/openapi.json", include_in_schema=False, dependencies=reader)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/health", tags=["système"], summary="État du service")
    def health() -> dict[str, str]:
        """Répond « ok » quand le service est prêt."""
        return {"status": "ok"}

    app.add_middleware(SecurityHeaders)
    # Everything loaded so far (modules, schemas, templates) lives as long as the service:
    # out of the collector's way, a page reading 10,000 audit rows no longer triggers full
    # collections of it (about 90 ms each, one request in five at that size).
    gc.freeze()
    return app
