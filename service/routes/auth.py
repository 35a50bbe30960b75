"""Login and logout of coordinators, auditors and admins (session cookie)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from models.core.people import User
from service.deps import (
    SessionDep,
    check_csrf,
    client_ip,
    limiter,
    optional_user,
    page_context,
    templates,
)
from service.errors import problem_responses
from service.security import SESSION_COOKIE, SESSION_MAX_AGE, new_session_cookie, verify_password

router = APIRouter(tags=["comptes"])


def _safe_next(target: str) -> str:
    """Only local paths: never redirect to another site after login."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/cases"


def _login_page(request: Request, next_: str, email: str = "", error: str = "") -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        page_context(request, title="Connexion", next=_safe_next(next_), email=email, error=error),
        status_code=401 if error else 200,
    )


@router.get("/login", response_class=HTMLResponse, summary="Page de connexion")
def login_form(request: Request, next: str = "/cases") -> Response:
    """Formulaire de connexion (adresse électronique et mot de passe)."""
    return _login_page(request, next)


@router.post(
    "/login",
    response_class=HTMLResponse,
    summary="Se connecter",
    responses={303: {"description": "Connecté : vers la page demandée"}, **problem_responses(429)},
)
def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/cases",
) -> Response:
    """Vérifie le mot de passe (argon2) ; les échecs répétés sont limités par adresse IP."""
    key = client_ip(request)
    limiter(request, "login").check(key)
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.active or not verify_password(user.password_hash, password):
        limiter(request, "login").fail(key)
        return _login_page(request, next, email, "Adresse électronique ou mot de passe incorrect.")
    assert user.id is not None
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        new_session_cookie(user.id),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=str(request.app.state.base_url).startswith("https://"),
        path="/",
    )
    return response


@router.post(
    "/logout",
    summary="Se déconnecter",
    responses={303: {"description": "Déconnecté"}, **problem_responses(401, 403)},
    dependencies=[Depends(check_csrf)],
)
def logout() -> Response:
    """Efface le cookie de session (formulaire protégé par jeton CSRF)."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", include_in_schema=False)
def home(user: Annotated[User | None, Depends(optional_user)]) -> Response:
    return RedirectResponse("/cases" if user else "/login", status_code=303)
