"""abuse of the call link: refused applications counted, applications flagged and purged

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.core.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # a native enum: the new status is added outside the migration's transaction
        with op.get_context().autocommit_block():
            op.execute("ALTER TYPE applicationstatus ADD VALUE IF NOT EXISTS 'PURGED'")
    with op.batch_alter_table("immersion_application", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("created_contacts", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column("flagged_at", models.core.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "flagged_by",
                sqlmodel.sql.sqltypes.AutoString(length=200),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "flag_reason",
                sqlmodel.sql.sqltypes.AutoString(length=300),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column("purged_at", models.core.base.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "immersion_refused_applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("client_hash", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("hour", models.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", models.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["step_link.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["immersion_session.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_id", "client_hash", "hour", name="uq_refused_applications"),
    )
    with op.batch_alter_table("immersion_refused_applications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_immersion_refused_applications_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("immersion_refused_applications")
    with op.batch_alter_table("immersion_application", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
        batch_op.drop_column("flag_reason")
        batch_op.drop_column("flagged_by")
        batch_op.drop_column("flagged_at")
        batch_op.drop_column("created_contacts")
    # PostgreSQL cannot drop an enum value: 'PURGED' stays in the type, unused
