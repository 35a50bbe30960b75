"""directory: CLSM settings, structures' aliases and activity, contacts' phone and roles,
conventions' signature, cell rotation, orientation catalogue, past yearly totals

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# models.core.directory.DEFAULT_ORIENTATIONS as it was when this revision was written
_DEFAULT_ORIENTATIONS = [
    ("care_path_coordinator", "Mise en lien avec la coordinatrice de parcours"),
    ("dac_pta", "Orientation vers le DAC-PTA"),
    ("synthesis_meeting", "Organisation d'une réunion de synthèse"),
    ("concertation_meeting", "Organisation d'une réunion de concertation"),
    ("home_intervention", "Intervention au domicile"),
    ("relay", "Relais vers un partenaire"),
    ("other", "Autre orientation"),
]


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("clsm", schema=None) as batch_op:
        batch_op.add_column(sa.Column("territory", _text(200), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("time_zone", _text(60), nullable=False, server_default="Europe/Paris")
        )
        batch_op.add_column(
            sa.Column("sender_email", _text(254), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("reply_to_email", _text(254), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rotation_order", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("aliases", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone", _text(40), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("roles", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("partnership", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("document_ref", _text(200), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "orientation_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clsm_id", sa.Integer(), nullable=False),
        sa.Column("code", _text(40), nullable=False),
        sa.Column("label", _text(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["clsm_id"], ["clsm.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("orientation_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orientation_entry_clsm_id"), ["clsm_id"], unique=False)
    op.create_table(
        "past_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clsm_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("level1", sa.Integer(), nullable=False),
        sa.Column("level2", sa.Integer(), nullable=False),
        sa.Column("urgent", sa.Integer(), nullable=False),
        sa.Column("note", _text(500), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["clsm_id"], ["clsm.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("clsm_id", "year", name="uq_past_totals_year"),
    )
    with op.batch_alter_table("past_totals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_past_totals_clsm_id"), ["clsm_id"], unique=False)
    # every existing CLSM starts with the default orientation catalogue
    bind = op.get_bind()
    for (clsm_id,) in bind.execute(sa.text("SELECT id FROM clsm")).all():
        for position, (code, label) in enumerate(_DEFAULT_ORIENTATIONS, start=1):
            bind.execute(
                sa.text(
                    "INSERT INTO orientation_entry (clsm_id, code, label, position, active, "
                    "version) VALUES (:clsm, :code, :label, :position, :active, 1)"
                ),
                {
                    "clsm": clsm_id,
                    "code": code,
                    "label": label,
                    "position": position,
                    "active": True,
                },
            )


def downgrade() -> None:
    op.drop_table("past_totals")
    op.drop_table("orientation_entry")
    with op.batch_alter_table("partnership", schema=None) as batch_op:
        for name in ("version", "document_ref", "signed_on"):
            batch_op.drop_column(name)
    with op.batch_alter_table("contact", schema=None) as batch_op:
        for name in ("version", "roles", "active", "phone"):
            batch_op.drop_column(name)
    with op.batch_alter_table("organisation", schema=None) as batch_op:
        for name in ("version", "aliases", "active", "rotation_order"):
            batch_op.drop_column(name)
    with op.batch_alter_table("clsm", schema=None) as batch_op:
        for name in ("version", "reply_to_email", "sender_email", "time_zone", "territory"):
            batch_op.drop_column(name)
