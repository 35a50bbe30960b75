"""The saisine uses the CLSM's directory: the referring structure matched by name, the
yearly report with the earlier years' totals, the CLSM's own orientation catalogue."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.core import clock, db
from models.core.audit import Actor
from models.core.directory import (
    OrientationCreate,
    PastTotalsCreate,
    add_orientation,
    orientation_catalogue,
    rename_orientation,
    set_orientation_active,
    set_past_totals,
)
from models.core.enums import Channel, Role
from models.core.errors import DomainError
from models.core.people import Organisation
from models.saisine.intake import open_saisine
from models.saisine.level1 import orientation_choices, record_orientation
from models.saisine.report import yearly_report, yearly_report_csv
from models.saisine.rules import OrientationKind
from service.main import create_app
from tests import factories
from tests.support.saisine import Cell, build_cell, intake
from tests.support.service_kit import PASSWORD, login_data

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


def _enter_past_years(session: Session, cell: Cell) -> None:
    assert cell.clsm.id is not None
    for year, level1, level2, urgent in [(2019, 9, 2, 1), (2020, 10, 1, 1), (2021, 6, 2, 0)]:
        set_past_totals(
            session=session,
            clsm_id=cell.clsm.id,
            data=PastTotalsCreate(year=year, level1=level1, level2=level2, urgent=urgent),
            version=None,
            actor=COORD,
        )


def test_the_yearly_report_shows_the_earlier_years_beside_the_counted_one(
    session: Session, cell: Cell
) -> None:
    _enter_past_years(session, cell)
    open_saisine(session=session, intake=intake(on=date(2022, 3, 2)), actor=COORD)
    open_saisine(session=session, intake=intake(on=date(2022, 5, 9), urgent=True), actor=COORD)
    assert cell.clsm.id is not None
    report = yearly_report(session, cell.clsm.id, 2022)
    assert [(t.year, t.total, t.entered) for t in report.evolution] == [
        (2019, 12, True),
        (2020, 12, True),
        (2021, 8, True),
        (2022, 2, False),
    ]
    assert (report.evolution[-1].urgent, report.evolution[-1].ongoing) == (1, 1)
    # a year counted from the cases shows in the next year's evolution; later totals do not
    assert [t.year for t in yearly_report(session, cell.clsm.id, 2023).evolution] == [
        2019,
        2020,
        2021,
        2022,
        2023,
    ]
    assert [t.year for t in yearly_report(session, cell.clsm.id, 2020).evolution] == [2019, 2020]
    rows = list(
        csv.reader(io.StringIO(yearly_report_csv(session, cell.clsm.id, 2022)), delimiter=";")
    )
    evolution = rows[rows.index(["Évolution"]) + 1 :]
    assert evolution[0][:6] == ["Année", "Niveau 1", "Niveau 2", "Urgence", "En cours", "Total"]
    assert [(r[0], r[5], r[6]) for r in evolution[1:]] == [
        ("2019", "12", "totaux saisis"),
        ("2020", "12", "totaux saisis"),
        ("2021", "8", "totaux saisis"),
        ("2022", "2", "saisines enregistrées"),
    ]


def test_the_report_page_shows_the_evolution_over_the_years(db_url: str) -> None:
    with db.session_scope() as session:
        cell = build_cell(session)
        _enter_past_years(session, cell)
        open_saisine(session=session, intake=intake(on=date(2022, 3, 2)), actor=COORD)
        user = factories.user(session, cell.clsm, Role.COORDINATOR, PASSWORD)
    with TestClient(create_app()) as client:
        client.post("/login", data=login_data(client, user.email, PASSWORD))
        page = client.get("/reports/saisines/2022")
    assert page.status_code == 200
    assert "Évolution sur les années" in page.text
    cells = re.findall(
        r"<tr><th scope=\"row\">(\d{4})</th>(?:<td>[^<]*</td>){4}<td>(\d+)</td>", page.text
    )
    assert cells == [("2019", "12"), ("2020", "12"), ("2021", "8"), ("2022", "1")]


def test_the_orientation_is_chosen_from_the_clsm_catalogue_and_keeps_its_label(
    session: Session, cell: Cell
) -> None:
    from pydantic import ValidationError

    from flows.inputs.saisine import ESCALATE, orientation_form

    assert cell.clsm.id is not None
    saisine = open_saisine(session=session, intake=intake(), actor=COORD)
    # a CLSM without a catalogue keeps the default orientations
    assert "Orientation vers le DAC-PTA" in orientation_choices(session, saisine)
    for label in ["Orientation vers le DAC-PTA", "Visite conjointe avec l'équipe mobile"]:
        add_orientation(
            session=session, clsm_id=cell.clsm.id, data=OrientationCreate(label=label), actor=COORD
        )
    dac, mobile = orientation_catalogue(session, cell.clsm.id)
    dac.code = "dac_pta"
    session.add(dac)
    session.flush()
    choices = orientation_choices(session, saisine)
    assert choices == {
        "Orientation vers le DAC-PTA": OrientationKind.DAC_PTA,
        "Visite conjointe avec l'équipe mobile": OrientationKind.OTHER,
    }
    form = orientation_form(list(choices))
    assert form.model_validate({"outcome": ESCALATE}).outcome == ESCALATE
    with pytest.raises(ValidationError):
        form.model_validate({"outcome": "Intervention au domicile"})  # not this CLSM's wording

    chosen = form.model_validate({"outcome": "Visite conjointe avec l'équipe mobile"}).outcome
    record_orientation(
        session=session,
        saisine=saisine,
        kind=choices[chosen],
        who_acts="CHL",
        detail="",
        follow_up_on=None,
        actor=COORD,
        label=chosen,
    )
    rename_orientation(
        session=session,
        row=mobile,
        data=OrientationCreate(label="Visite à domicile de l'équipe mobile"),
        version=mobile.version,
        actor=COORD,
    )
    set_orientation_active(session=session, row=dac, active=False, version=dac.version, actor=COORD)
    assert list(orientation_choices(session, saisine)) == ["Visite à domicile de l'équipe mobile"]
    [row] = yearly_report(session, cell.clsm.id, clock.now(session).year).rows
    assert row.decisions == "Niveau 1 : Visite conjointe avec l'équipe mobile (CHL)"
