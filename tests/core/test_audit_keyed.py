"""The keyed trail: a database writer cannot rewrite history unseen, nor can the key holder
once a checkpoint is signed; a case's bundle is verified offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session
from typer.testing import CliRunner

from models.core import db
from models.core.audit import (
    NULL_PAYLOAD,
    Actor,
    _link_hash,
    audit_keys,
    case_events,
    digest,
    record_event,
    seal,
    verify_all,
)
from models.core.audit_triggers import (
    GUARDED_COLUMNS,
    audit_trigger_statements,
    drop_trigger_statements,
)
from models.core.checkpoints import verify_checkpoints, write_checkpoint
from models.core.enums import CaseType
from models.core.settings import get_settings
from service.cli import app
from tests.support.env import ROOT

runner = CliRunner()


@pytest.fixture
def s(any_db_url: str) -> Iterator[Session]:
    with Session(db.get_engine(), expire_on_commit=False) as session:
        yield session


def _chain(session: Session, case_id: int, n: int = 4) -> None:
    for i in range(n):
        record_event(
            session=session,
            case_type=CaseType.SAISINE,
            case_id=case_id,
            action=f"step.{i}",
            actor=Actor.contact(7, "Zoé Martin"),
            payload={"réponse": "oui", "étape": i},
        )
    session.commit()


def _rewrite(session: Session, case_id: int, *, with_key: bool) -> None:
    """The attack: drop the triggers, make event 2 Mallory's with another answer, recompute
    the chain after it (and the seals, if the attacker holds the key)."""
    dialect = session.get_bind().dialect.name
    for statement in drop_trigger_statements(dialect):
        session.execute(text(statement))
    prev = None
    for event in case_events(session, "saisine", case_id):
        if event.seq == 2:
            event.actor_label = "Mallory"
            event.payload = {"réponse": "non", "étape": 1}
            event.payload_digest = digest(event.payload)
        if event.seq >= 2:
            event.prev_hash = prev or event.prev_hash
            event.hash = _link_hash(
                event.prev_hash,
                event.case_type,
                event.case_id,
                event.seq,
                event.at,
                (event.actor_kind, event.actor_label, event.actor_ref, event.channel),
                event.action,
                event.payload_digest,
            )
            if with_key:
                event.key_id, event.mac = seal(event.hash)
            session.add(event)
        prev = event.hash
    session.commit()
    for statement in audit_trigger_statements(dialect, GUARDED_COLUMNS):
        session.execute(text(statement))
    session.commit()


def test_rewrite_without_the_key_is_named_by_verify(s: Session) -> None:
    _chain(s, 40)
    _rewrite(s, 40, with_key=False)
    report = verify_all(s)
    assert [(b.case_id, b.seq) for b in report.breaks] == [(40, 2)]
    assert "sceau" in report.breaks[0].reason
    s.rollback()
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "saisine n°40, événement 2" in result.output
    assert "Journal intègre" not in result.output


def test_rewrite_by_the_key_holder_is_caught_by_the_signed_checkpoint(s: Session) -> None:
    _chain(s, 41)
    assert write_checkpoint(s) is not None
    assert write_checkpoint(s) is None  # nothing new: no second file
    s.rollback()
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    _rewrite(s, 41, with_key=True)
    assert verify_all(s).ok  # the seals alone cannot tell: the attacker holds the key
    problems = verify_checkpoints(s).problems
    assert len(problems) == 1 and "saisine n°41, événement 4" in problems[0]
    s.rollback()
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "saisine n°41, événement 4" in result.output
    assert "entre le n°1 et le n°4" in result.output


def test_a_checkpoint_signed_by_another_key_is_reported(s: Session) -> None:
    _chain(s, 42, n=2)
    path = write_checkpoint(s)
    assert path is not None
    document = json.loads(path.read_text())
    document["heads"]["saisine:42"][0] = 1  # edited after signing
    path.write_text(json.dumps(document))
    problems = verify_checkpoints(s).problems
    assert problems and "signature invalide" in problems[0]


def test_a_null_payload_outside_the_erasure_path_is_reported(s: Session) -> None:
    _chain(s, 43)
    # the one UPDATE the database allows, done without the erasure event
    s.execute(text("UPDATE audit_event SET payload = NULL WHERE case_id = 43 AND seq = 3"))
    s.commit()
    report = verify_all(s)
    assert [(b.case_id, b.seq, b.reason) for b in report.breaks] == [(43, 3, NULL_PAYLOAD)]


def test_an_event_sealed_by_a_retired_key_verifies_and_an_unknown_key_does_not(
    s: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = "ancienne-clé-" + "a1B2c3D4e5F6g7H8i9J0" * 2
    monkeypatch.setenv("CLSM_AUDIT_KEY", old)
    get_settings.cache_clear()
    _chain(s, 44, n=2)
    monkeypatch.setenv("CLSM_AUDIT_KEY", "nouvelle-clé-" + "Z9y8X7w6V5u4T3s2R1q0" * 2)
    get_settings.cache_clear()
    _chain(s, 45, n=1)
    broken = verify_all(s).breaks
    assert [(b.case_id, b.seq) for b in broken] == [(44, 1)]
    assert "clé d'audit inconnue" in broken[0].reason
    monkeypatch.setenv("CLSM_AUDIT_RETIRED_KEYS", old)
    get_settings.cache_clear()
    assert verify_all(s).ok
    keys = {e.key_id for e in case_events(s, "saisine", 44) + case_events(s, "saisine", 45)}
    assert len(keys) == 2 and audit_keys().current_id in keys


def test_a_bundle_is_verified_offline_in_a_fresh_directory(s: Session, tmp_path: Path) -> None:
    _chain(s, 46)
    s.close()
    bundle = tmp_path / "export" / "dossier.json"
    bundle.parent.mkdir()
    result = runner.invoke(app, ["audit", "export", "saisine:46", "--output", str(bundle)])
    assert result.exit_code == 0, result.output
    fresh = tmp_path / "auditeur"
    fresh.mkdir()
    (fresh / "dossier.json").write_bytes(bundle.read_bytes())
    # another machine: no database, no audit key, no checkpoint directory, only the bundle
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLSM_")}
    env |= {"CLSM_VAR_DIR": str(fresh / "var"), "PYTHONPATH": str(ROOT)}

    def verify_bundle() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "audit", "verify-bundle", "dossier.json"],
            cwd=fresh,
            env=env,
            capture_output=True,
            text=True,
        )

    done = verify_bundle()
    assert done.returncode == 0, done.stderr
    assert "Paquet intègre : dossier saisine:46, 4 événements" in done.stdout
    assert not (fresh / "var").exists()  # nothing generated, nothing read but the bundle
    content = json.loads((fresh / "dossier.json").read_text())
    content["events"][1]["actor_label"] = "Mallory"
    (fresh / "dossier.json").write_text(json.dumps(content))
    done = verify_bundle()
    assert done.returncode == 1
    assert "saisine n°46, événement 2" in done.stderr


def test_an_edited_bundle_rechained_is_caught_by_its_checkpoint(s: Session, tmp_path: Path) -> None:
    _chain(s, 47, n=3)
    s.close()
    bundle = tmp_path / "b.json"
    assert runner.invoke(app, ["audit", "export", "saisine:47", "-o", str(bundle)]).exit_code == 0
    content = json.loads(bundle.read_text())
    prev = content["events"][0]["hash"]
    for event in content["events"][1:]:
        if event["seq"] == 2:
            event["actor_label"] = "Mallory"
        event["prev_hash"] = prev
        event["hash"] = prev = _link_hash(
            prev,
            event["case_type"],
            event["case_id"],
            event["seq"],
            event["at"],
            (event["actor_kind"], event["actor_label"], event["actor_ref"], event["channel"]),
            event["action"],
            event["payload_digest"],
        )
    bundle.write_text(json.dumps(content))
    result = runner.invoke(app, ["audit", "verify-bundle", str(bundle)])
    assert result.exit_code == 1
    assert "saisine n°47, événement 3" in result.output


def _migrate(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, revision)


def _legacy_event(session: Session, case_id: int, seq: int, prev: str, label: str) -> str:
    """An event as the unkeyed trail wrote it (no key_id, no mac)."""
    at = f"2026-01-0{seq} 10:00:00.000000"
    actor = ("system", label, "", "system")
    event_hash = _link_hash(prev, "saisine", case_id, seq, at, actor, "old", digest({}))
    session.execute(
        text(
            "INSERT INTO audit_event (case_type, case_id, seq, at, actor_kind, actor_label,"
            " actor_ref, channel, action, payload, payload_digest, prev_hash, hash) VALUES"
            " ('saisine', :case_id, :seq, :at, 'system', :label, '', 'system', 'old', '{}',"
            " :digest, :prev, :hash)"
        ),
        {"case_id": case_id, "seq": seq, "at": at, "label": label, "digest": digest({}),
         "prev": prev, "hash": event_hash},
    )  # fmt: skip
    return event_hash


def test_migration_seals_the_events_written_before_and_refuses_a_broken_chain(
    tmp_path: Path,
) -> None:
    from tests.conftest import use_database

    for name, broken in (("intact", False), ("rompu", True)):
        url = f"sqlite:///{tmp_path / name}.db"
        _migrate(url, "0004")  # the revision before the audit seal
        use_database(url)
        with Session(db.get_engine()) as session:
            prev = "0" * 64
            for seq in (1, 2, 3):
                prev = _legacy_event(session, 50, seq, prev, "système")
            if broken:  # a legacy row altered before the migration
                for statement in drop_trigger_statements("sqlite"):
                    session.execute(text(statement))
                session.execute(
                    text("UPDATE audit_event SET actor_label = 'Mallory' WHERE seq = 2")
                )
            session.commit()
        db.get_engine().dispose()
        if broken:
            with pytest.raises(RuntimeError, match="saisine n°50, événement 2"):
                _migrate(url, "head")
            continue
        _migrate(url, "head")
        with Session(db.get_engine()) as session:
            assert verify_all(session).ok
            events = case_events(session, "saisine", 50)
            assert {e.key_id for e in events} == {audit_keys().current_id}
        db.get_engine().dispose()
