"""the coordinator reviews the placements before the host requests go out

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import models.core.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE_PLACEMENT = ("DRAFT", "CALL_OPEN", "SELECTION")
"""Statuses (stored by name) whose sessions have not given hosts yet: they will be reviewed."""


def upgrade() -> None:
    with op.batch_alter_table("immersion_session", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "placements_reviewed_at",
                models.core.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    # sessions past the selection sent their host requests without a review: they go on
    # as before (later arrivals placed automatically)
    table = sa.table(
        "immersion_session",
        sa.column("status", sa.String()),
        sa.column("placements_reviewed_at", models.core.base.UTCDateTime(timezone=True)),
    )
    op.execute(
        table.update()
        # (on PostgreSQL the column is of the enum type `sessionstatus`: compared as text)
        .where(sa.cast(table.c.status, sa.String()).not_in(BEFORE_PLACEMENT))
        .values(placements_reviewed_at=datetime.now(UTC))
    )


def downgrade() -> None:
    with op.batch_alter_table("immersion_session", schema=None) as batch_op:
        batch_op.drop_column("placements_reviewed_at")
