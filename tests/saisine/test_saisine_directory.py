"""The saisine uses the CLSM's directory: the referring structure matched by name, the
yearly report with the earlier years' totals, the CLSM's own orientation catalogue."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import Session, select

from models.core.audit import Actor
from models.core.enums import Channel
from models.core.errors import DomainError
from models.core.people import Organisation
from models.saisine.intake import open_saisine
from tests.support.saisine import Cell, build_cell, intake

COORD = Actor.user(1, "Inès Moreau (coordination)", Channel.PREFECT_UI)


@pytest.fixture
def cell(session: Session) -> Cell:
    return build_cell(session)


def _structures(session: Session, cell: Cell) -> list[str]:
    return sorted(
        o.name
        for o in session.exec(select(Organisation).where(Organisation.clsm_id == cell.clsm.id))
    )


@pytest.mark.parametrize(
    "typed", ["un Chez Soi d'Abord", "Un Chez-Soi d’Abord ", "UN CHEZ SOI D'ABORD"]
)
def test_the_referring_structure_is_the_directory_member_whatever_its_spelling(
    session: Session, cell: Cell, typed: str
) -> None:
    before = _structures(session, cell)
    saisine = open_saisine(
        session=session, intake=replace(intake(), referring_structure=typed), actor=COORD
    )
    assert saisine.referrer_organisation_id == cell.org_id("Un chez Soi d'Abord")
    assert _structures(session, cell) == before


def test_an_alias_designates_its_structure(session: Session, cell: Cell) -> None:
    org = cell.orgs["Département"]
    org.aliases = ["Conseil départemental de la Vienne"]
    session.add(org)
    session.flush()
    saisine = open_saisine(
        session=session,
        intake=replace(intake(), referring_structure="conseil departemental de la vienne"),
        actor=COORD,
    )
    assert saisine.referrer_organisation_id == cell.org_id("Département")


def test_a_near_name_is_refused_with_the_name_to_use_and_nothing_is_written(
    session: Session, cell: Cell
) -> None:
    before = _structures(session, cell)
    with pytest.raises(DomainError, match="ressemble à « Un chez Soi d'Abord »"):
        open_saisine(
            session=session,
            intake=replace(intake(), referring_structure="Un chez Soi d'Abort"),
            actor=COORD,
        )
    assert _structures(session, cell) == before


def test_a_structure_new_to_the_directory_is_added_once(session: Session, cell: Cell) -> None:
    first = open_saisine(session=session, intake=intake(), actor=COORD)
    second = open_saisine(
        session=session, intake=replace(intake(), referring_structure="icf habitat"), actor=COORD
    )
    assert first.referrer_organisation_id == second.referrer_organisation_id
    assert _structures(session, cell).count("ICF Habitat") == 1
