"""Accounts and roles, case list and pages, audited history reads, API, errors, CLI."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.catalogue import CASE_KINDS, STEP_KINDS
from models.core import db
from models.core.audit import Actor, case_events, record_event
from models.core.enums import ActorKind, CaseType, Channel, Role
from models.core.people import User
from models.core.waits import open_wait
from service.cli import app as cli_app
from service.deps import FailureLimiter
from service.main import create_app
from service.security import SESSION_COOKIE
from tests.support.service_kit import (
    PASSWORD,
    PROBE_STEP,
    STEP,
    TEST_CASES,
    World,
    build_world,
    csrf_of,
    login_data,
)


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setitem(STEP_KINDS, STEP, PROBE_STEP)
    monkeypatch.setitem(CASE_KINDS, CaseType.SESSION, TEST_CASES)
    with db.session_scope() as session:
        return build_world(session)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def login(client: TestClient, user: User, password: str = PASSWORD) -> str:
    """Log in; returns the CSRF token of the session."""
    response = client.post(
        "/login", data=login_data(client, user.email, password), follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/cases").text)


def events(case_id: int) -> list[tuple[str, str, str]]:
    with Session(db.get_engine()) as session:
        return [
            (e.action, e.actor_label, e.channel)
            for e in case_events(session, CaseType.SESSION.value, case_id)
        ]


def test_anonymous_people_are_sent_to_login_and_the_api_answers_401(
    client: TestClient, world: World
) -> None:
    page = client.get("/cases/session/101/history?page=2", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/cases/session/101/history%3Fpage%3D2"
    api = client.get("/api/cases")
    assert api.status_code == 401
    assert api.headers["content-type"] == "application/problem+json"
    assert api.json() == {
        "type": "about:blank",
        "title": "Connexion nécessaire",
        "status": 401,
        "detail": "Connectez-vous pour accéder à cette page.",
    }
    assert client.get("/cases/session/101/history.json").status_code == 401
    assert client.post("/cases/session/101/resume").status_code == 401
    assert "history.read" not in [a for a, _, _ in events(101)]


def test_login_sets_a_secure_session_cookie_and_logout_needs_csrf(
    client: TestClient, world: World
) -> None:
    wrong = client.post("/login", data=login_data(client, world.coordinator.email, "non"))
    assert wrong.status_code == 401 and "mot de passe incorrect" in wrong.text
    response = client.post(
        "/login",
        data={**login_data(client, world.coordinator.email, PASSWORD), "next": "//evil.example"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/cases"  # never to another site
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    csrf = csrf_of(client.get("/cases").text)
    assert client.post("/logout", data={"csrf_token": "faux"}).status_code == 403
    assert (
        client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    )
    assert client.get("/cases", follow_redirects=False).status_code == 303  # logged out


def test_a_forged_cookie_is_ignored(client: TestClient, world: World) -> None:
    client.cookies.set(SESSION_COOKIE, "eyJ1aWQiOjF9.forged.signature")
    assert client.get("/api/me").status_code == 401


def test_login_brute_force_is_rate_limited(client: TestClient, world: World) -> None:
    client.app.state.limiters["login"] = FailureLimiter(3, 900, scope="login")  # type: ignore[attr-defined]
    for _ in range(3):
        data = login_data(client, world.coordinator.email, "devine")
        assert client.post("/login", data=data).status_code == 401
    blocked = client.post("/login", data=login_data(client, world.coordinator.email, PASSWORD))
    assert blocked.status_code == 429 and "Trop de tentatives" in blocked.text


def test_logout_ends_the_session_in_the_database(client: TestClient, world: World) -> None:
    csrf = login(client, world.coordinator)
    copied = client.cookies[SESSION_COOKIE]
    assert (
        client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    )
    with TestClient(client.app) as thief:  # a copy of the cookie, taken before logout
        thief.cookies.set(SESSION_COOKIE, copied)
        assert thief.get("/api/me").status_code == 401


def test_a_password_change_ends_every_session(client: TestClient, world: World) -> None:
    login(client, world.coordinator)
    assert client.get("/api/me").status_code == 200
    changed = CliRunner().invoke(
        cli_app, ["users", "password", world.coordinator.email, "--password", "un-nouveau-secret"]
    )
    assert changed.exit_code == 0 and "1 session(s) fermée(s)" in changed.output
    assert client.get("/api/me").status_code == 401
    login(client, world.coordinator, "un-nouveau-secret")
    assert client.get("/api/me").status_code == 200


def test_login_needs_the_token_of_its_own_form(client: TestClient, world: World) -> None:
    """Login CSRF: another site's form cannot log this browser into an account."""
    client.get("/login")
    forged = {"email": world.coordinator.email, "password": PASSWORD, "csrf_token": "autre"}
    refused = client.post("/login", data=forged, follow_redirects=False)
    assert refused.status_code == 403 and "Formulaire expiré" in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")


def test_wrong_passwords_are_limited_per_account_whatever_the_address(
    client: TestClient, world: World
) -> None:
    client.app.state.limiters["account"] = FailureLimiter(3, 900, scope="account")  # type: ignore[attr-defined]
    for n in range(3):  # a new forged address each time: not believed, and not needed
        data = login_data(client, world.coordinator.email, "devine")
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert client.post("/login", data=data, headers=headers).status_code == 401
    blocked = client.post("/login", data=login_data(client, world.coordinator.email, PASSWORD))
    assert blocked.status_code == 429
    other = client.post(
        "/login", data=login_data(client, world.auditor.email, PASSWORD), follow_redirects=False
    )
    assert other.status_code == 303  # another account is not locked with it


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.core.settings import get_settings

    client.app.state.limiters["login"] = FailureLimiter(3, 900, scope="login")  # type: ignore[attr-defined]
    client.app.state.limiters["account"] = FailureLimiter(100, 900, scope="account")  # type: ignore[attr-defined]

    def wrong(forwarded: str) -> int:
        data = login_data(client, f"personne{forwarded}@x.example", "devine")
        return client.post("/login", data=data, headers={"X-Forwarded-For": forwarded}).status_code

    # the test client is no trusted proxy: forged addresses all count as its own
    assert [wrong(f"198.51.100.{n}") for n in range(4)] == [401, 401, 401, 429]
    monkeypatch.setenv("CLSM_TRUSTED_PROXIES", "testclient")
    get_settings.cache_clear()
    # behind a trusted proxy, each client address has its own count
    assert [wrong(f"198.51.100.{n}") for n in range(10, 13)] == [401, 401, 401]
    assert wrong("192.0.2.66, 198.51.100.10") == 401  # the address the proxy saw counts
    assert [wrong("198.51.100.10") for _ in range(2)] == [401, 429]


def test_login_takes_the_same_time_whether_the_account_exists_or_not(
    client: TestClient, world: World
) -> None:
    import time

    client.app.state.limiters["account"] = FailureLimiter(100, 900, scope="account")  # type: ignore[attr-defined]

    def timed(email: str) -> float:
        data = login_data(client, email, "devine")
        start = time.perf_counter()
        assert client.post("/login", data=data).status_code == 401
        return time.perf_counter() - start

    existing = sorted(timed(world.coordinator.email) for _ in range(5))[2]
    unknown = sorted(timed("personne@nulle-part.example") for _ in range(5))[2]
    assert unknown > existing * 0.6, (existing, unknown)  # argon2 spent either way


def test_coordinator_sees_only_the_cases_of_their_clsm(client: TestClient, world: World) -> None:
    with db.session_scope() as session:
        open_wait(
            session=session,
            case_type=CaseType.SESSION,
            case_id=world.case_a,
            step="probe-until",
            flow_run_id="3f2b8f0e-0000-4000-8000-000000000001",
            waiting_on="Camille Partenaire",
        )
    login(client, world.coordinator)
    listing = client.get("/cases").text
    assert "Dossier de test n°101" in listing and "n°202" not in listing
    assert "Camille Partenaire depuis le" in listing and "probe until" in listing
    assert "/runs/flow-run/3f2b8f0e-0000-4000-8000-000000000001" in listing
    assert "case.read" not in [a for a, _, _ in events(101)]  # a list is not a case read

    # another CLSM's case answers exactly as a case that does not exist (no 403 to tell)
    refused, missing = client.get("/cases/session/202"), client.get("/cases/session/999")
    assert refused.status_code == missing.status_code == 404
    assert refused.text.replace("202", "999") == missing.text
    assert client.get("/api/cases/session/202/history").status_code == 404
    assert client.get("/cases/session/202/history.csv").status_code == 404
    assert client.get("/cases/nimportequoi/1").status_code == 404
    assert "history.read" not in [a for a, _, _ in events(202)]

    page = client.get("/cases/session/101")
    assert page.status_code == 200 and "Attentes en cours" in page.text
    assert events(101)[-1] == ("case.read", world.coordinator.name, "service")


def test_admin_sees_every_clsm(client: TestClient, world: World) -> None:
    login(client, world.admin)
    listing = client.get("/api/cases").json()
    assert {c["case_id"] for c in listing} == {101, 202}


def test_every_history_read_is_recorded_in_that_history(client: TestClient, world: World) -> None:
    login(client, world.auditor)
    page = client.get("/cases/session/101/history")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Chaîne d'audit intègre" in text
    assert "consultation de l'historique" in text  # French label of the read itself
    data = client.get("/cases/session/101/history.json").json()
    assert data["chain"]["ok"] is True
    assert [e["action"] for e in data["entries"]] == [
        "test.case-opened",
        "history.read",
        "history.read",
    ]
    exported = client.get("/cases/session/101/history.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff")), delimiter=";"))
    assert rows[0][:3] == ["numéro", "date (Paris)", "action"]
    assert [r[2] for r in rows[1:4]] == ["test.case-opened", "history.read", "history.read"]
    reads = [e for e in events(101) if e[0] == "history.read"]
    assert reads == [("history.read", world.auditor.name, "service")] * 3
    with Session(db.get_engine()) as session:
        formats = [
            (e.payload or {}).get("format")
            for e in case_events(session, "session", 101)
            if e.action == "history.read"
        ]
    assert formats == ["html", "json", "csv"]


def test_history_csv_carries_no_live_formula(client: TestClient, world: World) -> None:
    hostile = '=HYPERLINK("http://evil.example/x";"Zoé")'
    with db.session_scope() as session:
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=101,
            action="application.submitted",
            actor=Actor(ActorKind.CONTACT, hostile, Channel.LINK, "contact:9"),
            payload={"nom": hostile},
        )
    login(client, world.auditor)
    exported = client.get("/cases/session/101/history.csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff")), delimiter=";"))
    submitted = next(r for r in rows if r[2:3] == ["application.submitted"])
    assert submitted[4] == "'" + hostile
    assert not any(c.startswith(("=", "+", "-", "@")) for r in rows for c in r)


def test_history_dates_out_of_range_get_a_french_422(client: TestClient, world: World) -> None:
    login(client, world.auditor)
    for query in ("since=0001-01-01", "until=9999-12-31", "since=1999-12-31"):
        for path in ("/cases/session/101/history", "/api/cases/session/101/history"):
            response = client.get(f"{path}?{query}")
            assert response.status_code == 422, (path, query, response.text)
            assert "supérieure ou égale" in response.text or "inférieure ou égale" in response.text
    assert client.get("/cases/session/101/history.json?since=2000-01-01").status_code == 200


def test_history_is_paged_and_filtered(client: TestClient, world: World) -> None:
    login(client, world.coordinator)
    for _ in range(3):
        client.get("/cases/session/101/history.json")
    paged = client.get("/cases/session/101/history.json?per_page=2&page=2").json()
    assert paged["total"] == 5 and paged["pages"] == 3 and paged["page"] == 2
    assert [e["seq"] for e in paged["entries"]] == [3, 4]
    opened = client.get("/cases/session/101/history.json?action=test.case-opened").json()
    assert [e["seq"] for e in opened["entries"]] == [1]
    by_actor = client.get("/cases/session/101/history.json?actor=système").json()
    assert [e["channel_label"] for e in by_actor["entries"]] == ["système"]
    future = client.get("/cases/session/101/history.json?since=2099-01-01").json()
    assert future["total"] == 0
    bad = client.get("/cases/session/101/history.json?since=hier&per_page=0")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert set(bad.json()["errors"]) == {"since", "per_page"}
    assert "Saisissez une date valide" in bad.json()["errors"]["since"]
    page = client.get("/cases/session/101/history?per_page=abc")
    assert page.status_code == 422 and "Données invalides" in page.text


def test_an_auditor_reads_but_never_writes(client: TestClient, world: World) -> None:
    csrf = login(client, world.auditor)
    assert client.get("/cases/session/101").status_code == 200
    refused = client.post("/cases/session/101/resume", data={"csrf_token": csrf})
    assert refused.status_code == 403 and "permet de consulter, pas de modifier" in refused.text
    assert "case.resume-requested" not in [a for a, _, _ in events(101)]


def test_a_coordinator_write_needs_the_csrf_token(client: TestClient, world: World) -> None:
    csrf = login(client, world.coordinator)
    assert client.post("/cases/session/101/resume", data={}).status_code == 403
    assert "case.resume-requested" not in [a for a, _, _ in events(101)]
    done = client.post(
        "/cases/session/101/resume", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert done.status_code == 303
    assert events(101)[-1] == ("case.resume-requested", world.coordinator.name, "service")


def test_api_tokens_from_the_cli(client: TestClient, world: World) -> None:
    from service.cli import app as cli

    runner = CliRunner()
    result = runner.invoke(cli, ["users", "token", world.auditor.email])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    with Session(db.get_engine()) as session:
        stored = session.get(User, world.auditor.id)
        assert stored is not None and stored.api_token_hash and token not in stored.api_token_hash
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=headers).json()["role"] == "auditor"
    history = client.get("/api/cases/session/101/history", headers=headers)
    assert history.status_code == 200
    assert events(101)[-1] == ("history.read", world.auditor.name, "api")
    write = client.post("/api/cases/session/101/resume", headers=headers)
    assert write.status_code == 403 and write.json()["status"] == 403
    assert client.get("/api/me", headers={"Authorization": "Bearer faux"}).status_code == 401


def test_cli_adds_accounts_and_refuses_bad_input(world: World) -> None:
    from service.cli import app as cli

    runner = CliRunner()
    slug = world.clsm_a.slug
    ok = runner.invoke(
        cli,
        [
            "users",
            "add",
            "--email",
            "Nouvelle@CLSM.example",
            "--name",
            "Nouvelle",
            "--role",
            "auditor",
            "--clsm",
            slug,
            "--password",
            "un-mot-de-passe-long",
        ],
    )
    assert ok.exit_code == 0, ok.output
    with Session(db.get_engine()) as session:
        user = session.exec(select(User).where(User.email == "nouvelle@clsm.example")).one()
        assert user.role is Role.AUDITOR and user.password_hash.startswith("$argon2")
    for args, message in [
        (["--role", "chef", "--clsm", slug, "--password", "un-mot-de-passe-long"], "Rôle inconnu"),
        (
            ["--role", "auditor", "--clsm", "nulle-part", "--password", "un-mot-de-passe-long"],
            "CLSM inconnu",
        ),
        (["--role", "auditor", "--clsm", slug, "--password", "court"], "trop court"),
    ]:
        result = runner.invoke(
            cli, ["users", "add", "--email", "x@y.example", "--name", "X", *args]
        )
        assert result.exit_code == 2 and message in result.output
    again = runner.invoke(
        cli,
        [
            "users",
            "add",
            "--email",
            "nouvelle@clsm.example",
            "--name",
            "N",
            "--role",
            "admin",
            "--password",
            "un-mot-de-passe-long",
        ],
    )
    assert again.exit_code == 1 and "existe déjà" in again.output
    with Session(db.get_engine()) as session:
        assert session.exec(select(User).where(User.email == "x@y.example")).first() is None


def test_security_headers_and_french_error_pages(client: TestClient, world: World) -> None:
    page = client.get("/login")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    missing = client.get("/nulle-part")
    assert missing.status_code == 404 and "Page introuvable" in missing.text
    assert missing.headers["x-frame-options"] == "DENY"
    as_json = client.get("/nulle-part", headers={"Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/problem+json"
    assert as_json.json()["title"] == "Page introuvable"


def test_unexpected_errors_show_no_stack_trace(world: World) -> None:
    app = create_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret interne")

    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/boom")
        api = client.get("/boom", headers={"Accept": "application/json"})
    assert page.status_code == 500 and "Une erreur inattendue" in page.text
    assert "secret interne" not in page.text and "Traceback" not in page.text
    assert api.json()["status"] == 500 and "secret interne" not in api.text


def test_openapi_routes_are_typed_tagged_and_described(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("tags"), where
            assert operation.get("summary"), where
            assert operation.get("description"), where
            assert "200" in operation["responses"] or "303" in operation["responses"], where
    history = schema["paths"]["/api/cases/{case_type}/{case_id}/history"]["get"]
    ok = history["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/HistoryPublic")
    assert "application/problem+json" in history["responses"]["403"]["content"]


def test_dev_mail_sink_pages(client: TestClient, world: World, tmp_path: object) -> None:
    from email.message import EmailMessage

    from models.core.settings import get_settings

    sink = get_settings().mail_sink_dir
    sink.mkdir(parents=True, exist_ok=True)
    message = EmailMessage()
    message["Subject"] = "Votre lien <test>"
    message["To"] = "camille@partenaire.example"
    message.set_content("Répondez ici : http://127.0.0.1:8000/r/abc?x=1&y=<2>\nMerci.")
    (sink / "000042.eml").write_bytes(bytes(message))
    listing = client.get("/dev/mails")
    assert "Votre lien &lt;test&gt;" in listing.text and "/dev/mails/000042" in listing.text
    mail = client.get("/dev/mails/000042").text
    assert '<a href="http://127.0.0.1:8000/r/abc?x=1&amp;y=">' in mail
    assert "<2>" not in mail
    assert client.get("/dev/mails/000099").status_code == 404


def test_bad_login_input_gets_a_french_422(client: TestClient, world: World) -> None:
    page = client.post("/login", data=login_data(client, "a" * 300 + "@x.example", "x"))
    assert page.status_code == 422
    assert "Ce texte est trop long (au plus 254 caractères)." in page.text
    assert SESSION_COOKIE not in page.headers.get("set-cookie", "")


def test_the_session_cookie_is_secure_behind_https(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from models.core.settings import get_settings

    previous = os.environ["CLSM_BASE_URL"]
    monkeypatch.setenv("CLSM_BASE_URL", "https://clsm.example")
    get_settings.cache_clear()
    try:
        with TestClient(create_app(), base_url="https://testserver") as client:
            response = client.post(
                "/login",
                data=login_data(client, world.coordinator.email, PASSWORD),
                follow_redirects=False,
            )
    finally:
        monkeypatch.setenv("CLSM_BASE_URL", previous)
        get_settings.cache_clear()
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_an_impossible_case_number_is_a_404_not_a_crash(client: TestClient, world: World) -> None:
    login(client, world.coordinator)
    response = client.get("/cases/saisine/9223372036854775808")
    assert response.status_code == 404 and "Ce dossier n&#39;existe pas" in response.text
