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
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from models.core import directory as d
from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.people import Contact, Organisation

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
_BY_HEADER = {d.fold(h): k for k, h in COLUMNS} | {
    d.fold(s): k for k, names in _SYNONYMS.items() for s in names
}
ROW_TYPES = {"structure": "structure", "contact": "contact", "convention": "convention"}
_KINDS = {d.fold(label): kind for kind, label in d.KIND_LABELS.items()} | {
    d.fold(kind.value): kind for kind in d.StructureKind
}
_ROLES = {d.fold(label): role for role, label in d.ROLE_LABELS.items()} | {
    d.fold(role.value): role for role in d.ContactRole
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


# -- reading -------------------------------------------------------------------------------


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
    header = [d.fold(str(h)) for h in table[0]]
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


# -- planning ------------------------------------------------------------------------------


@dataclass
class PlanLine:
    """What importing one line will do."""

    line: int
    what: str  # structure, contact, convention
    label: str
    action: str  # création, mise à jour, inchangé
    changes: list[str] = field(default_factory=list)
    warning: str = ""
    data: BaseModel | None = None
    target: Any = None  # the existing row, for an update
    structure_key: str = ""  # a structure's folded name (contacts, conventions: theirs)
    active: bool = True


@dataclass
class Plan:
    lines: list[PlanLine]

    def count(self, action: str) -> int:
        return sum(1 for line in self.lines if line.action == action)

    @property
    def summary(self) -> str:
        return (
            f"{self.count('création')} création(s), {self.count('mise à jour')} mise(s) à jour, "
            f"{self.count('inchangé')} ligne(s) inchangée(s)"
        )

    @property
    def fingerprint(self) -> str:
        """Identifies the plan: the confirmed plan must be the previewed one."""
        text = "\n".join(
            f"{p.line}|{p.what}|{p.label}|{p.action}|{';'.join(p.changes)}" for p in self.lines
        )
        return hashlib.sha256(text.encode()).hexdigest()


def _text(cells: dict[str, Cell], key: str) -> str:
    value = cells.get(key, "")
    return value.strftime("%d/%m/%Y") if isinstance(value, date) else str(value).strip()


class _LineError(Exception):
    pass


def _bool(cells: dict[str, Cell], key: str, default: bool) -> bool:
    text = d.fold(_text(cells, key))
    if text == "":
        return default
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise _LineError(f"« {_text(cells, key)} » n'est ni oui ni non ({HEADERS[key]})")


def _date(cells: dict[str, Cell], key: str) -> date | None:
    value = cells.get(key, "")
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    for pattern in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise _LineError(f"date invalide « {text} » ({HEADERS[key]}, attendu jj/mm/aaaa)")


def _validated(model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        from_pydantic = []
        for item in error.errors():
            location = [str(p) for p in item.get("loc", ())]
            name = FIELD_LABELS.get(location[0], "") if location else ""
            message = _french(item)
            from_pydantic.append(f"{name} : {message}" if name else message)
        raise _LineError(" ; ".join(from_pydantic)) from None


_MESSAGES = {
    "missing": "valeur manquante",
    "string_too_short": "texte trop court",
    "string_too_long": "texte trop long",
    "string_pattern_mismatch": "format invalide",
    "int_parsing": "nombre entier attendu",
    "greater_than_equal": "valeur trop petite",
    "less_than_equal": "valeur trop grande",
    "date_parsing": "date invalide",
}


def _french(item: Any) -> str:
    kind = str(item.get("type", ""))
    message = str(item.get("msg", "")).removeprefix("Value error, ")
    if kind == "value_error" and "email" in message.lower():
        return "adresse électronique invalide"
    if kind == "value_error":
        return message
    return _MESSAGES.get(kind, "valeur invalide")


def _structure_data(cells: dict[str, Cell]) -> tuple[d.StructureCreate, bool]:
    kind_text = _text(cells, "kind")
    kind = _KINDS.get(d.fold(kind_text)) if kind_text else None
    if kind_text and kind is None:
        raise _LineError(f"catégorie inconnue « {kind_text} »")
    rank = _text(cells, "rotation_order")
    if rank and not rank.isdigit():
        raise _LineError(f"rang de rotation invalide « {rank} » (nombre entier attendu)")
    data = _validated(
        d.StructureCreate,
        {
            "name": _text(cells, "structure"),
            "short_name": _text(cells, "short_name"),
            "aliases": [a for a in _text(cells, "aliases").split("|") if a.strip()],
            "kind": kind,
            "address": _text(cells, "address"),
            "permanent_member": _bool(cells, "permanent_member", False),
            "rotation_order": int(rank) if rank else None,
        },
    )
    assert isinstance(data, d.StructureCreate)
    return data, _bool(cells, "active", True)


def _roles(cells: dict[str, Cell]) -> list[d.ContactRole]:
    roles = []
    for part in _text(cells, "roles").replace("|", ",").split(","):
        if not part.strip():
            continue
        role = _ROLES.get(d.fold(part))
        if role is None:
            known = ", ".join(d.ROLE_LABELS.values())
            raise _LineError(f"rôle inconnu « {part.strip()} » (rôles possibles : {known})")
        roles.append(role)
    return roles


def _shown(value: Any) -> str:
    if value in (None, "", []):
        return "(vide)"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _diff(row: Any, values: dict[str, Any]) -> list[str]:
    return [
        f"{FIELD_LABELS.get(name, name)} : {_shown(d._plain(getattr(row, name)))} → "
        f"{_shown(d._plain(value))}"
        for name, value in values.items()
        if d._plain(getattr(row, name)) != d._plain(value)
    ]


@dataclass
class _Directory:
    """What the plan matches lines against: existing rows, then the file's new ones."""

    structures: list[Organisation]
    new_structures: dict[str, int] = field(default_factory=dict)  # folded name → line
    new_names: dict[str, str] = field(default_factory=dict)  # folded name → name
    emails: dict[str, int] = field(default_factory=dict)  # e-mail → line
    conventions: dict[tuple[str, date], int] = field(default_factory=dict)

    new_orgs: list[Organisation] = field(default_factory=list)  # not written, for matching

    def structure(self, typed: str) -> tuple[Organisation | None, str]:
        """(existing structure or None for one created by the file, its folded key)."""
        match = d.match_among([*self.structures, *self.new_orgs], typed)
        if match.found is not None:
            key = d.fold(match.found.name)
            return (match.found if match.found.id is not None else None), key
        hint = f" ; vouliez-vous dire « {match.near[0].name} » ?" if match.near else ""
        raise _LineError(f"structure inconnue « {typed} »{hint}")


def _plan_structure(number: int, cells: dict[str, Cell], book: _Directory) -> PlanLine:
    name = _text(cells, "structure")
    if not name:
        raise _LineError("nom de la structure manquant (colonne Structure)")
    data, active = _structure_data(cells)
    key = d.fold(data.name)
    if key in book.new_structures:
        raise _LineError(f"structure « {name} » déjà décrite ligne {book.new_structures[key]}")
    match = d.match_among(book.structures, data.name)
    line = PlanLine(number, "structure", data.name, "création", data=data, structure_key=key)
    line.active = active
    if match.found is not None and match.by_alias:
        raise _LineError(
            f"« {name} » est un autre nom de « {match.found.name} » : "
            "indiquez le nom de la structure dans la colonne Structure"
        )
    for alias in data.aliases:
        others = [o for o in [*book.structures, *book.new_orgs] if o is not match.found]
        other = d.match_among(others, alias)
        if other.found is not None:
            raise _LineError(f"l'alias « {alias} » désigne déjà « {other.found.name} »")
    book.new_structures[key] = number
    if match.found is not None:
        found = match.found
        line.target = found
        line.changes = _diff(found, {**d._structure_values(data), "active": active})
        line.action = "mise à jour" if line.changes else "inchangé"
        return line
    book.new_names[key] = data.name
    book.new_orgs.append(
        Organisation(clsm_id=0, name=data.name, short_name=data.short_name, aliases=data.aliases)
    )
    if match.near:
        line.warning = "nom proche de " + ", ".join(f"« {o.name} »" for o in match.near)
    return line


def _plan_contact(
    number: int, cells: dict[str, Cell], book: _Directory, session: Session, clsm_id: int
) -> PlanLine:
    typed = _text(cells, "structure")
    if not typed:
        raise _LineError("structure manquante (colonne Structure)")
    structure, key = book.structure(typed)
    if structure is not None and not structure.active:
        raise _LineError(f"la structure « {structure.name} » est désactivée")
    email = _text(cells, "email").lower()
    if not email:
        raise _LineError("courriel manquant")
    if email in book.emails:
        raise _LineError(f"le courriel {email} figure déjà ligne {book.emails[email]}")
    data = _validated(
        d.ContactCreate,
        {
            "organisation_id": structure.id if structure is not None else 1,
            "name": _text(cells, "name"),
            "function": _text(cells, "function"),
            "email": email,
            "phone": _text(cells, "phone"),
            "roles": _roles(cells),
        },
    )
    assert isinstance(data, d.ContactCreate)
    active = _bool(cells, "active", True)
    book.emails[data.email] = number
    line = PlanLine(number, "contact", data.name, "création", data=data, structure_key=key)
    line.active = active
    existing = d.contact_by_email(session, clsm_id, data.email)
    if existing is not None:
        line.target = existing
        values = {**data.model_dump(), "roles": [r.value for r in data.roles], "active": active}
        if structure is None:
            values["organisation_id"] = -1  # moves to a structure the file creates
        line.changes = _diff(existing, values)
        line.action = "mise à jour" if line.changes else "inchangé"
    return line


def _plan_convention(
    number: int, cells: dict[str, Cell], book: _Directory, session: Session, clsm_id: int
) -> PlanLine:
    typed = _text(cells, "structure")
    if not typed:
        raise _LineError("structure manquante (colonne Structure)")
    structure, key = book.structure(typed)
    starts_on, ends_on = _date(cells, "starts_on"), _date(cells, "ends_on")
    signed_on = _date(cells, "signed_on")
    if starts_on is None or ends_on is None:
        raise _LineError("dates de validité manquantes (colonnes Valable du et Valable au)")
    data = _validated(
        d.ConventionCreate,
        {
            "organisation_id": structure.id if structure is not None else 1,
            "signed_on": signed_on,
            "starts_on": starts_on,
            "ends_on": ends_on,
            "document_ref": _text(cells, "document_ref"),
        },
    )
    assert isinstance(data, d.ConventionCreate)
    if (key, starts_on) in book.conventions:
        raise _LineError(f"convention déjà décrite ligne {book.conventions[(key, starts_on)]}")
    book.conventions[(key, starts_on)] = number
    name = structure.name if structure is not None else book.new_names[key]
    line = PlanLine(
        number,
        "convention",
        f"{name} ({starts_on:%d/%m/%Y} – {ends_on:%d/%m/%Y})",
        "création",
        data=data,
        structure_key=key,
    )
    if structure is not None:
        existing = [
            p for p, _ in d.conventions(session, clsm_id, structure.id) if p.starts_on == starts_on
        ]
        if existing:
            line.target = existing[0]
            line.changes = _diff(existing[0], data.model_dump())
            line.action = "mise à jour" if line.changes else "inchangé"
    return line


def _sentence(number: int, error: Exception) -> str:
    text = str(error)
    return f"Ligne {number} : {text}" + ("" if text.endswith(("?", ".")) else ".")


def plan_import(*, session: Session, clsm_id: int, filename: str, content: bytes) -> Plan:
    """What importing the file would do; ImportRefused (one message per bad line) if any
    line is wrong. Reads only."""
    rows = read_rows(filename, content)
    book = _Directory(d.structures(session, clsm_id))
    problems: list[str] = []
    lines: list[PlanLine] = []
    typed_rows: dict[str, list[tuple[int, dict[str, Cell]]]] = {t: [] for t in ROW_TYPES}
    for number, cells in rows:
        kind = ROW_TYPES.get(d.fold(_text(cells, "type")))
        if kind is None:
            problems.append(
                f"Ligne {number} : type « {_text(cells, 'type')} » inconnu "
                "(structure, contact ou convention)."
            )
            continue
        typed_rows[kind].append((number, cells))
    for number, cells in typed_rows["structure"]:
        try:
            lines.append(_plan_structure(number, cells, book))
        except _LineError as error:
            problems.append(_sentence(number, error))
    for kind, planner in (("contact", _plan_contact), ("convention", _plan_convention)):
        for number, cells in typed_rows[kind]:
            try:
                lines.append(planner(number, cells, book, session, clsm_id))
            except _LineError as error:
                problems.append(_sentence(number, error))
    if problems:
        problems.sort(key=lambda p: int(p.split(" ", 2)[1]) if p.startswith("Ligne ") else 0)
        raise ImportRefused(problems)
    lines.sort(key=lambda line: line.line)
    return Plan(lines)


def apply_plan(*, session: Session, clsm_id: int, plan: Plan, actor: Actor, filename: str) -> None:
    """Write the plan in the caller's transaction (every change audited); a plan with
    nothing to change writes nothing."""
    if not any(line.action != "inchangé" for line in plan.lines):
        return
    ids: dict[str, int] = {}
    for line in plan.lines:
        if line.what != "structure":
            continue
        data = line.data
        assert isinstance(data, d.StructureCreate)
        row = line.target
        if row is None:
            row = d.create_structure(
                session=session, clsm_id=clsm_id, data=data, actor=actor, confirm_near=True
            )
        elif line.action == "mise à jour":
            d.update_structure(session=session, row=row, data=data, version=None, actor=actor)
        if row.active != line.active:
            d.set_structure_active(
                session=session, row=row, active=line.active, version=None, actor=actor
            )
        assert row.id is not None
        ids[line.structure_key] = row.id
    for line in plan.lines:
        if line.what == "structure" or line.action == "inchangé":
            continue
        organisation_id = ids.get(line.structure_key)
        data = line.data
        assert data is not None
        if organisation_id is not None:
            data = data.model_copy(update={"organisation_id": organisation_id})
        if line.what == "contact":
            assert isinstance(data, d.ContactCreate)
            contact: Contact = line.target or d.create_contact(
                session=session, clsm_id=clsm_id, data=data, actor=actor
            )
            if line.target is not None:
                d.update_contact(
                    session=session,
                    clsm_id=clsm_id,
                    row=contact,
                    data=data,
                    version=None,
                    actor=actor,
                )
            if contact.active != line.active:
                d.set_contact_active(
                    session=session,
                    clsm_id=clsm_id,
                    row=contact,
                    active=line.active,
                    version=None,
                    actor=actor,
                )
        else:
            assert isinstance(data, d.ConventionCreate)
            if line.target is None:
                d.create_convention(session=session, clsm_id=clsm_id, data=data, actor=actor)
            else:
                d.update_convention(
                    session=session,
                    clsm_id=clsm_id,
                    row=line.target,
                    data=data,
                    version=None,
                    actor=actor,
                )
    d._record(
        session,
        clsm_id,
        "directory.imported",
        actor,
        {"fichier": filename, "bilan": plan.summary},
    )


def import_file(
    *, session: Session, clsm_id: int, filename: str, content: bytes, actor: Actor
) -> Plan:
    """Plan and apply in the caller's transaction (all or nothing)."""
    plan = plan_import(session=session, clsm_id=clsm_id, filename=filename, content=content)
    apply_plan(session=session, clsm_id=clsm_id, plan=plan, actor=actor, filename=filename)
    return plan


# -- export --------------------------------------------------------------------------------


def export_rows(session: Session, clsm_id: int) -> list[dict[str, Cell]]:
    """The directory as rows of the import format (structures, contacts, conventions)."""
    rows: list[dict[str, Cell]] = []
    orgs = d.structures(session, clsm_id)
    for org in orgs:
        rows.append(
            {
                "type": "structure",
                "structure": org.name,
                "short_name": org.short_name,
                "aliases": " | ".join(org.aliases or []),
                "kind": _kind_label(org.kind),
                "address": org.address,
                "permanent_member": "oui" if org.permanent_member else "non",
                "rotation_order": str(org.rotation_order or ""),
                "active": "oui" if org.active else "non",
            }
        )
    for contact, org in d.contacts(session, clsm_id):
        rows.append(
            {
                "type": "contact",
                "structure": org.name,
                "active": "oui" if contact.active else "non",
                "name": contact.name,
                "function": contact.function,
                "email": contact.email,
                "phone": contact.phone,
                "roles": ", ".join(d.ROLE_LABELS[d.ContactRole(r)] for r in contact.roles or []),
            }
        )
    for convention, org in d.conventions(session, clsm_id):
        rows.append(
            {
                "type": "convention",
                "structure": org.name,
                "signed_on": convention.signed_on or "",
                "starts_on": convention.starts_on,
                "ends_on": convention.ends_on,
                "document_ref": convention.document_ref,
            }
        )
    return rows


def _kind_label(kind: str) -> str:
    try:
        return d.KIND_LABELS[d.StructureKind(kind)]
    except ValueError:
        return kind


def _csv_value(value: Cell) -> str:
    return value.strftime("%d/%m/%Y") if isinstance(value, date) else value


def export_csv(session: Session, clsm_id: int) -> bytes:
    """UTF-8 (with the mark spreadsheets look for), `;`-separated, as French Excel expects."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([header for _key, header in COLUMNS])
    for row in export_rows(session, clsm_id):
        writer.writerow([_csv_value(row.get(key, "")) for key, _header in COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")


def export_xlsx(session: Session, clsm_id: int) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Annuaire"
    sheet.append([header for _key, header in COLUMNS])
    for row in export_rows(session, clsm_id):
        sheet.append([row.get(key, "") for key, _header in COLUMNS])
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, date):
                cell.number_format = "DD/MM/YYYY"
            elif isinstance(cell.value, str):
                cell.data_type = "s"  # phone numbers stay text
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def export(*, session: Session, clsm_id: int, fmt: str, actor: Actor) -> bytes:
    """The directory as a file (csv or xlsx); the export, which holds professionals' contact
    details, is recorded on the CLSM's chain."""
    content = export_xlsx(session, clsm_id) if fmt == "xlsx" else export_csv(session, clsm_id)
    d._record(session, clsm_id, "directory.exported", actor, {"format": fmt})
    return content
