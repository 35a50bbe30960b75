"""CSV exports never carry a live formula (CSV injection)."""

from __future__ import annotations

import csv
import io

import pytest

from models.core.spreadsheet import csv_text

HOSTILE = '=HYPERLINK("http://evil.example/x";"Zoé")'


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_evaluate_is_written_as_text(start: str) -> None:
    text = csv_text([["nom", "note"], [f"{start}1+1", "Zoé"], [3, -2]])
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[1] == [f"'{start}1+1", "Zoé"]
    assert rows[2] == ["3", "-2"]  # numbers are numbers, not text that could be a formula


def test_the_hyperlink_of_the_issue_is_dead_text() -> None:
    rows = list(csv.reader(io.StringIO(csv_text([[HOSTILE]])), delimiter=";"))
    assert rows == [["'" + HOSTILE]]
