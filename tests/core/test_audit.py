"""The audit trail: chained, append-only in the database, redactable, verifiable."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session
from typer.testing import CliRunner

from models.core import db
from models.core.audit import (
    Actor,
    AuditEvent,
    canonical,
    case_events,
    digest,
    record_event,
    redact_case,
    verify_all,
    verify_case,
)
from models.core.enums import ActorKind, CaseType, Channel
from service.cli import app

runner = CliRunner()


def _chain(session: Session, case_id: int, n: int = 4) -> list[AuditEvent]:
    events = [
        record_event(
            session=session,
            case_type=CaseType.SAISINE,
            case_id=case_id,
            action=f"step.{i}",
            actor=Actor.system(),
            payload={"initiales": "J. D.", "étape": i},
        )
        for i in range(n)
    ]
    session.commit()
    return events


def _set_guard(session: Session, enabled: bool) -> None:
    """Switch the append-only triggers off or on, as an attacker with DDL rights could."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        verb = "ENABLE" if enabled else "DISABLE"
        session.execute(text(f"ALTER TABLE audit_event {verb} TRIGGER audit_event_append_only"))
    else:
        from models.core.audit_triggers import GUARDED_COLUMNS, audit_trigger_statements

        if enabled:
            for statement in audit_trigger_statements("sqlite", GUARDED_COLUMNS):
                session.execute(text(statement))
        else:
            session.execute(text("DROP TRIGGER audit_event_no_update"))
            session.execute(text("DROP TRIGGER audit_event_no_delete"))
    session.commit()


@pytest.fixture
def s(any_db_url: str) -> Iterator[Session]:
    with Session(db.get_engine(), expire_on_commit=False) as session:
        yield session


def test_chain_verifies_and_links_each_event(s: Session) -> None:
    events = _chain(s, 1)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[1].prev_hash == events[0].hash
    assert verify_case(s, "saisine", 1) is None
    report = verify_all(s)
    assert report.ok and report.chains == 1 and report.events == 4


def test_update_and_delete_are_refused_by_the_database(s: Session) -> None:
    _chain(s, 2)
    with pytest.raises(DatabaseError, match="append-only"):
        s.execute(text("UPDATE audit_event SET action = 'forged' WHERE seq = 2"))
    s.rollback()
    with pytest.raises(DatabaseError, match="append-only"):
        s.execute(text("DELETE FROM audit_event WHERE seq = 3"))
    s.rollback()
    with pytest.raises(DatabaseError, match="append-only"):
        # even "redacting" while changing another column is refused
        s.execute(text("UPDATE audit_event SET payload = NULL, action = 'x' WHERE seq = 1"))
    s.rollback()
    assert len(case_events(s, "saisine", 2)) == 4


def test_altered_payload_is_reported_with_its_position(s: Session) -> None:
    _chain(s, 3)
    _set_guard(s, enabled=False)
    s.execute(
        text("UPDATE audit_event SET payload = :p WHERE case_id = 3 AND seq = 3"),
        {"p": '{"initiales": "X. Y.", "étape": 2}'},
    )
    s.commit()
    _set_guard(s, enabled=True)
    broken = verify_case(s, "saisine", 3)
    assert broken is not None and broken.seq == 3
    assert "empreinte" in broken.reason


def test_forged_row_inserted_in_the_chain_is_detected(s: Session) -> None:
    events = _chain(s, 4, n=2)
    forged = AuditEvent(
        case_type="saisine",
        case_id=4,
        seq=3,
        at=events[-1].at,
        actor_kind="system",
        actor_label="système",
        channel="system",
        action="decision.recorded",
        payload={},
        payload_digest="0" * 64,
        prev_hash=events[-1].hash,
        hash="f" * 64,
    )
    s.add(forged)
    s.commit()
    record_event(
        session=s,
        case_type=CaseType.SAISINE,
        case_id=4,
        action="after",
        actor=Actor.system(),
        payload={},
    )
    s.commit()
    broken = verify_case(s, "saisine", 4)
    assert broken is not None and broken.seq == 3


def test_deleted_row_is_detected(s: Session) -> None:
    _chain(s, 5)
    _set_guard(s, enabled=False)
    s.execute(text("DELETE FROM audit_event WHERE case_id = 5 AND seq = 2"))
    s.commit()
    _set_guard(s, enabled=True)
    broken = verify_case(s, "saisine", 5)
    assert broken is not None and broken.seq == 3 and "manquant" in broken.reason


def test_redaction_erases_payloads_and_keeps_the_chain_valid(s: Session) -> None:
    _chain(s, 6)
    erased = redact_case(
        session=s,
        case_type=CaseType.SAISINE,
        case_id=6,
        actor=Actor.system(),
        reason="durée de conservation écoulée",
    )
    s.commit()
    assert erased == 4
    events = case_events(s, "saisine", 6)
    assert all(e.payload is None for e in events[:4])
    assert events[-1].action == "personal-data.erased"
    assert "J. D." not in str([e.payload for e in events])
    assert verify_case(s, "saisine", 6) is None


def test_cli_verify_reports_the_first_broken_link(s: Session) -> None:
    _chain(s, 7)
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    _set_guard(s, enabled=False)
    s.execute(
        text("UPDATE audit_event SET actor_label = 'quelqu''un' WHERE case_id = 7 AND seq = 2")
    )
    s.commit()
    _set_guard(s, enabled=True)
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "saisine n°7, événement 2" in result.output


def test_rolled_back_change_leaves_no_event(s: Session) -> None:
    with pytest.raises(RuntimeError), db.session_scope() as scoped:
        record_event(
            session=scoped,
            case_type=CaseType.SESSION,
            case_id=8,
            action="x",
            actor=Actor.system(),
            payload={},
        )
        raise RuntimeError("la suite de l'étape a échoué")
    assert case_events(s, "session", 8) == []


def test_event_hash_is_the_documented_canonical_form(s: Session) -> None:
    """hash = sha256(prev_hash + canonical(...)): chains written before still verify."""
    label = 'Zoé "la coordinatrice" \\ d\'Aix\n\t\x01 — 🗓'
    actor = Actor(ActorKind.USER, label, Channel.SERVICE, "user:7")
    first, second = (
        record_event(
            session=s,
            case_type=CaseType.SAISINE,
            case_id=9,
            action=action,
            actor=actor,
            payload={"note": label},
        )
        for action in ("réponse.enregistrée", 'a"b')
    )
    s.commit()
    for event, prev in ((first, "0" * 64), (second, first.hash)):
        body = canonical(
            {
                "case": ["saisine", 9],
                "seq": event.seq,
                "action": event.action,
                "actor": ["user", label, "user:7", "service"],
                "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
                "payload_digest": digest({"note": label}),
            }
        )
        assert event.hash == hashlib.sha256((prev + body).encode()).hexdigest()
    assert verify_case(s, "saisine", 9) is None


def test_a_chain_verified_before_is_checked_again_where_it_changed(s: Session) -> None:
    _chain(s, 10)
    assert verify_case(s, "saisine", 10) is None
    record_event(
        session=s, case_type=CaseType.SAISINE, case_id=10, action="after", actor=Actor.system()
    )
    s.commit()
    assert verify_case(s, "saisine", 10) is None
    _set_guard(s, enabled=False)
    s.execute(text("UPDATE audit_event SET action = 'autre' WHERE case_id = 10 AND seq = 2"))
    s.commit()
    _set_guard(s, enabled=True)
    broken = verify_case(s, "saisine", 10)
    assert broken is not None and broken.seq == 2
    assert "empreinte" in broken.reason


def test_payloads_are_stored_in_canonical_form(s: Session) -> None:
    _chain(s, 30, n=1)
    stored = s.execute(
        text("SELECT CAST(payload AS TEXT) FROM audit_event WHERE case_id = 30")
    ).scalar_one()
    assert (
        stored == canonical({"initiales": "J. D.", "étape": 0}) == '{"initiales":"J. D.","étape":0}'
    )


def test_payload_stored_otherwise_still_verifies_by_its_content(s: Session) -> None:
    """A row written by other means (spaces, escaped accents): its text differs from the
    canonical form, its content does not; the chain verifies, and a changed value does not."""
    _chain(s, 31, n=3)
    _set_guard(s, enabled=False)
    s.execute(
        text("UPDATE audit_event SET payload = :p WHERE case_id = 31 AND seq = 2"),
        {"p": '{"\\u00e9tape": 1, "initiales": "J. D."}'},
    )
    s.commit()
    assert verify_case(s, "saisine", 31) is None
    assert verify_all(s).ok
    s.execute(
        text("UPDATE audit_event SET payload = :p WHERE case_id = 31 AND seq = 2"),
        {"p": '{"\\u00e9tape": 9, "initiales": "J. D."}'},
    )
    s.commit()
    _set_guard(s, enabled=True)
    for broken in (verify_case(s, "saisine", 31), *verify_all(s).breaks):
        assert broken is not None and broken.seq == 2 and "empreinte" in broken.reason


def test_altered_time_is_detected(s: Session) -> None:
    _chain(s, 32, n=3)
    _set_guard(s, enabled=False)
    s.execute(
        text(
            "UPDATE audit_event SET at = :at WHERE case_id = 32 AND seq = 2",
        ),
        {"at": datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)},
    )
    s.commit()
    sqlite = s.get_bind().dialect.name == "sqlite"
    if sqlite:  # SQLite takes a text that is no time at all
        _chain(s, 33, n=3)
        s.execute(text("UPDATE audit_event SET at = 'hier soir' WHERE case_id = 33 AND seq = 2"))
        s.commit()
    _set_guard(s, enabled=True)
    report = verify_all(s)
    assert len(report.breaks) == (2 if sqlite else 1)
    for case_id in (32, 33) if sqlite else (32,):
        for broken in (verify_case(s, "saisine", case_id), *report.breaks):
            assert broken is not None and broken.seq == 2
            assert broken.reason == "l'empreinte de l'événement est fausse"
