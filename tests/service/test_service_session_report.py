"""The report of an immersion session in the service: page, CSV, access and audit."""

from __future__ import annotations

import re
from datetime import date

from fastapi.testclient import TestClient
from sqlmodel import Session

from models.core import db
from models.core.audit import case_events
from models.core.calendar import INSIST
from models.core.enums import Role
from models.immersion.common import get_session
from models.immersion.tables import ImmersionSession
from service.main import create_app
from tests import factories
from tests.immersion.test_immersion_steps import apply, launched  # noqa: F401  (fixture)
from tests.support.immersion import PARIS
from tests.support.service_kit import PASSWORD, login_data


def _login(client: TestClient, session: Session, clsm_id: int | None, role: Role) -> None:
    owner = factories.clsm(session) if clsm_id is None else None
    user = factories.user(session, owner, role, PASSWORD)
    user.clsm_id = clsm_id if clsm_id is not None else user.clsm_id
    session.commit()
    response = client.post(
        "/login", data=login_data(client, user.email, PASSWORD), follow_redirects=False
    )
    assert response.status_code == 303


def test_session_report_page_and_csv_are_audited(
    session: Session,
    launched: ImmersionSession,  # noqa: F811  (the fixture imported above)
) -> None:
    apply(session, launched, "ccas.example", 1, ["CHL"])
    apply(session, launched, "chl.example", 2, ["CCAS"])
    session.commit()
    assert launched.id is not None
    with TestClient(create_app()) as client:
        _login(client, session, launched.clsm_id, Role.AUDITOR)
        page = client.get(f"/cases/session/{launched.id}/report")
        assert page.status_code == 200
        assert "Candidatures reçues : <strong>2</strong>" in page.text
        csv = client.get(f"/cases/session/{launched.id}/report.csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[0].startswith("structure;candidatures;participants")
        people = client.get(f"/cases/session/{launched.id}/report-participants.csv")
        assert people.text.splitlines()[0].startswith("n°;participant;")
    with Session(db.get_engine()) as fresh:
        reads = [
            e.payload
            for e in case_events(fresh, "session", launched.id)
            if e.action == "report.read"
        ]
    assert reads == [{"format": "html"}, {"format": "csv"}, {"format": "csv"}]


def test_another_clsm_cannot_read_the_report(
    session: Session,
    launched: ImmersionSession,  # noqa: F811  (the fixture imported above)
) -> None:
    with TestClient(create_app()) as client:
        _login(client, session, None, Role.COORDINATOR)
        assert client.get(f"/cases/session/{launched.id}/report").status_code == 404
        assert client.get("/cases/session/0/report").status_code == 422


def test_waits_are_named_in_french() -> None:
    """Each process words its own waits; the service only asks the catalogue."""
    from models.core.enums import CaseType
    from service.casework import step_label

    session, saisine = CaseType.SESSION, CaseType.SAISINE
    assert step_label(session, "selection") == "la coordination (validation de la sélection)"
    assert step_label(session, "partners").startswith("structures d'accueil")
    assert step_label(saisine, "ask-0-partners").startswith("choix des partenaires")
    assert step_label(saisine, "answers-r2-reminder") == "réponses des partenaires consultés"
    assert step_label(saisine, "meeting-12-day") == "réunion de cellule"
    assert step_label(saisine, "ask-3-decision-m12").startswith("décision de la réunion")
    assert step_label(saisine, "ask-2-nouvelle-etape") == "nouvelle etape"


def _csrf(client: TestClient, session_id: int) -> str:
    from tests.support.service_kit import csrf_of

    return csrf_of(client.get(f"/cases/session/{session_id}").text)


def _version_of(session_id: int) -> int:
    with Session(db.get_engine()) as fresh:
        return get_session(fresh, session_id).version


def test_coordinator_moves_a_meeting_and_cancels_the_session(
    session: Session,
    launched: ImmersionSession,  # noqa: F811  (the fixture imported above)
) -> None:
    from models.immersion.states import SessionStatus

    assert launched.id is not None
    with TestClient(create_app()) as client:
        _login(client, session, launched.clsm_id, Role.COORDINATOR)
        token = _csrf(client, launched.id)
        page = client.get(f"/cases/session/{launched.id}").text
        assert f'<label for="preparation-insist">{INSIST}</label>' in page
        url = f"/cases/session/{launched.id}/meetings/preparation"
        version = str(launched.version)
        bad = client.post(
            url,
            data={
                "csrf_token": token,
                "start": "demain",
                "end": "x",
                "place": "CCAS",
                "version": version,
            },
        )
        assert bad.status_code == 422 and "Saisissez une date et une heure valides" in bad.text
        assert 'value="demain"' in bad.text and 'role="alert"' in bad.text  # typed, kept
        for start, end, reason in (
            ("0001-01-01T09:00", "0001-01-01T17:00", "hors des bornes admises"),
            ("9999-12-31T09:00", "9999-12-31T17:00", "hors des bornes admises"),
            ("2020-01-06T09:00", "2020-01-06T17:00", "déplacée dans le passé"),
            ("09/01/2027 09:00", "09/01/2027 17h", "Le samedi 09/01/2027 est un week-end"),
        ):
            data = {"csrf_token": token, "start": start, "end": end, "place": "CCAS"}
            refused = client.post(url, data={**data, "version": version})
            assert refused.status_code == 422 and reason in refused.text, refused.text
        moved = client.post(
            url,
            follow_redirects=False,
            data={
                "csrf_token": token,
                "start": "2027-01-09T09:00",
                "end": "2027-01-09T17:00",
                "place": "Salle du CHL",
                "version": version,
                "insist": "true",  # the box "Maintenir malgré le week-end / jour férié"
            },
        )
        assert moved.status_code == 303
        # a second coordinator, on the page read before that change, is refused clearly
        late = client.post(
            url,
            data={
                "csrf_token": token,
                "start": "2026-12-16T09:00",
                "end": "2026-12-16T17:00",
                "place": "Mairie",
                "version": version,
            },
        )
        assert late.status_code == 409
        assert "modifié entre-temps par quelqu" in late.text
        found = re.search(
            r'name="version" value="(\d+)"', client.get(f"/cases/session/{launched.id}").text
        )
        assert found is not None and found.group(1) != version  # the page shows the new one
        fresh_version = found.group(1)
        no_token = client.post(
            f"/cases/session/{launched.id}/cancel",
            data={"reason": "sans jeton", "version": fresh_version},
        )
        assert no_token.status_code == 403
        cancelled = client.post(
            f"/cases/session/{launched.id}/cancel",
            follow_redirects=False,
            data={"csrf_token": token, "reason": "budget non reconduit", "version": fresh_version},
        )
        assert cancelled.status_code == 303
        # a cancelled session is read-only: no actions on its page, a move refused
        page = client.get(f"/cases/session/{launched.id}").text
        assert "Actions de la coordination" not in page and "Déplacer" not in page
        after = client.post(
            url,
            data={
                "csrf_token": token,
                "start": "2026-12-17T09:00",
                "end": "2026-12-17T17:00",
                "place": "Mairie",
                "version": str(_version_of(launched.id)),
            },
        )
        assert after.status_code == 409 and "la session est annulée" in after.text, after.text
    with Session(db.get_engine()) as fresh:
        row = get_session(fresh, launched.id)
        assert row.status is SessionStatus.CANCELLED
        assert row.preparation_place == "Salle du CHL"
        assert row.preparation_at.astimezone(PARIS).date() == date(2027, 1, 9)
        actions = [e.action for e in case_events(fresh, "session", launched.id)]
    assert "status.changed" in actions


def test_an_auditor_cannot_cancel_a_session(
    session: Session,
    launched: ImmersionSession,  # noqa: F811  (the fixture imported above)
) -> None:
    assert launched.id is not None
    with TestClient(create_app()) as client:
        _login(client, session, launched.clsm_id, Role.AUDITOR)
        token = _csrf(client, launched.id)
        response = client.post(
            f"/cases/session/{launched.id}/cancel",
            data={"csrf_token": token, "reason": "essai", "version": "1"},
        )
        assert response.status_code == 403
