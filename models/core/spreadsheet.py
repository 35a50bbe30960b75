"""The one CSV writer of every export: ';'-separated, and no cell a spreadsheet would run.

A cell starting with = + - @ (or a tab or carriage return, which some spreadsheets skip
before reading such a sign) is a formula to Excel and LibreOffice: an applicant named
`=HYPERLINK("http://evil.example/x";"Zoé")` would become a live link in the coordinator's
sheet. Such cells are written with a leading apostrophe, which shows the text as typed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> object:
    """The cell as written: text that a spreadsheet would evaluate is quoted with '."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerows([neutralise(cell) for cell in row] for row in rows)
    return buffer.getvalue()
