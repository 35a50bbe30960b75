"""The database's own guard of the audit trail: triggers that make `audit_event` append-only
(SQLite and PostgreSQL), as each migration installs them."""

from __future__ import annotations

from collections.abc import Sequence

# The database itself refuses changes to the trail. The single allowed UPDATE is the
# redaction: payload set to NULL, every other column unchanged (verify then requires an
# erasure event after it). The columns guarded by each revision of the triggers:
_GUARDED_V1 = (
    "id", "case_type", "case_id", "seq", "at", "actor_kind", "actor_label", "actor_ref",
    "channel", "action", "payload_digest", "prev_hash", "hash",
)  # fmt: skip
GUARDED_COLUMNS = (*_GUARDED_V1, "key_id", "mac")


def _sqlite_triggers(columns: Sequence[str]) -> list[str]:
    unchanged = " AND ".join(f"NEW.{c} IS OLD.{c}" if c in ("key_id", "mac") else
                             f"NEW.{c} = OLD.{c}" for c in columns)  # fmt: skip
    return [
        """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused'); END""",
        f"""CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    WHEN NOT (NEW.payload IS NULL AND {unchanged})
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END""",
    ]


def _postgres_triggers(columns: Sequence[str]) -> list[str]:
    new = ", ".join(f"NEW.{c}" for c in columns)
    old = ", ".join(f"OLD.{c}" for c in columns)
    return [
        f"""CREATE OR REPLACE FUNCTION audit_event_guard() RETURNS trigger AS $$
    BEGIN
      IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP;
      END IF;
      IF NEW.payload IS NULL AND ({new}) IS NOT DISTINCT FROM ({old}) THEN
        RETURN NEW;
      END IF;
      RAISE EXCEPTION 'audit_event is append-only: UPDATE refused';
    END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard()""",
        """CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_guard()""",
    ]


def audit_trigger_statements(dialect: str, columns: Sequence[str] = _GUARDED_V1) -> list[str]:
    """DDL that makes audit_event append-only on this database, guarding `columns` (each
    migration passes the columns of its time; the default is the first revision's)."""
    if dialect == "sqlite":
        return _sqlite_triggers(columns)
    if dialect == "postgresql":
        return _postgres_triggers(columns)
    raise ValueError(f"unsupported database: {dialect}")


def drop_trigger_statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [
            "DROP TRIGGER IF EXISTS audit_event_no_update",
            "DROP TRIGGER IF EXISTS audit_event_no_delete",
        ]
    return [
        "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
        "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    ]
