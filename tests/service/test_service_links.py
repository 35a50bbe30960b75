"""Partner steps by link: life cycle, validation, renewal, rate limit, concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.catalogue import CASE_KINDS, STEP_KINDS
from models.core import clock, db
from models.core.audit import Actor, case_events
from models.core.enums import CaseType
from models.core.errors import DomainError
from models.core.links import StepLink, find_link
from models.core.outbox import OutboxMessage
from service.deps import FailureLimiter
from service.main import create_app
from tests.support.service_kit import (
    PROBE_STEP,
    STEP,
    TEST_CASES,
    VALID_ANSWER,
    ServiceProcess,
    World,
    actions,
    build_world,
    new_link,
)


@pytest.fixture
def kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STEP_KINDS, STEP, PROBE_STEP)
    monkeypatch.setitem(CASE_KINDS, CaseType.SESSION, TEST_CASES)


@pytest.fixture
def world(db_url: str, kinds: None) -> World:
    with db.session_scope() as session:
        return build_world(session)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def _token(world: World, **extra: object) -> str:
    with db.session_scope() as session:
        return new_link(session, world, **extra)  # type: ignore[arg-type]


def _link(token: str) -> StepLink:
    with Session(db.get_engine()) as session:
        link = find_link(session, token)
        assert link is not None
        return link


def _actions(case_id: int) -> list[str]:
    with Session(db.get_engine()) as session:
        return actions(session, case_id)


def test_get_shows_the_form_and_never_consumes_the_link(client: TestClient, world: World) -> None:
    token = _token(world)
    for _ in range(3):  # a mail scanner, then the person, then again
        page = client.get(f"/r/{token}")
        assert page.status_code == 200
    html = page.text
    assert "Étape de test" in html and "Dossier de test n°101" in html
    assert '<label for="places">Nombre de places' in html and "Entre 0 et 20." in html
    assert 'type="number" id="places"' in html and 'value="2"' in html  # initial value
    # a choice is a group of radio buttons, none of them preset
    assert (
        "<legend>Participation" in html and 'id="choice-2" name="choice" value="peut-être"' in html
    )
    assert "checked" not in html
    assert 'type="checkbox" id="available"' in html
    # dates are typed the French way, in text inputs that say how
    assert 'type="text" id="start"' in html and "Format : jj/mm/aaaa" in html
    assert 'type="text" id="meeting"' in html and "jj/mm/aaaa hh:mm, heure de Paris" in html
    assert 'type="email" id="email"' in html
    assert '<textarea id="names"' in html and "Une valeur par ligne." in html
    assert '<textarea id="comment"' in html and 'maxlength="2000"' in html
    assert _link(token).used_at is None
    # nothing consumed, nothing answered; each opening is a read by the link's holder
    assert _actions(world.case_a) == ["test.case-opened"] + ["case.read"] * 3
    with Session(db.get_engine()) as session:
        reads = [e for e in case_events(session, "session", world.case_a) if e.seq > 1]
    assert {(e.actor_label, e.actor_ref) for e in reads} == {
        (world.contact.name, f"contact:{world.contact.id}")
    }


def test_a_valid_answer_is_recorded_once_and_the_link_is_then_used(
    client: TestClient, world: World
) -> None:
    token = _token(world)
    data = {**VALID_ANSWER, "names": "Dr Bernard\n\nMme Petit", "meeting": "2026-03-02T14:30"}
    done = client.post(f"/r/{token}", data=data)
    assert done.status_code == 200
    assert "Merci, votre réponse (3 place(s)) est enregistrée." in done.text
    assert _link(token).used_at is not None
    with Session(db.get_engine()) as session:
        from models.core.audit import case_events

        event = case_events(session, "session", world.case_a)[-1]
    assert event.action == "probe.ready"
    assert event.actor_label == "Camille Partenaire" and event.channel == "link"
    assert event.payload is not None
    assert event.payload["names"] == ["Dr Bernard", "Mme Petit"]
    assert event.payload["meeting"] == "2026-03-02T14:30:00+01:00"  # Paris time kept

    again = client.post(f"/r/{token}", data=data)
    assert again.status_code == 410
    assert "Ce lien a déjà servi" in again.text and "/renew" in again.text
    assert client.get(f"/r/{token}").status_code == 410
    assert _actions(world.case_a).count("probe.ready") == 1


def test_an_expired_link_is_refused_with_a_way_to_get_a_new_one(
    client: TestClient, world: World
) -> None:
    token = _token(world, valid_for=timedelta(days=2))
    with db.session_scope() as session:
        clock.advance(session=session, delta=timedelta(days=3))
    page = client.get(f"/r/{token}")
    assert page.status_code == 410 and "Ce lien a expiré." in page.text
    assert "Recevoir un nouveau lien par courriel" in page.text
    assert client.post(f"/r/{token}", data=VALID_ANSWER).status_code == 410
    assert "probe.ready" not in _actions(world.case_a)


def test_unknown_tokens_get_a_french_404_then_are_rate_limited(
    client: TestClient, world: World
) -> None:
    app = client.app
    app.state.limiters["links"] = FailureLimiter(3, 600, scope="links")  # type: ignore[attr-defined]
    for attempt in ("inconnu", "x" * 200, "encore-un"):
        page = client.get(f"/r/{attempt}")
        assert page.status_code == 404
        assert "Ce lien n'est pas reconnu" in page.text and "/renew" not in page.text
    blocked = client.get(f"/r/{_token(world)}")  # even a good token, from this address
    assert blocked.status_code == 429
    assert "Trop de tentatives" in blocked.text and blocked.headers["retry-after"]
    assert client.post("/r/inconnu", data=VALID_ANSWER).status_code == 429


def test_a_link_answers_only_its_own_case(client: TestClient, world: World) -> None:
    token = _token(world)
    forged = {**VALID_ANSWER, "case_id": str(world.case_b), "case_type": "saisine"}
    assert client.post(f"/r/{token}", data=forged).status_code == 200
    assert "probe.ready" in _actions(world.case_a)
    assert _actions(world.case_b) == ["test.case-opened"]
    # the page of a link shows its own case, never another one
    other = _token(world, case_id=world.case_b)
    page = client.get(f"/r/{other}").text
    assert "Dossier de test n°202" in page and "n°101" not in page


def test_bad_input_shows_french_errors_keeps_values_and_stores_nothing(
    client: TestClient, world: World
) -> None:
    token = _token(world)
    bad = {
        "places": "beaucoup",
        "choice": "jamais",
        "email": "pas-une-adresse",
        "start": "31/02/2026",
        "comment": "Je reviens vers vous",
    }
    page = client.post(f"/r/{token}", data=bad)
    assert page.status_code == 422
    html = page.text
    assert "Le formulaire contient 4 erreurs" in html
    assert "Saisissez un nombre entier." in html
    assert "Choisissez une des valeurs proposées." in html
    assert "Saisissez une adresse électronique valide" in html
    assert "Saisissez une date valide" in html
    assert 'value="beaucoup"' in html and ">Je reviens vers vous</textarea>" in html
    assert 'aria-invalid="true"' in html and 'aria-describedby="places-aide places-erreur"' in html
    too_many = client.post(f"/r/{token}", data={**VALID_ANSWER, "places": "21"})
    assert too_many.status_code == 422
    assert "La valeur doit être inférieure ou égale à 20." in too_many.text
    missing = client.post(f"/r/{token}", data={})
    assert missing.status_code == 422 and "Ce champ est obligatoire." in missing.text
    assert _link(token).used_at is None
    assert _actions(world.case_a) == ["test.case-opened"]


def test_a_refusal_by_the_domain_shows_the_form_again_and_consumes_nothing(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule refuses the answer (a Sunday): the reason beside its field, the input kept."""

    def record(session: Session, link: StepLink, answer: Any, actor: Actor) -> str:
        if answer.start is not None and answer.start.weekday() == 6:
            raise DomainError(f"le {answer.start:%d/%m/%Y} est un dimanche", field="start")
        return PROBE_STEP.record(session, link, answer, actor)

    monkeypatch.setitem(STEP_KINDS, STEP, replace(PROBE_STEP, record=record))
    token = _token(world)
    typed = {**VALID_ANSWER, "start": "03/01/2027", "comment": "Accueil possible l'après-midi"}
    page = client.post(f"/r/{token}", data=typed)
    assert page.status_code == 409
    html = page.text
    assert "Votre réponse n'a pas pu être enregistrée" in html
    assert '<p class="error" id="start-erreur">Le 03/01/2027 est un dimanche.</p>' in html
    assert 'value="03/01/2027"' in html and ">Accueil possible l&#39;après-midi</textarea>" in html
    assert 'id="choice-0" name="choice" value="oui" checked' in html
    assert "votre lien reste valable" in html and world.clsm_a.coordinator_email in html
    assert "Opération impossible" not in html and "409" not in html
    assert _link(token).used_at is None and _actions(world.case_a) == ["test.case-opened"]
    done = client.post(f"/r/{token}", data={**typed, "start": "04/01/2027"})
    assert done.status_code == 200 and "Et ensuite ?" in done.text
    with Session(db.get_engine()) as session:
        from models.core.audit import case_events

        event = case_events(session, "session", world.case_a)[-1]
    assert event.payload is not None and event.payload["start"] == "2027-01-04"


def test_the_page_says_whether_the_link_serves_once_or_again(
    client: TestClient, world: World
) -> None:
    once = client.get(f"/r/{_token(world)}").text
    again = client.get(f"/r/{_token(world, multi_use=True)}").text
    assert "ne sert qu'une fois" in once and "plusieurs fois" not in once
    assert "il peut servir plusieurs fois" in again and "ne sert qu'une fois" not in again
    assert "la suite vous parviendra par courriel" in once


def test_an_empty_post_is_refused_and_the_link_stays_usable(
    client: TestClient, world: World
) -> None:
    token = _token(world)
    page = client.post(f"/r/{token}", data={"places": "3"})
    assert page.status_code == 422 and "Choisissez une réponse." in page.text
    assert _link(token).used_at is None and _actions(world.case_a) == ["test.case-opened"]


def test_an_address_our_mails_cannot_reach_is_refused_in_french(
    client: TestClient, world: World
) -> None:
    token = _token(world)
    page = client.post(f"/r/{token}", data={**VALID_ANSWER, "email": "jérôme@ccas.example"})
    assert page.status_code == 422
    assert "Pas d&#39;accent ni de caractère spécial avant le @" in page.text
    assert _link(token).used_at is None and _actions(world.case_a) == ["test.case-opened"]
    # an internationalised domain is fine: mails reach it in its IDNA form
    accepted = client.post(
        f"/r/{token}", data={**VALID_ANSWER, "email": "jerome@département.example"}
    )
    assert accepted.status_code == 200 and "probe.ready" in _actions(world.case_a)


def test_renewal_mails_a_fresh_link_to_the_contact_on_file(
    client: TestClient, world: World
) -> None:
    token = _token(world)
    assert client.post(f"/r/{token}", data=VALID_ANSWER).status_code == 200
    asked = client.post(f"/r/{token}/renew", data={"email": "intrus@pirate.example"})
    assert asked.status_code == 200 and "Un nouveau lien vient de vous être envoyé" in asked.text
    assert client.post(f"/r/{token}/renew").status_code == 200  # asked twice: one mail
    with Session(db.get_engine()) as session:
        mails = session.exec(select(OutboxMessage)).all()
        assert len(mails) == 1
        mail = mails[0]
        assert mail.template == "link_renewed"
        assert mail.recipient_email == world.contact.email
        fresh = session.get(StepLink, mail.context["link_id"])
        assert fresh is not None and fresh.used_at is None
        assert (fresh.step, fresh.case_id, fresh.contact_id) == (
            STEP,
            world.case_a,
            world.contact.id,
        )
        assert "token" not in str(mail.context)
    assert "link.renewed" in _actions(world.case_a)
    assert client.post("/r/inconnu/renew").status_code == 404


def test_oversized_bodies_are_refused(client: TestClient, world: World) -> None:
    token = _token(world)
    huge = client.post(f"/r/{token}", data={**VALID_ANSWER, "comment": "x" * 300_000})
    assert huge.status_code == 413 and "taille autorisée" in huge.text
    assert _link(token).used_at is None


def test_two_concurrent_posts_on_one_link_record_one_answer(db_url: str, world: World) -> None:
    token = _token(world)
    with ServiceProcess(db_url) as service:
        barrier = threading.Barrier(8)
        statuses: list[int] = []

        def post() -> None:
            barrier.wait()
            response = httpx.post(f"{service.url}/r/{token}", data=VALID_ANSWER, timeout=60)
            statuses.append(response.status_code)

        threads = [threading.Thread(target=post) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200] + [410] * 7
    assert _actions(world.case_a).count("probe.ready") == 1


def test_a_refusal_of_the_domain_is_shown_and_nothing_is_stored(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from models.core.errors import DomainError

    def refuse(*_: object) -> str:
        raise DomainError("Cette session est close : les réponses ne sont plus acceptées.")

    monkeypatch.setitem(STEP_KINDS, STEP, replace(PROBE_STEP, record=refuse))
    token = _token(world)
    page = client.post(f"/r/{token}", data=VALID_ANSWER)
    assert page.status_code == 409
    assert "les réponses ne sont plus acceptées" in page.text
    assert _link(token).used_at is None  # the whole transaction was rolled back


def test_a_link_token_is_no_credential_for_the_cases(client: TestClient, world: World) -> None:
    token = _token(world)
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        client.get(f"/api/cases/session/{world.case_a}/history", headers=headers).status_code == 401
    )
    assert (
        client.get(
            f"/cases/session/{world.case_a}?token={token}", follow_redirects=False
        ).status_code
        == 303
    )
