"""an orientation keeps the label it was recorded with (the CLSM's catalogue may rename it)

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orientation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "label",
                sqlmodel.sql.sqltypes.AutoString(length=200),
                nullable=False,
                server_default="",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("orientation", schema=None) as batch_op:
        batch_op.drop_column("label")
