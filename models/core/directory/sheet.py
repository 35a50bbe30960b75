"""The coordinator's spreadsheet of the network: read (.csv, .xlsx, .ods), planned, applied.

One table, one row per structure, contact or convention (column « Type »), in the format of
the README (docs/annuaire-exemple.csv). Reading gives a plan: what will be created, updated
or left as it is, line by line; a file with any bad line is refused whole, with a French
message per line, and nothing is written. Applying the plan goes through the directory's
own functions (audited on the CLSM's chain), in the caller's transaction.
Export writes the same columns, so that export → import changes nothing.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path
from typing import Any

from models.core.directory.fields import (
    KIND_LABELS,
    ROLE_LABELS,
    ContactRole,
    StructureKind,
)
from models.core.directory.matching import fold
from models.core.errors import DomainError

COLUMNS: list[tuple[str, str]] = [
    ("type", "Type"),
    ("structure", "Structure"),
    ("short_name", "Nom court"),
    ("aliases", "Alias"),
    ("kind", "Catégorie"),
    ("address", "Adresse"),
    ("permanent_member", "Membre permanent"),
    ("rotation_order", "Rang de rotation"),
    ("active", "Actif"),
    ("name", "Nom"),
    ("function", "Fonction"),
    ("email", "Courriel"),
    ("phone", "Téléphone"),
    ("roles", "Rôles"),
    ("signed_on", "Signée le"),
    ("starts_on", "Valable du"),
    ("ends_on", "Valable au"),
    ("document_ref", "Référence du document"),
]
HEADERS = {key: header for key, header in COLUMNS}
_SYNONYMS = {
    "email": ["E-mail", "Mail", "Adresse électronique", "Adresse mail"],
    "phone": ["Tél", "Tel", "Telephone"],
    "aliases": ["Alias", "Autres noms"],
    "kind": ["Categorie", "Type de structure"],
    "starts_on": ["Valide du", "Début", "Du"],
    "ends_on": ["Valide au", "Fin", "Au"],
    "document_ref": ["Référence", "Document"],
    "rotation_order": ["Rotation", "Ordre de rotation"],
}
_BY_HEADER = {fold(h): k for k, h in COLUMNS} | {
    fold(s): k for k, names in _SYNONYMS.items() for s in names
}
ROW_TYPES = {"structure": "structure", "contact": "contact", "convention": "convention"}
_KINDS = {fold(label): kind for kind, label in KIND_LABELS.items()} | {
    fold(kind.value): kind for kind in StructureKind
}
_ROLES = {fold(label): role for role, label in ROLE_LABELS.items()} | {
    fold(role.value): role for role in ContactRole
}
_YES = {"oui", "o", "x", "1", "vrai", "true", "yes"}
_NO = {"non", "n", "0", "faux", "false", "no", ""}
FIELD_LABELS = {
    "name": "Nom",
    "short_name": "Nom court",
    "aliases": "Alias",
    "kind": "Catégorie",
    "address": "Adresse",
    "permanent_member": "Membre permanent",
    "rotation_order": "Rang de rotation",
    "active": "Actif",
    "function": "Fonction",
    "email": "Courriel",
    "phone": "Téléphone",
    "roles": "Rôles",
    "organisation_id": "Structure",
    "signed_on": "Signée le",
    "starts_on": "Valable du",
    "ends_on": "Valable au",
    "document_ref": "Référence du document",
}

Cell = str | date


class ImportRefused(DomainError):
    """The file cannot be imported; `problems` has one French message per bad line."""

    status_code = 422

    def __init__(self, problems: list[str]) -> None:
        count = len(problems)
        super().__init__(
            f"Import refusé, rien n'a été enregistré : {count} ligne(s) à corriger. "
            + " ".join(problems)
        )
        self.problems = problems


def _cell(value: Any) -> Cell:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "oui" if value else "non"
    return str(value).strip()


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def _csv_rows(content: bytes) -> list[list[Cell]]:
    text = _decode(content)
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") >= first.count(",") else ","
    return [[_cell(v) for v in row] for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


def _workbook_rows(content: bytes) -> list[list[Cell]]:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(content))
        sheet = book.get_sheet_by_index(0)
        return [[_cell(v) for v in row] for row in sheet.to_python(skip_empty_area=False)]
    except Exception as error:  # calamine's errors have no common base class
        raise ImportRefused(
            [f"Le fichier n'a pas pu être lu comme un tableur ({error})."]
        ) from None


def read_rows(filename: str, content: bytes) -> list[tuple[int, dict[str, Cell]]]:
    """The data lines of a file: (line number as the spreadsheet shows it, cells by column)."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".csv", ".txt"):
        table = _csv_rows(content)
    elif suffix in (".xlsx", ".xlsm", ".xls", ".ods"):
        table = _workbook_rows(content)
    else:
        raise ImportRefused(
            [f"Format non pris en charge : « {suffix or filename} » (.csv, .xlsx ou .ods)."]
        )
    if not table:
        raise ImportRefused(["Le fichier est vide."])
    header = [fold(str(h)) for h in table[0]]
    keys = [_BY_HEADER.get(h) for h in header]
    if "type" not in keys:
        raise ImportRefused(
            ["Colonne « Type » introuvable en première ligne (voir le modèle d'annuaire)."]
        )
    rows = []
    for number, values in enumerate(table[1:], start=2):
        cells = {k: v for k, v in zip(keys, values, strict=False) if k is not None}
        if any(v != "" for v in cells.values()):
            rows.append((number, cells))
    return rows
