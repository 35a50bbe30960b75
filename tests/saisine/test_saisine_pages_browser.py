"""Every partner step of a saisine, typed with the keyboard in Chromium: as proposed, wrong
then corrected (what was typed is kept), and declined where a partner may decline; every
page passes axe-core (no serious or critical violation)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Page
from sqlmodel import Session, select

from models.core import clock, db
from models.core.enums import CaseType, Channel, Role
from models.core.links import StepLink, link_token
from models.core.outbox import OutboxMessage
from models.saisine.common import consultations, escalate_to_level2, meeting_members
from models.saisine.decisions import ACTION_STEP, ActionPlan, mark_meeting_held, record_decision
from models.saisine.follow_up import FOLLOW_UP_STEP, start_follow_up
from models.saisine.intake import open_saisine
from models.saisine.level1 import CONSULTATION_STEP, consult_partners, record_orientation
from models.saisine.meetings import ATTENDANCE_STEP, plan_meeting
from models.saisine.outcome import OUTCOME_STEP
from models.saisine.rules import OrientationKind
from models.saisine.tables import CellMeeting, Saisine
from tests import factories
from tests.support.browser import Person, assert_accessible, labelled
from tests.support.saisine import Cell, build_cell, intake, link_of
from tests.support.service_kit import PASSWORD, ServiceProcess

pytestmark = pytest.mark.browser

LONG = (
    "Nous connaissons Mme Q. depuis l'été : notre équipe mobile l'a rencontrée à deux "
    "reprises à son domicile, avec l'accord de sa fille. Elle refuse pour l'instant tout "
    "suivi au CMP mais accepte les visites de l'infirmière du CCAS ; un rendez-vous "
    "conjoint est possible le jeudi après-midi, à la Maison des solidarités. "
) * 3


@pytest.fixture
def service(db_url: str) -> Iterator[ServiceProcess]:
    with ServiceProcess(db_url) as running:
        yield running


def _open(page: Page, service: ServiceProcess, link: StepLink) -> Person:
    page.goto(f"{service.url}/r/{link_token(link)}")
    assert_accessible(page)
    return Person(page)


def _done(page: Page, confirmation: str) -> None:
    assert confirmation in page.inner_text("main"), page.inner_text("main")
    assert "Et ensuite ?" in page.inner_text("main")
    assert_accessible(page)


def _link(
    session: Session, cell: Cell, case_type: CaseType, case_id: int, step: str, who: str
) -> StepLink:
    return link_of(session, case_type, case_id, step, cell.contacts[who].id or 0)


def test_every_partner_step_of_a_saisine_typed_in_a_browser(
    db_url: str, service: ServiceProcess, page: Page
) -> None:
    from models.core.audit import Actor

    coord = Actor.user(1, "Inès Moreau (coordination)", Channel.PREFECT_UI)
    with db.session_scope() as session:
        cell = build_cell(session)
        coordinator = factories.user(session, cell.clsm, Role.COORDINATOR, PASSWORD)
        saisine = open_saisine(session=session, intake=intake(), actor=coord)
        assert saisine.id is not None
        consult_partners(
            session=session,
            saisine=saisine,
            organisation_ids=[cell.org_id("CCAS"), cell.org_id("CHL")],
            actor=coord,
        )
        ccas = _link(session, cell, CaseType.SAISINE, saisine.id, CONSULTATION_STEP.name, "CCAS")
        chl = _link(session, cell, CaseType.SAISINE, saisine.id, CONSULTATION_STEP.name, "CHL")
        saisine_id = saisine.id

    # consultation: the question has no preset answer; sent without it, the text stays
    person = _open(page, service, ccas)
    question = "Connaissez-vous cette situation ?"
    radios = page.get_by_role("group", name=labelled(question)).get_by_role("radio")
    assert [r.is_checked() for r in radios.all()] == [False, False]
    person.type("Ce que votre structure peut proposer", LONG.strip())
    person.submit("Envoyer ma réponse")
    assert page.url.endswith(link_token(ccas))
    assert person.group_error(question) == "Choisissez une réponse."
    assert person.value("Ce que votre structure peut proposer") == LONG.strip()
    assert_accessible(page)
    person.choose(question, "oui")
    person.submit("Envoyer ma réponse")
    _done(page, "Merci")
    # a partner who does not know the situation says so
    person = _open(page, service, chl)
    person.choose(question, "non")
    person.submit("Envoyer ma réponse")
    _done(page, "Merci")
    with db.session_scope() as session:
        answers = {
            c.organisation_id: c for c in consultations(session, session.get(Saisine, saisine_id))
        }
        assert answers[cell.org_id("CCAS")].proposal == LONG.strip()
        assert answers[cell.org_id("CHL")].knows_situation is False

        # the orientation, then its follow-up by the referrer
        saisine = session.get(Saisine, saisine_id)
        assert saisine is not None
        record_orientation(
            session=session,
            saisine=saisine,
            kind=OrientationKind.DAC_PTA,
            who_acts="DAC-PTA",
            detail="Évaluation à domicile par la coordinatrice de parcours",
            follow_up_on=clock.now(session).date() + timedelta(days=30),
            actor=coord,
        )
        outcome = link_of(
            session, CaseType.SAISINE, saisine_id, OUTCOME_STEP.name, cell.contacts["CCAS"].id or 0
        )
        start_follow_up(session=session, saisine=saisine)
        follow_up = link_of(
            session, CaseType.SAISINE, saisine_id, FOLLOW_UP_STEP.name, saisine.referrer_contact_id
        )

    person = _open(page, service, outcome)
    person.type("Remarque (facultative)", "Bien noté, nous restons disponibles à l'accueil.")
    person.submit("Bien reçu")
    _done(page, "Merci")

    # follow-up: "non" without saying which way to go is refused by the rule, then corrected
    person = _open(page, service, follow_up)
    worked = "L'orientation proposée a-t-elle fonctionné ?"
    person.choose(worked, "non")
    person.type("Commentaire", "Refus du rendez-vous à domicile ; la fille s'inquiète.")
    person.submit("Envoyer")
    assert "Votre réponse n'a pas pu être enregistrée" in page.inner_text("main")
    assert "Indiquez la suite souhaitée" in page.inner_text("main")
    assert page.get_by_role("radio", name="non").is_checked()
    assert person.value("Commentaire") == "Refus du rendez-vous à domicile ; la fille s'inquiète."
    assert_accessible(page)
    person.choose("Si non, quelle suite souhaitez-vous ?", "examen en réunion de cellule")
    person.submit("Envoyer")
    _done(page, "Merci")

    # level 2: a member declines the meeting, another comes; an owner closes an action
    with db.session_scope() as session:
        saisine = session.get(Saisine, saisine_id)
        assert saisine is not None
        second = open_saisine(session=session, intake=intake(), actor=coord)
        escalate_to_level2(session=session, saisine=second, actor=coord, reason="complexe")
        meeting = plan_meeting(
            session=session,
            saisine=second,
            starts_at=clock.now(session) + timedelta(days=7),
            host_organisation_id=cell.org_id("CCAS"),
            invited_ids=[cell.org_id("MDPH")],
            actor=coord,
        )
        members = meeting_members(session, meeting)
        assert meeting.id is not None
        invitations = [
            link_of(session, CaseType.MEETING, meeting.id, ATTENDANCE_STEP.name, m.contact_id)
            for m in members[:2]
        ]
        meeting_id, second_id = meeting.id, second.id
    for link, answer in zip(invitations, ("non", "oui"), strict=True):
        person = _open(page, service, link)
        person.choose("Serez-vous présent(e) à la réunion ?", answer)
        person.submit("Envoyer")
        _done(page, "Merci")
    with db.session_scope() as session:
        meeting = session.get(CellMeeting, meeting_id)
        second = session.get(Saisine, second_id)
        assert meeting is not None and second is not None and second.id is not None
        assert [m.attending for m in meeting_members(session, meeting)[:2]] == [False, True]
        clock.advance(session=session, delta=timedelta(days=8))
        mark_meeting_held(session=session, meeting=meeting, actor=coord)
        record_decision(
            session=session,
            saisine=second,
            meeting=meeting,
            text="Synthèse organisée par le DAC avec le médecin traitant",
            actions=[
                ActionPlan(
                    "Organiser la synthèse",
                    cell.contacts["DAC-PTA"].id or 0,
                    clock.now(session).date() + timedelta(days=30),
                )
            ],
            actor=coord,
        )
        action = _link(session, cell, CaseType.SAISINE, second.id, ACTION_STEP.name, "DAC-PTA")
    person = _open(page, service, action)
    person.type("Ce qui a été fait", "Synthèse tenue le 12/01 à l'hôpital ; compte rendu envoyé.")
    person.submit("Action réalisée")
    _done(page, "Merci")

    # the coordinator logs in with the keyboard and reads the case: both pages accessible
    page.goto(f"{service.url}/cases/saisine/{saisine_id}")
    assert_accessible(page)
    person = Person(page)
    person.type("Adresse électronique", coordinator.email)
    person.type("Mot de passe", PASSWORD)
    person.submit("Se connecter")
    assert re.search(rf"/cases/saisine/{saisine_id}$", page.url), page.url
    assert_accessible(page)
    for path in ("/cases", f"/cases/saisine/{saisine_id}/history", "/reports/saisines"):
        page.goto(f"{service.url}{path}")
        assert_accessible(page)
    # a link already used: a clear page, accessible, with a way to get a new one
    page.goto(f"{service.url}/r/{link_token(action)}")
    assert "Ce lien a déjà servi" in page.inner_text("main")
    assert_accessible(page)
    with db.session_scope() as session:
        sent = session.exec(select(OutboxMessage)).all()
    assert sent  # the answers went on to their next mails
