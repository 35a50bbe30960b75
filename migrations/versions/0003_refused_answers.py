"""a wait keeps the coordinator's refused answer and its reason

A refused Prefect form is asked again with what was typed and the French reason on top.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wait", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "refused_reason",
                sqlmodel.sql.sqltypes.AutoString(length=500),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(sa.Column("refused_answer", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wait", schema=None) as batch_op:
        batch_op.drop_column("refused_answer")
        batch_op.drop_column("refused_reason")
