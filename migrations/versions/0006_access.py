"""server-side sessions and failure counts shared by every service process

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.core.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", models.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", models.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", models.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("service_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_service_session_token_hash"), ["token_hash"], unique=True
        )
        batch_op.create_index(batch_op.f("ix_service_session_user_id"), ["user_id"], unique=False)
    op.create_table(
        "failure_hit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(length=200), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("failure_hit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_failure_hit_bucket"), ["bucket"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("failure_hit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_failure_hit_bucket"))
    op.drop_table("failure_hit")
    with op.batch_alter_table("service_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_session_user_id"))
        batch_op.drop_index(batch_op.f("ix_service_session_token_hash"))
    op.drop_table("service_session")
