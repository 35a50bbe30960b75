"""Yearly totals of the years before the product."""

from __future__ import annotations

from sqlmodel import Session, col, select

from models.core.audit import Actor
from models.core.directory.changes import _change, _created
from models.core.directory.fields import (
    PastTotalsCreate,
)
from models.core.directory.tables import PastTotals


def past_totals(session: Session, clsm_id: int) -> list[PastTotals]:
    """Yearly totals entered for the years before the product, oldest first (for the yearly
    report's evolution over years)."""
    return list(
        session.exec(
            select(PastTotals).where(PastTotals.clsm_id == clsm_id).order_by(col(PastTotals.year))
        )
    )


def set_past_totals(
    *,
    session: Session,
    clsm_id: int,
    data: PastTotalsCreate,
    version: int | None,
    actor: Actor,
) -> PastTotals:
    """Enter (or correct) one year's totals; `version` is checked when the year exists."""
    row = session.exec(
        select(PastTotals).where(PastTotals.clsm_id == clsm_id, PastTotals.year == data.year)
    ).first()
    if row is None:
        row = PastTotals(clsm_id=clsm_id, **data.model_dump())
        _created(session, row, clsm_id, "directory.totals.created", actor, f"Année {data.year}")
        return row
    _change(
        session,
        row=row,
        clsm_id=clsm_id,
        values=data.model_dump(),
        version=version,
        what=f"Les totaux de {data.year}",
        action="directory.totals.updated",
        actor=actor,
    )
    return row
