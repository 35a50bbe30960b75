"""Export of the directory in the import format (export → import changes nothing)."""

from __future__ import annotations

import csv
import io
from datetime import date

from sqlmodel import Session

from models.core.audit import Actor
from models.core.directory.changes import _record
from models.core.directory.contact import contacts
from models.core.directory.convention import conventions
from models.core.directory.fields import (
    KIND_LABELS,
    ROLE_LABELS,
    ContactRole,
    StructureKind,
)
from models.core.directory.sheet import (
    COLUMNS,
    Cell,
)
from models.core.directory.structure import structures


def export_rows(session: Session, clsm_id: int) -> list[dict[str, Cell]]:
    """The directory as rows of the import format (structures, contacts, conventions)."""
    rows: list[dict[str, Cell]] = []
    orgs = structures(session, clsm_id)
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
    for contact, org in contacts(session, clsm_id):
        rows.append(
            {
                "type": "contact",
                "structure": org.name,
                "active": "oui" if contact.active else "non",
                "name": contact.name,
                "function": contact.function,
                "email": contact.email,
                "phone": contact.phone,
                "roles": ", ".join(ROLE_LABELS[ContactRole(r)] for r in contact.roles or []),
            }
        )
    for convention, org in conventions(session, clsm_id):
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
        return KIND_LABELS[StructureKind(kind)]
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
    _record(session, clsm_id, "directory.exported", actor, {"format": fmt})
    return content
