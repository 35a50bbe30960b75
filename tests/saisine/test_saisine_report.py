"""The yearly report rebuilt from the Poitiers 2022 saisines of the demo, and its command."""

from __future__ import annotations

from sqlmodel import Session, select
from typer.testing import CliRunner

from models.core import db
from models.core.audit import verify_all
from models.core.outbox import OutboxMessage
from models.core.people import Clsm
from models.saisine.report import yearly_report
from models.saisine.rules import ReportLevel
from models.saisine.tables import Saisine
from service.demo import load_demo, load_saisine_demo


def _report_2022() -> list[tuple[str, str, str, str]]:
    with Session(db.get_engine()) as session:
        clsm = session.exec(select(Clsm).where(Clsm.slug == "poitiers")).one()
        report = yearly_report(session, clsm.id or 0, 2022)
        assert report.counts[ReportLevel.LEVEL1] == 5
        assert report.counts[ReportLevel.LEVEL2] == 1
        return [(r.month, r.referrer, r.decisions, r.note) for r in report.rows]


def test_the_2022_table_is_rebuilt_from_the_demo_cases(db_url: str) -> None:
    load_demo()
    load_saisine_demo(start_open_run=False)
    load_saisine_demo(start_open_run=False)  # idempotent
    rows = _report_2022()
    assert [(month, referrer) for month, referrer, _, _ in rows] == [
        ("Janvier", "ICF Habitat"),
        ("Mars", "MQ La Gibauderie"),
        ("Juillet", "D2SP - Pôle Salubrité publique"),
        ("Octobre", "Un chez Soi d'Abord"),
        ("Novembre", "CHL - Service majeurs protégés"),
        ("Décembre", "Mission Relations aux habitants et aux usagers"),
    ]
    assert rows[0][2:] == (
        "Niveau 1 : Organisation d'une réunion de concertation par ICF Habitat et le DAC-PTA",
        "Réunion de cellule annulée",
    )
    assert rows[1][2] == "Niveau 1 : Mise en lien avec la coordinatrice de parcours"
    assert rows[2][3] == "Intervention bilatérale au domicile"
    assert rows[4][2].startswith(
        "Niveau 2 : réunion de cellule. Décision : Organisation d'une réunion de concertation "
        "par le DAC une fois par an"
    )
    assert rows[4][3] == (
        "Membres invités : MDPH, Un chez Soi d'Abord, Service social du CHU, "
        "Cadre des urgences du CHU"
    )
    with Session(db.get_engine()) as session:
        assert len(session.exec(select(Saisine)).all()) == 6
        assert all(s.closed_at is not None for s in session.exec(select(Saisine)))
        assert session.exec(select(OutboxMessage)).first() is None  # history is not mailed
        assert verify_all(session).ok


def test_the_report_command_prints_the_table_and_the_csv(db_url: str) -> None:
    from service.cli import app

    load_demo()
    load_saisine_demo(start_open_run=False)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "saisines", "--year", "2022"])
    assert result.exit_code == 0, result.output
    assert "Saisines de la cellule du CLSM de Poitiers en 2022" in result.output
    assert "Réunion de cellule annulée" in result.output
    assert "niveau 1 : 5 ; niveau 2 : 1" in result.output
    result = runner.invoke(app, ["report", "saisines", "--year", "2022", "--csv"])
    assert result.exit_code == 0
    assert result.output.splitlines()[0].startswith("Réunion;Saisine (source);Décisions;Note")
    assert "Total niveau 2;1" in result.output
    unknown = runner.invoke(app, ["report", "saisines", "--year", "2022", "--clsm", "nulle-part"])
    assert unknown.exit_code == 1


def test_the_open_demo_saisine_is_a_valid_intake_form_without_personal_data() -> None:
    from flows.inputs.saisine import SaisineIntakeForm
    from service.demo import OPEN_SAISINE

    form = SaisineIntakeForm.model_validate(OPEN_SAISINE)
    assert (form.clsm, form.urgent) == ("poitiers", False)
    personal = {"initials", "commune", "difficulty", "consent_note", "age_range"}
    assert not personal & set(OPEN_SAISINE)
    assert not personal & set(SaisineIntakeForm.model_fields)
