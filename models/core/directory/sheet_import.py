"""Import of the spreadsheet: a plan, line by line (nothing written; a file with any bad
line is refused whole), then applied through the directory's functions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from models.core.audit import Actor
from models.core.directory.changes import _plain, _record
from models.core.directory.contact import (
    contact_by_email,
    create_contact,
    set_contact_active,
    update_contact,
)
from models.core.directory.convention import conventions, create_convention, update_convention
from models.core.directory.fields import (
    ROLE_LABELS,
    ContactCreate,
    ContactRole,
    ConventionCreate,
    StructureCreate,
)
from models.core.directory.matching import fold, match_among
from models.core.directory.sheet import (
    _KINDS,
    _NO,
    _ROLES,
    _YES,
    FIELD_LABELS,
    HEADERS,
    ROW_TYPES,
    Cell,
    ImportRefused,
    read_rows,
)
from models.core.directory.structure import (
    _structure_values,
    create_structure,
    set_structure_active,
    structures,
    update_structure,
)
from models.core.people import Contact, Organisation


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
    text = fold(_text(cells, key))
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
    for pattern in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%%m.%Y"):
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


def _structure_data(cells: dict[str, Cell]) -> tuple[StructureCreate, bool]:
    kind_text = _text(cells, "kind")
    kind = _KINDS.get(fold(kind_text)) if kind_text else None
    if kind_text and kind is None:
        raise _LineError(f"catégorie inconnue « {kind_text} »")
    rank = _text(cells, "rotation_order")
    if rank and not rank.isdigit():
        raise _LineError(f"rang de rotation invalide « {rank} » (nombre entier attendu)")
    data = _validated(
        StructureCreate,
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
    assert isinstance(data, StructureCreate)
    return data, _bool(cells, "active", True)


def _roles(cells: dict[str, Cell]) -> list[ContactRole]:
    roles = []
    for part in _text(cells, "roles").replace("|", ",").split(","):
        if not part.strip():
            continue
        role = _ROLES.get(fold(part))
        if role is None:
            known = ", ".join(ROLE_LABELS.values())
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
        f"{FIELD_LABELS.get(name, name)} : {_shown(_plain(getattr(row, name)))} → "
        f"{_shown(_plain(value))}"
        for name, value in values.items()
        if _plain(getattr(row, name)) != _plain(value)
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
        match = match_among([*self.structures, *self.new_orgs], typed)
        if match.found is not None:
            key = fold(match.found.name)
            return (match.found if match.found.id is not None else None), key
        hint = f" ; vouliez-vous dire « {match.near[0].name} » ?" if match.near else ""
        raise _LineError(f"structure inconnue « {typed} »{hint}")


def _plan_structure(number: int, cells: dict[str, Cell], book: _Directory) -> PlanLine:
    name = _text(cells, "structure")
    if not name:
        raise _LineError("nom de la structure manquant (colonne Structure)")
    data, active = _structure_data(cells)
    key = fold(data.name)
    if key in book.new_structures:
        raise _LineError(f"structure « {name} » déjà décrite ligne {book.new_structures[key]}")
    match = match_among(book.structures, data.name)
    line = PlanLine(number, "structure", data.name, "création", data=data, structure_key=key)
    line.active = active
    if match.found is not None and match.by_alias:
        raise _LineError(
            f"« {name} » est un autre nom de « {match.found.name} » : "
            "indiquez le nom de la structure dans la colonne Structure"
        )
    for alias in data.aliases:
        others = [o for o in [*book.structures, *book.new_orgs] if o is not match.found]
        other = match_among(others, alias)
        if other.found is not None:
            raise _LineError(f"l'alias « {alias} » désigne déjà « {other.found.name} »")
    book.new_structures[key] = number
    if match.found is not None:
        found = match.found
        line.target = found
        line.changes = _diff(found, {**_structure_values(data), "active": active})
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
        ContactCreate,
        {
            "organisation_id": structure.id if structure is not None else 1,
            "name": _text(cells, "name"),
            "function": _text(cells, "function"),
            "email": email,
            "phone": _text(cells, "phone"),
            "roles": _roles(cells),
        },
    )
    assert isinstance(data, ContactCreate)
    active = _bool(cells, "active", True)
    book.emails[data.email] = number
    line = PlanLine(number, "contact", data.name, "création", data=data, structure_key=key)
    line.active = active
    existing = contact_by_email(session, clsm_id, data.email)
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
        ConventionCreate,
        {
            "organisation_id": structure.id if structure is not None else 1,
            "signed_on": signed_on,
            "starts_on": starts_on,
            "ends_on": ends_on,
            "document_ref": _text(cells, "document_ref"),
        },
    )
    assert isinstance(data, ConventionCreate)
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
            p for p, _ in conventions(session, clsm_id, structure.id) if p.starts_on == starts_on
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
    book = _Directory(structures(session, clsm_id))
    problems: list[str] = []
    lines: list[PlanLine] = []
    typed_rows: dict[str, list[tuple[int, dict[str, Cell]]]] = {t: [] for t in ROW_TYPES}
    for number, cells in rows:
        kind = ROW_TYPES.get(fold(_text(cells, "type")))
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
        assert isinstance(data, StructureCreate)
        row = line.target
        if row is None:
            row = create_structure(
                session=session, clsm_id=clsm_id, data=data, actor=actor, confirm_near=True
            )
        elif line.action == "mise à jour":
            update_structure(session=session, row=row, data=data, version=None, actor=actor)
        if row.active != line.active:
            set_structure_active(
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
            assert isinstance(data, ContactCreate)
            contact: Contact = line.target or create_contact(
                session=session, clsm_id=clsm_id, data=data, actor=actor
            )
            if line.target is not None:
                update_contact(
                    session=session,
                    clsm_id=clsm_id,
                    row=contact,
                    data=data,
                    version=None,
                    actor=actor,
                )
            if contact.active != line.active:
                set_contact_active(
                    session=session,
                    clsm_id=clsm_id,
                    row=contact,
                    active=line.active,
                    version=None,
                    actor=actor,
                )
        else:
            assert isinstance(data, ConventionCreate)
            if line.target is None:
                create_convention(session=session, clsm_id=clsm_id, data=data, actor=actor)
            else:
                update_convention(
                    session=session,
                    clsm_id=clsm_id,
                    row=line.target,
                    data=data,
                    version=None,
                    actor=actor,
                )
    _record(
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
