"""Directory pages and API: roles and CLSMs, CSRF, optimistic locking (409), the import's
preview then confirmation, problem JSON."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from models.core import db
from models.core import directory as d
from models.core.audit import Actor, case_events
from models.core.enums import CaseType
from models.core.people import Clsm, User
from service.main import create_app
from service.security import api_token_hash
from tests.service.test_service_access import login
from tests.support.service_kit import World, build_world

NETWORK = (
    "Type;Structure;Alias;Catégorie;Nom;Courriel;Rôles;Valable du;Valable au\n"
    "structure;Un chez Soi d'Abord;UCSD;association;;;;;\n"
    "contact;UCSD;;;Camille Durand;camille.durand@ucsd.example;référent saisines;;\n"
    "convention;un chez soi d'abord;;;;;;01/01/2024;31/12/2027\n"
).encode()


@pytest.fixture
def world(db_url: str) -> World:
    with db.session_scope() as session:
        return build_world(session)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def _events(clsm: Clsm) -> list[tuple[str, str]]:
    assert clsm.id is not None
    with Session(db.get_engine()) as session:
        return [
            (e.action, e.actor_label) for e in case_events(session, CaseType.CLSM.value, clsm.id)
        ]


def test_a_coordinator_keeps_the_directory_of_their_clsm_only(
    client: TestClient, world: World
) -> None:
    csrf = login(client, world.coordinator)
    home = client.get("/directory", follow_redirects=False)
    assert home.headers["location"] == f"/directory/{world.clsm_a.slug}"
    other = client.get(f"/directory/{world.clsm_b.slug}")
    assert other.status_code == 403
    assert "Cet annuaire est celui d'un autre CLSM." in html.unescape(other.text)
    assert client.get("/directory/clsm/new").status_code == 403

    slug = world.clsm_a.slug
    no_csrf = client.post(f"/directory/{slug}/structures", data={"name": "Mission locale"})
    assert no_csrf.status_code == 403
    created = client.post(
        f"/directory/{slug}/structures",
        data={"csrf_token": csrf, "name": "Mission locale", "kind": "association"},
        follow_redirects=False,
    )
    assert created.status_code == 303
    page = client.get(created.headers["location"])
    assert "Mission locale" in html.unescape(page.text) and "Enregistré." in html.unescape(
        page.text
    )
    # a near name is proposed, not silently created
    near = client.post(
        f"/directory/{slug}/structures",
        data={"csrf_token": csrf, "name": "Mission-Locale"},
    )
    assert near.status_code == 409
    assert "« Mission-Locale » désigne déjà la structure « Mission locale »" in html.unescape(
        near.text
    )
    close = client.post(
        f"/directory/{slug}/structures", data={"csrf_token": csrf, "name": "Mission locales"}
    )
    assert close.status_code == 409
    assert "ressemble à « Mission locale »" in html.unescape(close.text)
    assert 'name="confirm_near"' in html.unescape(close.text)
    assert 'value="Mission locales"' in html.unescape(close.text)
    assert _events(world.clsm_a)[-1] == ("directory.structure.created", world.coordinator.name)


def test_a_stale_edit_is_refused_with_409_and_nothing_changes(
    client: TestClient, world: World
) -> None:
    csrf = login(client, world.coordinator)
    slug = world.clsm_a.slug
    with db.session_scope() as session:
        row = d.create_structure(
            session=session,
            clsm_id=world.clsm_a.id or 0,
            data=d.StructureCreate(name="CMP adultes"),
            actor=Actor.system(),
        )
    first = client.post(
        f"/directory/{slug}/structures/{row.id}",
        data={"csrf_token": csrf, "version": "1", "name": "CMP adultes", "address": "Rue A"},
        follow_redirects=False,
    )
    assert first.status_code == 303
    stale = client.post(
        f"/directory/{slug}/structures/{row.id}",
        data={"csrf_token": csrf, "version": "1", "name": "CMP adultes", "address": "Rue B"},
    )
    assert stale.status_code == 409
    assert "modifié entre-temps par quelqu'un d'autre" in html.unescape(stale.text)
    with Session(db.get_engine()) as session:
        assert d.get_structure(session, world.clsm_a.id or 0, row.id or 0).address == "Rue A"


def test_the_import_shows_a_preview_then_writes_on_confirmation(
    client: TestClient, world: World
) -> None:
    csrf = login(client, world.coordinator)
    slug = world.clsm_a.slug
    before = _events(world.clsm_a)
    preview = client.post(
        f"/directory/{slug}/import",
        data={"csrf_token": csrf},
        files={"file": ("reseau.csv", NETWORK, "text/csv")},
    )
    assert preview.status_code == 200
    assert "3 création(s), 0 mise(s) à jour, 0 ligne(s) inchangée(s)" in html.unescape(preview.text)
    assert _events(world.clsm_a) == before  # nothing written by the preview
    hidden = dict(
        re.findall(r'name="(content|fingerprint|filename)" value="([^"]*)"', preview.text)
    )
    done = client.post(
        f"/directory/{slug}/import/confirm",
        data={"csrf_token": csrf, **hidden},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert [a for a, _who in _events(world.clsm_a)[len(before) :]] == [
        "directory.structure.created",
        "directory.contact.created",
        "directory.convention.created",
        "directory.imported",
    ]
    again = client.post(f"/directory/{slug}/import/confirm", data={"csrf_token": csrf, **hidden})
    assert again.status_code == 409
    assert "relancez l'import" in html.unescape(again.text)

    bad = client.post(
        f"/directory/{slug}/import",
        data={"csrf_token": csrf},
        files={"file": ("bad.csv", b"Type;Structure;Courriel\ncontact;Nulle part;\n", "text/csv")},
    )
    assert bad.status_code == 422
    assert "Ligne 2 : structure inconnue « Nulle part »." in html.unescape(bad.text)

    exported = client.get(f"/directory/{slug}/export.csv")
    assert exported.status_code == 200
    assert "camille.durand@ucsd.example" in exported.content.decode("utf-8-sig")
    assert _events(world.clsm_a)[-1][0] == "directory.exported"


def test_admins_create_a_clsm_from_the_page(client: TestClient, world: World) -> None:
    csrf = login(client, world.admin)
    refused = client.post(
        "/directory/clsm",
        data={"csrf_token": csrf, "slug": "Bocage Bressuirais", "name": "CLSM du Bocage"},
    )
    assert refused.status_code == 422
    assert "Le format n'est pas valide." in html.unescape(refused.text)
    created = client.post(
        "/directory/clsm",
        data={"csrf_token": csrf, "slug": "bocage", "name": "CLSM du Bocage"},
        follow_redirects=False,
    )
    assert created.headers["location"] == "/directory/bocage"
    assert "CLSM du Bocage" in html.unescape(client.get("/directory").text)
    assert "Orientation vers le DAC-PTA" in html.unescape(
        client.get("/directory/bocage/orientations").text
    )


def _token(user: User) -> str:
    token = f"clsm_test_{user.id}"
    with db.session_scope() as session:
        row = session.get(User, user.id)
        assert row is not None
        row.api_token_hash = api_token_hash(token)
        session.add(row)
    return token


def test_the_api_reads_and_writes_the_directory_with_problem_json(
    client: TestClient, world: World
) -> None:
    headers = {"Authorization": f"Bearer {_token(world.coordinator)}"}
    base = f"/api/directory/{world.clsm_a.slug}"
    created = client.post(
        f"{base}/structures",
        json={"name": "Un chez Soi d'Abord", "aliases": ["UCSD"]},
        headers=headers,
    )
    assert created.status_code == 200, created.text
    structure = created.json()
    for typed in ("un chez soi d'abord", "Un Chez-Soi d'Abord ", "ucsd"):
        match = client.get(f"{base}/structures/match", params={"name": typed}, headers=headers)
        assert match.json()["found"]["id"] == structure["id"], typed
    stale = client.put(
        f"{base}/structures/{structure['id']}",
        json={"name": "Un chez Soi d'Abord", "address": "Niort", "version": 2},
        headers=headers,
    )
    assert stale.status_code == 409
    assert stale.headers["content-type"].startswith("application/problem+json")
    contact = client.post(
        f"{base}/contacts",
        json={"organisation_id": structure["id"], "name": "Camille", "email": "pas-une-adresse"},
        headers=headers,
    )
    assert contact.status_code == 422
    assert contact.json()["errors"]["email"].startswith("Saisissez une adresse électronique")
    deactivated = client.post(
        f"{base}/structures/{structure['id']}/active",
        json={"active": False, "version": 1},
        headers=headers,
    )
    assert deactivated.json()["active"] is False
    refused = client.post(
        f"{base}/import",
        files={"file": ("bad.csv", b"Type;Structure\nville;X\n", "text/csv")},
        headers=headers,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"] == {
        "Ligne 2": "type « ville » inconnu (structure, contact ou convention)."
    }
    other = client.get(f"/api/directory/{world.clsm_b.slug}/structures", headers=headers)
    assert other.status_code == 403
    auditor = {"Authorization": f"Bearer {_token(world.auditor)}"}
    assert client.get(f"{base}/structures", headers=auditor).status_code == 200
    assert (
        client.post(f"{base}/orientations", json={"label": "Autre"}, headers=auditor).status_code
        == 403
    )


def test_the_clsm_settings_are_edited_with_their_version(client: TestClient, world: World) -> None:
    csrf = login(client, world.coordinator)
    slug = world.clsm_a.slug
    page = client.get(f"/directory/{slug}/settings")
    assert page.status_code == 200
    assert 'id="sender_email"' in page.text and 'id="slug"' not in page.text
    saved = client.post(
        f"/directory/{slug}/settings",
        data={
            "csrf_token": csrf,
            "version": "1",
            "name": "CLSM A",
            "time_zone": "Europe/Paris",
            "sender_email": "ne-pas-repondre@clsm-a.example",
            "territory": "Communauté d'agglomération A",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    wrong_zone = client.post(
        f"/directory/{slug}/settings",
        data={"csrf_token": csrf, "version": "2", "name": "CLSM A", "time_zone": "Paris"},
    )
    assert wrong_zone.status_code == 422
    assert "Fuseau horaire inconnu : « Paris » (ex. Europe/Paris)." in html.unescape(
        wrong_zone.text
    )
    headers = {"Authorization": f"Bearer {_token(world.coordinator)}"}
    current = client.get(f"/api/directory/{slug}", headers=headers).json()
    assert current["sender_email"] == "ne-pas-repondre@clsm-a.example"
    assert current["version"] == 2
    stale = client.put(
        f"/api/directory/{slug}",
        json={"name": "CLSM A bis", "version": 1},
        headers=headers,
    )
    assert stale.status_code == 409
    changed = [e for e in _events(world.clsm_a) if e[0] == "directory.clsm.updated"]
    assert changed == [("directory.clsm.updated", world.coordinator.name)]


def test_reading_a_contact_page_is_recorded_on_the_clsm_chain(
    client: TestClient, world: World
) -> None:
    login(client, world.coordinator)
    slug = world.clsm_a.slug
    path = f"/directory/{slug}/contacts/{world.contact.id}"
    before = _events(world.clsm_a).count(("contact.read", world.coordinator.name))
    page = client.get(path)
    assert page.status_code == 200 and "Camille Partenaire" in html.unescape(page.text)
    reads = _events(world.clsm_a).count(("contact.read", world.coordinator.name))
    assert reads == before + 1
    # another CLSM's coordinator reads nothing, and nothing is recorded
    client.post("/logout", data={"csrf_token": login(client, world.coordinator_b)})
    login(client, world.coordinator_b)
    assert client.get(path).status_code == 403
    assert _events(world.clsm_a).count(("contact.read", world.coordinator.name)) == reads
    assert not any(
        a == "contact.read" and who == world.coordinator_b.name for a, who in _events(world.clsm_a)
    )
