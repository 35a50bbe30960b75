"""From an empty installation, through the interfaces only: an admin creates the Bocage
Bressuirais CLSM (`clsm clsm create`), imports its structures, contacts and conventions from
the coordinator's .xlsx (`clsm directory import`), then a saisine runs on it to its end
(Prefect server and worker, the service's links, a real SMTP server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlmodel import Session
from typer.testing import CliRunner

from models.core import db
from models.core.audit import verify_all
from models.core.people import Organisation
from models.saisine.common import consultations, orientations
from models.saisine.states import SaisineStatus
from service.cli import app
from tests.saisine.test_saisine_end_to_end import START, Channel, _advance_to, _one
from tests.saisine.test_saisine_flow import (
    describe_as_the_coordinator,
    intake_parameters,
    moved_on,
    paused_form_schema,
    resume_form,
    the_saisine,
)
from tests.support.prefect_stack import PrefectStack, run, run_env, state_of
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.prefect, pytest.mark.asyncio(loop_scope="session")]

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
CONTACTS = [
    ("Centre hospitalier Nord Deux-Sèvres", "Dr Anne Giraud", "anne.giraud@chnds.example"),
    ("CCAS de Bressuire", "Marc Texier", "marc.texier@ccas-bressuire.example"),
    ("Udaf des Deux-Sèvres", "Lucie Bonnin", "lucie.bonnin@udaf79.example"),
    ("Habitat Nord Deux-Sèvres", "Karim Said", "karim.said@hn2s.example"),
]


def _directory_xlsx(path: Path) -> Path:
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
        row.update({"Fonction": "Référente", "Courriel": email, "Rôles": "référent saisines"})
        sheet.append(list(row.values()))
    for name, *_ in STRUCTURES[:3]:  # the housing provider has no convention
        row = dict.fromkeys(HEADER, "")
        row.update({"Type": "convention", "Structure": name, "Signée le": "15/12/2025"})
        row.update({"Valable du": "01/01/2026", "Valable au": "31/12/2028"})
        row.update({"Référence du document": f"CONV-2026-{name[:4].upper()}"})
        sheet.append(list(row.values()))
    book.save(path)
    return path


def _field_schema(schema: dict[str, Any], field: str) -> str:
    """A form field's schema with the definitions it refers to (its choices), as text."""
    text = json.dumps(schema["properties"][field], ensure_ascii=False)
    for name, definition in (schema.get("definitions") or schema.get("$defs") or {}).items():
        if f"/{name}" in text:
            text += json.dumps(definition, ensure_ascii=False)
    return text


@pytest.fixture
def channel(db_url: str, smtp_server: SmtpServer) -> Iterator[Channel]:
    from service.main import create_app

    with TestClient(create_app()) as client:
        yield Channel(smtp_server, client)


async def test_a_new_clsm_set_up_from_its_spreadsheet_carries_a_saisine_to_its_end(
    prefect_stack: PrefectStack, db_url: str, channel: Channel, tmp_path: Path
) -> None:
    _advance_to(START)
    cli = CliRunner()
    created = cli.invoke(
        app,
        [
            "clsm", "create", "--slug", SLUG, "--name", "CLSM du Bocage Bressuirais",
            "--territory", "Bocage Bressuirais", "--coordinator-email", COORDINATION,
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    sheet = _directory_xlsx(tmp_path / "annuaire-bocage.xlsx")
    imported = cli.invoke(app, ["directory", "import", str(sheet), "--clsm", SLUG])
    assert imported.exit_code == 0, imported.output
    assert "11 création(s)" in imported.output

    # the referrer types the housing provider's name her own way: the imported structure
    parameters = intake_parameters()
    parameters["intake"].update(
        {
            "clsm": SLUG,
            "referring_structure": "habitat nord deux sevres",
            "referrer_name": "Karim Said",
            "referrer_email": "karim.said@hn2s.example",
        }
    )
    run_id = await run("saisine/saisine", parameters, run_env(db_url))
    await describe_as_the_coordinator(run_id, commune="Bressuire")

    # level 1: only the structures with a valid convention are offered
    schema = await paused_form_schema(run_id)
    offered = _field_schema(schema, "partners")
    assert "CHNDS" in offered and "Udaf 79" in offered and "HN2S" not in offered, offered
    before = await state_of(run_id)
    await resume_form(run_id, {"partners": ["CHNDS", "Udaf 79"]})
    before = await moved_on(run_id, before, "PAUSED")
    mails = await channel.deliver()
    assert sorted(m["to"] for m in mails) == [
        "anne.giraud@chnds.example",
        "lucie.bonnin@udaf79.example",
    ]
    for mail in mails:
        await channel.answer(mail, {"knows_situation": "oui", "proposal": "Visite conjointe"})
        before = await moved_on(run_id, before, "PAUSED")

    # the orientation, from the CLSM's catalogue, closes the case at once
    schema = await paused_form_schema(run_id)
    assert "Orientation vers le DAC-PTA" in _field_schema(schema, "outcome")
    _advance_to(START + timedelta(days=1))
    await resume_form(
        run_id,
        {
            "outcome": "Mise en lien avec la coordinatrice de parcours",
            "who_acts": "CHNDS",
            "follow_up_days": 0,
        },
    )
    await moved_on(run_id, before, "COMPLETED")
    mails = await channel.deliver()
    _one(mails, "saisine_outcome", "karim.said@hn2s.example")

    with Session(db.get_engine()) as session:
        saisine = the_saisine(run_id)
        assert saisine.status is SaisineStatus.CLOSED
        referrer = session.get(Organisation, saisine.referrer_organisation_id)
        assert referrer is not None and referrer.name == "Habitat Nord Deux-Sèvres"
        assert len(consultations(session, saisine)) == 2
        [orientation] = orientations(session, saisine)
        assert orientation.label == "Mise en lien avec la coordinatrice de parcours"
        report = verify_all(session)
        assert report.ok, report.breaks
