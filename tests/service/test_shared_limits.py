"""Two service processes on one database share the login limits and the sessions."""

from __future__ import annotations

import httpx

from models.core import db
from service.security import SESSION_COOKIE
from tests.support.service_kit import PASSWORD, ServiceProcess, build_world, csrf_of


def _wrong_login(client: httpx.Client, email: str) -> int:
    token = csrf_of(client.get("/login").text)
    data = {"email": email, "password": "devine", "csrf_token": token}
    return client.post("/login", data=data).status_code


def test_two_service_processes_enforce_one_limit_and_share_sessions(db_url: str) -> None:
    with db.session_scope() as session:
        world = build_world(session)
    email = world.coordinator.email
    with ServiceProcess(db_url) as first, ServiceProcess(db_url) as second:
        a, b = httpx.Client(base_url=first.url), httpx.Client(base_url=second.url)
        # ten wrong passwords per account, whichever process answers
        statuses = [_wrong_login(client, email) for client in (a, b) * 5]
        assert statuses == [401] * 10
        assert _wrong_login(a, email) == 429 and _wrong_login(b, email) == 429

        auditor = httpx.Client(base_url=first.url)
        token = csrf_of(auditor.get("/login").text)
        data = {"email": world.auditor.email, "password": PASSWORD, "csrf_token": token}
        assert auditor.post("/login", data=data).status_code == 303
        cookie = auditor.cookies[SESSION_COOKIE]
        other = httpx.Client(base_url=second.url, cookies={SESSION_COOKIE: cookie})
        assert other.get("/api/me").status_code == 200  # the session is known to both
        csrf = csrf_of(auditor.get("/cases").text)
        assert auditor.post("/logout", data={"csrf_token": csrf}).status_code == 303
        assert other.get("/api/me").status_code == 401  # and ended for both
