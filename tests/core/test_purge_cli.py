"""`clsm purge`: personal data of old closed saisines erased, chains still verify."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from models.core import db
from models.core.audit import case_events, verify_all
from models.saisine.tables import Saisine
from service.cli import app
from service.demo import load_demo, load_saisine_demo


def test_purge_erases_the_2022_cases_and_keeps_the_chains(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.core.settings import get_settings

    load_demo()
    load_saisine_demo(start_open_run=False)
    result = CliRunner().invoke(app, ["purge"])  # default retention: 5 years; 2022 is kept
    assert result.exit_code == 0, result.output
    assert result.output.startswith("0 saisine(s)")
    monkeypatch.setenv("CLSM_RETENTION_YEARS", "1")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["purge"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("6 saisine(s) anonymisée(s)")
    with Session(db.get_engine()) as session:
        old = session.exec(select(Saisine).where(col(Saisine.reference).startswith("2022-"))).all()
        assert old and all(s.difficulty is None and s.initials is None for s in old)
        assert all(s.purged_at is not None for s in old)
        events = case_events(session, "saisine", old[0].id or 0)
        assert events[-1].action == "personal-data.erased"
        assert verify_all(session).ok
