"""a refused coordinator answer of a saisine is kept on its wait, not on the saisine

`flows.waits.ask` (revision 0003) shows the reason above the form again, so the saisine's
own `last_form_error` goes.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("saisine", schema=None) as batch_op:
        batch_op.drop_column("last_form_error")


def downgrade() -> None:
    with op.batch_alter_table("saisine", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_form_error",
                sqlmodel.sql.sqltypes.AutoString(length=500),
                nullable=False,
                server_default="",
            )
        )
