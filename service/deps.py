"""Dependencies of the routes: database session, current user, roles, CSRF, rate limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates
from sqlmodel import Session, select

from models.core import db
from models.core.access import clear_failures, failures_since, find_session, record_failure
from models.core.audit import Actor
from models.core.enums import Channel, Role
from models.core.people import User
from models.core.settings import get_settings
from service.labels import rating
from service.security import SESSION_COOKIE, api_token_hash, csrf_matches

TEMPLATES_DIR = Path(__file__).parent / "templates"


def _paris(value: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(get_settings().tz).strftime(fmt)


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["paris"] = _paris
templates.env.filters["rating"] = rating


def get_session() -> Iterator[Session]:
    """A session for reads; routes that write commit explicitly."""
    with Session(db.get_engine(), expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


class LoginRequired(Exception):
    """Anonymous access to a page that needs an account (redirect) or the API (401)."""


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


class FailureLimiter:
    """Counts failures per key in a sliding window; too many → RateLimited.

    The counts live in the app database (models.core.access), so every service process
    enforces the same limit.
    """

    def __init__(self, limit: int, window_seconds: float, scope: str) -> None:
        self.limit = limit
        self.window = window_seconds
        self.scope = scope

    def _bucket(self, key: str) -> str:
        return f"{self.scope}:{key}"[:200]

    def check(self, key: str) -> None:
        with db.session_scope() as session:
            count, oldest = failures_since(session, self._bucket(key), self.window)
        if count >= self.limit:
            raise RateLimited(max(1, int(oldest + self.window - time.time()) + 1))

    def fail(self, key: str) -> None:
        with db.session_scope() as session:
            record_failure(session=session, bucket=self._bucket(key), window=self.window)

    def reset(self) -> None:
        with db.session_scope() as session:
            clear_failures(session=session, prefix=f"{self.scope}:")


def client_ip(request: Request) -> str:
    """The client's address: the peer's, or, when the peer is one of CLSM_TRUSTED_PROXIES,
    the last address of X-Forwarded-For that is not itself a trusted proxy."""
    peer = request.client.host if request.client else "inconnu"
    proxies = get_settings().proxies
    if peer not in proxies:
        return peer
    chain = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",")]
    for address in reversed([a for a in chain if a]):
        if address not in proxies:
            return address
    return peer


def limiter(request: Request, name: str) -> FailureLimiter:
    limiters: dict[str, FailureLimiter] = request.app.state.limiters
    return limiters[name]


def wants_json(request: Request) -> bool:
    """Problem JSON for the API and for clients asking JSON rather than HTML."""
    path = request.url.path
    if path.startswith(("/api/", "/prefect/api/")) or path.endswith(".json"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def optional_user(request: Request, session: SessionDep) -> User | None:
    """The user of the bearer token or of the session cookie, or None."""
    token = _bearer(request)
    if token:
        user = session.exec(
            select(User).where(User.api_token_hash == api_token_hash(token))
        ).first()
        if user is not None and user.active:
            request.state.via_api = True
            return user
        return None
    cookie = request.cookies.get(SESSION_COOKIE, "")
    found = find_session(session, cookie) if cookie else None
    if found is None:
        return None
    user = session.get(User, found.user_id)
    if user is None or not user.active:
        return None
    request.state.csrf = found.csrf
    return user


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise LoginRequired()
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def writer(request: Request, user: CurrentUser) -> User:
    """A user allowed to change things (not an auditor), with a valid CSRF token on forms."""
    if user.role is Role.AUDITOR:
        raise HTTPException(403, "Votre rôle (audit) permet de consulter, pas de modifier.")
    if not getattr(request.state, "via_api", False):
        form = await request.form()
        given = str(form.get("csrf_token", "")) or request.headers.get("x-csrf-token", "")
        if not csrf_matches(getattr(request.state, "csrf", ""), given):
            raise HTTPException(403, "Jeton de sécurité du formulaire absent ou périmé.")
    return user


Writer = Annotated[User, Depends(writer)]


async def check_csrf(request: Request, user: CurrentUser) -> User:
    """Forms of logged-in users (all roles) carry the session's CSRF token."""
    form = await request.form()
    if not csrf_matches(getattr(request.state, "csrf", ""), str(form.get("csrf_token", ""))):
        raise HTTPException(403, "Jeton de sécurité du formulaire absent ou périmé.")
    return user


def actor_of(request: Request, user: User) -> Actor:
    assert user.id is not None
    channel = Channel.API if getattr(request.state, "via_api", False) else Channel.SERVICE
    return Actor.user(user.id, user.name, channel)


def page_context(request: Request, user: User | None = None, **extra: Any) -> dict[str, Any]:
    """What every page template receives."""
    return {
        "request": request,
        "user": user,
        "csrf_token": getattr(request.state, "csrf", ""),
        "dev": get_settings().env.value != "production",
        **extra,
    }
