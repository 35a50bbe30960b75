"""A new CLSM adopts the product through its interfaces: the Bocage Bressuirais CLSM, created
by an admin (`clsm clsm create`), its network imported from the coordinator's .xlsx
(`clsm directory import`). Shared by the end-to-end tests of both processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from typer.testing import CliRunner

SLUG = "bocage-bressuirais"
COORDINATION = "coordination@bocage.example"
HEADER = [
    "Type", "Structure", "Nom court", "Alias", "Catégorie", "Adresse", "Membre permanent",
    "Rang de rotation", "Actif", "Nom", "Fonction", "Courriel", "Téléphone", "Rôles",
    "Signée le", "Valable du", "Valable au", "Référence du document",
]  # fmt: skip
STRUCTURES = [
    ("Centre hospitalier Nord Deux-Sèvres", "CHNDS", "oui", 1),
    ("CCAS de Bressuire", "CCAS Bressuire", "oui", 2),
    ("Udaf des Deux-Sèvres", "Udaf 79", "non", None),
    ("Habitat Nord Deux-Sèvres", "HN2S", "non", None),
]
# one contact a structure: its referent for saisines and its immersion contact
CONTACTS = [
    ("Centre hospitalier Nord Deux-Sèvres", "Dr Anne Giraud", "anne.giraud@chnds.example"),
    ("CCAS de Bressuire", "Marc Texier", "marc.texier@ccas-bressuire.example"),
    ("Udaf des Deux-Sèvres", "Lucie Bonnin", "lucie.bonnin@udaf79.example"),
    ("Habitat Nord Deux-Sèvres", "Karim Said", "karim.said@hn2s.example"),
]
ROLES = "référent saisines, contact immersion"


def directory_xlsx(path: Path) -> Path:
    """The coordinator's spreadsheet: one line per structure, contact and convention."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    for name, short, permanent, rank in STRUCTURES:
        row: dict[str, object] = dict.fromkeys(HEADER, "")
        row.update(
            {"Type": "structure", "Structure": name, "Nom court": short, "Actif": "oui"},
        )
        row.update({"Membre permanent": permanent, "Rang de rotation": rank or ""})
        sheet.append(list(row.values()))
    for structure, person, email in CONTACTS:
        row = dict.fromkeys(HEADER, "")
        row.update({"Type": "contact", "Structure": structure, "Actif": "oui", "Nom": person})
        row.update({"Fonction": "Référente", "Courriel": email, "Rôles": ROLES})
        sheet.append(list(row.values()))
    for name, *_ in STRUCTURES[:3]:  # the housing provider has no convention
        row = dict.fromkeys(HEADER, "")
        row.update({"Type": "convention", "Structure": name, "Signée le": "15/12/2025"})
        row.update({"Valable du": "01/01/2026", "Valable au": "31/12/2028"})
        row.update({"Référence du document": f"CONV-2026-{name[:4].upper()}"})
        sheet.append(list(row.values()))
    book.save(path)
    return path


def set_up_bocage(folder: Path) -> Path:
    """An admin creates the CLSM and imports its spreadsheet, by the command line only."""
    from service.cli import app

    cli = CliRunner()
    created = cli.invoke(
        app,
        [
            "clsm", "create", "--slug", SLUG, "--name", "CLSM du Bocage Bressuirais",
            "--territory", "Bocage Bressuirais", "--coordinator-email", COORDINATION,
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    sheet = directory_xlsx(folder / "annuaire-bocage.xlsx")
    imported = cli.invoke(app, ["directory", "import", str(sheet), "--clsm", SLUG])
    assert imported.exit_code == 0, imported.output
    assert "11 création(s)" in imported.output, imported.output
    return sheet


def field_schema(schema: dict[str, Any], field: str) -> str:
    """A form field's schema with the definitions it refers to (its choices), as text."""
    text = json.dumps(schema["properties"][field], ensure_ascii=False)
    for name, definition in (schema.get("definitions") or schema.get("$defs") or {}).items():
        if f"/{name}" in text:
            text += json.dumps(definition, ensure_ascii=False)
    return text


def as_proposed(schema: dict[str, Any]) -> dict[str, Any]:
    """A coordinator's form answered as prefilled: every field's default, whatever its shape
    (typed text, select or multiselect)."""
    values = {
        name: field["default"] for name, field in schema["properties"].items() if "default" in field
    }
    assert values, f"the form has no prefilled value: {schema}"
    return values
