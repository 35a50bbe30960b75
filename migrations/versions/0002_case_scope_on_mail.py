"""outbox and reminder plans carry their case's CLSM and label

Rendering a mail no longer looks its case up (the core knows no process): the CLSM and the
French label of the case are stored on the row when it is queued. Existing rows are filled
from their case.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the CLSM and label of each kind of case, as the process packages write them
_CASES = (
    ("session", "immersion_session", "'Session « ' || c.title || ' »'"),
    ("saisine", "saisine", "'Saisine ' || c.reference"),
    ("meeting", "cell_meeting", "'Réunion de cellule'"),
)


def upgrade() -> None:
    for table in ("outbox", "reminder_plan"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("clsm_id", sa.Integer(), nullable=True))
            batch_op.add_column(
                sa.Column(
                    "case_label",
                    sqlmodel.sql.sqltypes.AutoString(length=200),
                    nullable=False,
                    server_default="",
                )
            )
            batch_op.create_foreign_key(f"fk_{table}_clsm_id_clsm", "clsm", ["clsm_id"], ["id"])
        for case_type, case_table, label in _CASES:
            op.execute(
                f"UPDATE {table} SET "
                f"clsm_id = (SELECT c.clsm_id FROM {case_table} c WHERE c.id = {table}.case_id), "
                f"case_label = (SELECT {label} FROM {case_table} c WHERE c.id = {table}.case_id) "
                f"WHERE case_type = '{case_type}'"
            )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_clsm_id"), ["clsm_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_clsm_id"))
    for table in ("outbox", "reminder_plan"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_clsm_id_clsm", type_="foreignkey")
            batch_op.drop_column("case_label")
            batch_op.drop_column("clsm_id")
