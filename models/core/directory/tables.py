"""The directory's own tables (structures, contacts and conventions are in models.core.people)."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint
from sqlmodel import Field as Column
from sqlmodel import SQLModel


class OrientationEntry(SQLModel, table=True):
    """One orientation of a CLSM's catalogue; retired entries stay for the cases that used
    them (a case keeps the label it recorded)."""

    __tablename__ = "orientation_entry"

    id: int | None = Column(default=None, primary_key=True)
    clsm_id: int = Column(foreign_key="clsm.id", index=True)
    code: str = Column(default="", max_length=40)
    label: str = Column(max_length=200)
    position: int = 0
    active: bool = True
    version: int = 1


class PastTotals(SQLModel, table=True):
    """Yearly totals of saisines of a year before the CLSM used the product."""

    __tablename__ = "past_totals"
    __table_args__ = (UniqueConstraint("clsm_id", "year", name="uq_past_totals_year"),)

    id: int | None = Column(default=None, primary_key=True)
    clsm_id: int = Column(foreign_key="clsm.id", index=True)
    year: int
    level1: int = 0
    level2: int = 0
    urgent: int = 0
    note: str = Column(default="", max_length=500)
    version: int = 1
