"""Shared fixtures: a migrated database per test, PostgreSQL, one Prefect stack per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import env

env.apply()  # before anything reads CLSM_* or PREFECT_* settings

from sqlmodel import Session  # noqa: E402

from models.core import db as app_db  # noqa: E402
from models.core.settings import get_settings  # noqa: E402
from tests.support.browser import browser, page, shared_chromium  # noqa: E402, F401  (shared fixtures)
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.prefect_stack import PrefectStack  # noqa: E402
from tests.support.smtp import smtp_server  # noqa: E402, F401  (shared fixture)


def use_database(url: str) -> None:
    """Point this process's settings and engine at url."""
    os.environ["CLSM_DATABASE_URL"] = url
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()


@pytest.fixture(scope="session")
def migrated_template() -> Path:
    from service.cli import migrate

    template = env.TMP / "template.db"
    migrate(f"sqlite:///{template}")
    return template


@pytest.fixture
def db_url(migrated_template: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated SQLite app database for one test."""
    target = tmp_path / "app.db"
    shutil.copy(migrated_template, target)
    url = f"sqlite:///{target}"
    use_database(url)
    yield url
    app_db._engine_for.cache_clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(env.TMP / "postgres")
    server.start()
    yield server
    import gc

    from sqlalchemy.engine import Engine

    for engine in [o for o in gc.get_objects() if isinstance(o, Engine)]:
        engine.dispose()  # close pooled connections before the server goes away
    server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL app database for one test."""
    from service.cli import migrate

    url = postgres_server.create_database()
    migrate(url)
    use_database(url)
    yield url
    app_db._engine_for(url).dispose()
    app_db._engine_for.cache_clear()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on PostgreSQL."""
    name = "db_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    with Session(app_db.get_engine(), expire_on_commit=False) as s:
        yield s


@pytest.fixture(scope="session")
def prefect_stack() -> Iterator[PrefectStack]:
    """One real Prefect server, the deployments of prefect.yaml and a process worker."""
    stack = PrefectStack()
    stack.start_server()
    try:
        stack.deploy()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def own_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test signs its own audit checkpoints (they name the chains of its database)."""
    monkeypatch.setenv("CLSM_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def no_saisine_details_in_any_mail() -> Iterator[None]:
    """Privacy, across the whole suite: no mail a test server received may carry the
    description of a test saisine or the person's initials."""
    from tests.support.saisine import DIFFICULTY, INITIALS
    from tests.support.smtp import EVERY_MAIL

    first = len(EVERY_MAIL)
    yield
    for mail in EVERY_MAIL[first:]:
        content = str(mail.message["Subject"]) + mail.text() + mail.html() + mail.calendar()
        assert DIFFICULTY not in content, "a saisine's description left in a mail"
        assert f" {INITIALS} " not in f" {content} ".replace("\n", " "), "initials in a mail"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The production-topology scenarios (tests/production: both databases on PostgreSQL,
    two workers) need a Prefect server of their own: they run in a session of their own
    (`make test` starts it after the rest), and are left out of a mixed session."""
    production = [item for item in items if item.get_closest_marker("production")]
    if production and len(production) < len(items):
        config.hook.pytest_deselected(items=production)
        items[:] = [item for item in items if not item.get_closest_marker("production")]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.support import figures

    figures.write()
