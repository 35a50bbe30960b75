"""What coordinators and auditors read is French: mails waiting, history details, numbers,
the installation clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from models.core import clock, db
from models.core.audit import Actor, record_event
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.outbox import Recipient, enqueue
from service.cli import app
from service.labels import french_duration, payload_details, rating, value_label
from service.main import create_app
from tests.service.test_service_access import login
from tests.support.service_kit import World, build_world, register_kinds


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    register_kinds(monkeypatch)
    with db.session_scope() as session:
        return build_world(session)


def test_the_case_page_lists_waiting_mails_by_what_they_say_and_to_whom(world: World) -> None:
    assert world.contact.id is not None and world.clsm_a.id is not None
    with db.session_scope() as session:
        enqueue(
            session=session,
            scope=CaseScope(CaseType.SESSION, world.case_a, world.clsm_a.id, "Dossier de test"),
            to=Recipient("helene.lefevre@chl.example", "Hélène Lefèvre", world.contact.id),
            template="immersion_agreement",
            context={"clsm_id": world.clsm_a.id, "case_label": "Dossier de test"},
            dedup_key="agreement-1",
        )
    with TestClient(create_app()) as client:
        login(client, world.coordinator)
        page = client.get(f"/cases/session/{world.case_a}").text
    assert "convention de stage à signer" in page
    assert "Hélène Lefèvre &lt;helene.lefevre@chl.example&gt;" in page
    assert "immersion_agreement" not in page


def test_history_details_read_in_french(world: World) -> None:
    with db.session_scope() as session:
        record_event(
            session=session,
            case_type=CaseType.SESSION,
            case_id=world.case_a,
            action="status.changed",
            actor=Actor.system(),
            payload={
                "entity": "consultation",
                "id": 3,
                "from": "asked",
                "to": "escalated",
                "contact_id": 12,
                "knows_situation": True,
                "day": "2027-01-05",
            },
        )
    with TestClient(create_app()) as client:
        login(client, world.auditor)
        page = client.get(f"/cases/session/{world.case_a}/history").text
    for shown in (
        "statut précédent : avis demandé",
        "nouveau statut : sans réponse, signalée à la coordination",
        "n° du contact : 12",
        "connaît la situation : oui",
        "jour : 05/01/2027",
    ):
        assert shown in page
    for raw in ("contact_id", "escalated", "entity :", "from :", "to :"):
        assert raw not in page


def test_labels_of_values_statuses_and_numbers() -> None:
    assert payload_details({"entity": "stage", "from": "confirmed", "to": "done"}) == [
        ("élément", "stage"),
        ("statut précédent", "confirmé"),
        ("nouveau statut", "réalisé"),
    ]
    assert payload_details({"level1": 2, "level2": 1}) == [("niveau 1", "2"), ("niveau 2", "1")]
    assert value_label(["2027-01-05", "2027-01-06"]) == "05/01/2027, 06/01/2027"
    assert value_label("2026-12-23T13:00:00+00:00") == "23/12/2026 14:00"
    assert rating(4.3) == "4,3 / 5" and rating(None) == "—"
    assert french_duration(timedelta(days=45)) == "45 jours"
    assert french_duration(timedelta(days=1, hours=3, minutes=20)) == "1 jour 3 h 20 min"
    assert french_duration(timedelta(0)) == "aucun"


def test_the_clock_is_shown_in_french(db_url: str) -> None:
    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=45))
    shown = CliRunner().invoke(app, ["clock", "show"])
    assert shown.exit_code == 0, shown.output
    assert "(décalage : 45 jours" in shown.output and "days" not in shown.output
