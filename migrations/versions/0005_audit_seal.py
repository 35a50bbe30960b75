"""audit events sealed with a key (key_id, mac)

Revision ID: 0005
Revises: 0004

Events written before are verified, then sealed with the current key (see README,
"Journal d'audit"): a chain found broken stops the migration.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.core.audit import seal_existing
from models.core.audit_triggers import (
    GUARDED_COLUMNS,
    audit_trigger_statements,
    drop_trigger_statements,
)

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_trigger_statements(dialect):
        op.execute(statement)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    seal_existing(op.get_bind())
    for statement in audit_trigger_statements(dialect, GUARDED_COLUMNS):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_trigger_statements(dialect):
        op.execute(statement)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("key_id")
    for statement in audit_trigger_statements(dialect):
        op.execute(statement)
