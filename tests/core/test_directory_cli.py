"""`clsm clsm create` and `clsm directory import|export`, from an empty installation."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session
from typer.testing import CliRunner

from models.core import db
from models.core import directory as d
from models.core.audit import case_events
from models.core.enums import CaseType
from service.cli import app
from service.demo import DEMO_DIRECTORY, load_demo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "annuaire-exemple.csv"


def _clsm_events(slug: str) -> list[str]:
    with Session(db.get_engine()) as session:
        owner = d.clsm_by_slug(session, slug)
        assert owner.id is not None
        return [e.action for e in case_events(session, CaseType.CLSM.value, owner.id)]


def test_an_admin_creates_a_clsm_and_imports_the_example_file(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "clsm", "create", "--slug", "bocage-bressuirais",
            "--name", "CLSM du Bocage Bressuirais",
            "--coordinator-email", "coordination@bocage.example",
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "CLSM créé : CLSM du Bocage Bressuirais" in created.output

    preview = runner.invoke(
        app, ["directory", "import", str(EXAMPLE), "--clsm", "bocage-bressuirais", "--dry-run"]
    )
    assert preview.exit_code == 0, preview.output
    assert "Ligne 2 — structure « Centre hospitalier Nord Deux-Sèvres » : création" in (
        preview.output
    )
    assert "7 création(s), 0 mise(s) à jour, 0 ligne(s) inchangée(s)." in preview.output
    assert "rien n'a été enregistré" in preview.output
    assert _clsm_events("bocage-bressuirais") == ["directory.clsm.created"]

    done = runner.invoke(app, ["directory", "import", str(EXAMPLE), "--clsm", "bocage-bressuirais"])
    assert done.exit_code == 0, done.output
    assert "Import enregistré." in done.output
    events = _clsm_events("bocage-bressuirais")
    assert events.count("directory.structure.created") == 3
    assert events.count("directory.contact.created") == 2
    assert events[-1] == "directory.imported"

    exported = tmp_path / "annuaire.xlsx"
    out = runner.invoke(
        app, ["directory", "export", "--clsm", "bocage-bressuirais", "-o", str(exported)]
    )
    assert out.exit_code == 0, out.output
    again = runner.invoke(
        app, ["directory", "import", str(exported), "--clsm", "bocage-bressuirais"]
    )
    assert again.exit_code == 0, again.output
    assert "0 création(s), 0 mise(s) à jour, 7 ligne(s) inchangée(s)." in again.output
    assert _clsm_events("bocage-bressuirais") == [*events, "directory.exported"]


def test_a_refused_import_prints_each_line_and_exits_1(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(app, ["clsm", "create", "--slug", "niort", "--name", "CLSM de Niort"])
    bad = tmp_path / "bad.csv"
    bad.write_text("Type;Structure;Courriel\ncontact;Inconnue;a@b.example\nville;X;\n")
    result = runner.invoke(app, ["directory", "import", str(bad), "--clsm", "niort"])
    assert result.exit_code == 1
    assert "Ligne 2 : structure inconnue « Inconnue »." in result.output
    assert "Ligne 3 : type « ville » inconnu (structure, contact ou convention)." in result.output
    unknown = runner.invoke(app, ["directory", "import", str(bad), "--clsm", "nulle-part"])
    assert unknown.exit_code == 1 and "CLSM inconnu : « nulle-part »." in unknown.output


def test_the_demo_network_comes_from_its_spreadsheet_through_the_import(db_url: str) -> None:
    load_demo()
    first = _clsm_events("poitiers")
    assert first.count("directory.structure.created") == 11
    assert first[-1] == "directory.imported"
    load_demo()
    assert _clsm_events("poitiers") == first  # the second load changes nothing
    with Session(db.get_engine()) as session:
        owner = d.clsm_by_slug(session, "poitiers")
        assert owner.id is not None
        match = d.match_structure(session=session, clsm_id=owner.id, name="ucsd")
        assert match.found is not None and match.found.name == "Un chez Soi d'Abord"
        assert [o.short_name for o in d.cell_members(session, owner.id)] == [
            "CCAS",
            "CHL",
            "DAC-PTA",
            "Département",
        ]
    assert DEMO_DIRECTORY.suffix == ".csv"
