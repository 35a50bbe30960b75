"""a kept application remembers the binôme the coordinator declared at the selection

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("immersion_application", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pair_application_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("immersion_application", schema=None) as batch_op:
        batch_op.drop_column("pair_application_id")
