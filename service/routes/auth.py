"""Login and logout of coordinators, auditors and admins (session cookie)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from models.core.access import open_session, revoke_session
from models.core.people import User
from models.core.settings import Environment, get_settings
from service.demo import is_demo_login
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
from service.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    csrf_matches,
    new_login_token,
    spend_password_time,
    verify_password,
)

router = APIRouter(tags=["comptes"])


def _safe_next(target: str) -> str:
    """Only local paths: never redirect to another site after login."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/cases"


def _login_page(
    request: Request, next_: str, email: str = "", error: str = "", status: int = 401
) -> Response:
    token = new_login_token()
    response = templates.TemplateResponse(
        request,
        "login.html",
        page_context(
            request,
            title="Connexion",
            next=_safe_next(next_),
            email=email,
            error=error,
            login_token=token,
        ),
        status_code=status if error else 200,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="lax",
        secure=str(request.app.state.base_url).startswith("https://"),
        path="/login",
    )
    return response


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
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Vérifie le mot de passe (argon2) ; les échecs répétés sont limités par adresse IP et
    par compte ; le formulaire porte son jeton CSRF."""
    if not csrf_matches(request.cookies.get(LOGIN_COOKIE, ""), csrf_token):
        return _login_page(
            request, next, email, "Formulaire expiré : saisissez à nouveau vos identifiants.", 403
        )
    address, account = client_ip(request), email.strip().lower()
    limiter(request, "login").check(address)
    limiter(request, "account").check(account)
    user = session.exec(select(User).where(User.email == account)).first()
    if get_settings().env is Environment.PRODUCTION and is_demo_login(account, password):
        user = None  # demo accounts and the demo password are refused in production
    if user is None or not user.active:
        spend_password_time(password)  # the same time as for an existing account
        user = None
    elif not verify_password(user.password_hash, password):
        user = None
    if user is None:
        session.rollback()  # the read ends here: the counts are written in their own transaction
        limiter(request, "login").fail(address)
        limiter(request, "account").fail(account)
        return _login_page(request, next, email, "Adresse électronique ou mot de passe incorrect.")
    assert user.id is not None
    token, _ = open_session(
        session=session, user_id=user.id, lifetime=timedelta(seconds=SESSION_MAX_AGE)
    )
    session.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=str(request.app.state.base_url).startswith("https://"),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post(
    "/logout",
    summary="Se déconnecter",
    responses={303: {"description": "Déconnecté"}, **problem_responses(401, 403)},
    dependencies=[Depends(check_csrf)],
)
def logout(request: Request, session: SessionDep) -> Response:
    """Met fin à la session dans la base et efface le cookie (formulaire protégé par jeton
    CSRF) : une copie du cookie ne sert plus à rien."""
    revoke_session(session=session, token=request.cookies.get(SESSION_COOKIE, ""))
    session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", include_in_schema=False)
def home(user: Annotated[User | None, Depends(optional_user)]) -> Response:
    return RedirectResponse("/cases" if user else "/login", status_code=303)
