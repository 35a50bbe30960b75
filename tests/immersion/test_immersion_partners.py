"""What partners and participants of a session see and may do: a host declines, the link to
withdraw in every mail to a participant, cancelled agreements, the signed agreement's PDF."""

from __future__ import annotations

import html
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlmodel import Session

from models.catalogue import STEP_KINDS
from models.core import clock, db
from models.core.errors import DomainError
from models.core.links import link_token, link_url
from models.immersion.agreement_pdf import agreement_pdf
from models.immersion.agreements import SignatureForm, ensure_agreements
from models.immersion.call import start_selection
from models.immersion.changes import withdraw_application
from models.immersion.common import agreement_of, applications, parties, placements
from models.immersion.common import participant as participant_contact
from models.immersion.placements import HostForm, ensure_placements
from models.immersion.report import (
    evaluation_sections,
    report_markdown,
    report_participants_csv,
    report_structures_csv,
    session_report,
)
from models.immersion.selection import manage_vacancies, record_selection, selection_proposal
from models.immersion.states import AgreementStatus, ApplicationStatus, PlacementStatus
from models.immersion.tables import (
    ACTIVE_PLACEMENT,
    Agreement,
    Evaluation,
    ImmersionSession,
    ObservationGrid,
    Placement,
)
from notifications.render import render_message
from notifications.send import drain
from service.forms import parse_form
from service.main import create_app
from tests.immersion.test_immersion_steps import (
    SYSTEM,
    answer,
    apply,
    launched,  # noqa: F401  (fixture)
    link_of,
    mails,
)
from tests.support.immersion import (
    build_clsm,
    immersion_days,
    open_session,
    review_as_proposed,
)
from tests.support.smtp import SmtpServer


def participant_of(session: Session, placement: Placement) -> int | None:
    return participant_contact(session, placement).id


CCAS, CHL, DEPT, DAC, UDAF = range(1, 6)


def _selected(session: Session, row: ImmersionSession, wishes: list[str]) -> None:
    apply(session, row, "ccas.example", 1, wishes)
    clock.advance(session=session, delta=timedelta(days=11))
    start_selection(session=session, row=row, actor=SYSTEM)
    record_selection(
        session=session, row=row, decisions=selection_proposal(session, row), actor=SYSTEM
    )


def test_a_host_declines_and_the_next_host_by_the_rules_is_asked(
    session: Session,
    launched: ImmersionSession,  # noqa: F811
) -> None:
    row = launched
    _selected(session, row, ["CHL", "DAC"])
    (first,) = review_as_proposed(session, row)
    chl = first.host_organisation_id
    (request,) = mails(session, "immersion_host_request")
    # a refusal without its reason is a typing error: nothing recorded, the link stays
    _, _, errors = parse_form(HostForm, {"answer": ["décliner"], "decline_reason": [""]})
    assert errors == {"decline_reason": "Indiquez le motif pour décliner la demande."}
    _, _, errors = parse_form(HostForm, {"answer": ["accepter"]})
    assert set(errors) >= {"tutor_name", "tutor_email", "days", "may_observe", "may_not_observe"}
    _, _, errors = parse_form(HostForm, {})
    assert "answer" in errors  # no answer preset

    said = answer(
        session,
        link_of(session, request),
        {"answer": "décliner", "decline_reason": "équipe en sous-effectif en octobre"},
    )
    assert "déclinez" in said and "autre structure" in said
    assert first.status is PlacementStatus.CANCELLED
    (second,) = placements(session, row.id or 0, *ACTIVE_PLACEMENT)
    assert second.host_organisation_id != chl
    assert second.wish_rank == 1 and second.reason == "vœu n°1"  # DAC, the next wish
    assert len(mails(session, "immersion_host_request")) == 2
    (alert,) = mails(session, "immersion_alert")
    text = alert.context["alert"]
    assert "décline l'accueil de Candidat 1" in text  # (d'Émilie for a vowel)
    assert "équipe en sous-effectif en octobre" in text and "DAC" in text
    # the flow's next reconciliation changes nothing: the declining host is never asked again
    assert ensure_placements(session=session, row=row, actor=SYSTEM) == []


def test_the_selected_mail_carries_the_link_to_withdraw_and_the_page_offers_only_that(
    session: Session,
    launched: ImmersionSession,  # noqa: F811
) -> None:
    row = launched
    _selected(session, row, ["CHL"])
    (kept,) = mails(session, "immersion_selected")
    (received,) = mails(session, "immersion_application_received")
    personal = link_of(session, kept)
    assert personal.id == received.context["link_id"] and personal.multi_use
    rendered = render_message(session=session, message=kept)
    assert link_url(personal) in rendered.text and "Retirer ma candidature" in rendered.html
    # after the close the page offers withdrawal only, nothing chosen for the person
    kind = STEP_KINDS[personal.step]
    form = kind.form_for(session, personal)
    assert list(form.model_fields) == ["action", "reason"]
    _, _, errors = parse_form(form, {"reason": ["malade"]})
    assert "action" in errors  # no answer preset: nothing is withdrawn
    assert "clos" in " ".join(kind.page(session, personal).paragraphs)
    said = answer(session, personal, {"action": "retirer", "reason": "arrêt maladie"})
    assert "retrait est enregistré" in said and "rien d'autre à faire" in said
    (application,) = applications(session, row.id or 0)
    assert application.status is ApplicationStatus.WITHDRAWN


def _agreement_ready(session: Session, row: ImmersionSession) -> tuple[Placement, Agreement]:
    _selected(session, row, ["CHL"])
    (placement,) = review_as_proposed(session, row)
    (request,) = mails(session, "immersion_host_request")
    said = answer(session, link_of(session, request), ACCEPTED(row))
    assert placement.status is PlacementStatus.CONFIRMED, said
    ensure_agreements(session=session, row=row, actor=SYSTEM)
    agreement = agreement_of(session, placement.id or 0)
    assert agreement is not None
    return placement, agreement


def ACCEPTED(row: ImmersionSession) -> dict[str, Any]:
    return {
        "answer": "accepter",
        "tutor_name": "Jérôme Lefèvre",
        "tutor_email": "jerome.lefevre@chl.example",
        "days": immersion_days(row.window_start, 2),
        "may_observe": "réunions d'équipe, entretiens d'accueil",
        "may_not_observe": "consultations médicales",
    }


def test_a_cancelled_agreement_says_so_and_an_empty_signature_is_a_typing_error(
    session: Session,
    launched: ImmersionSession,  # noqa: F811
) -> None:
    row = launched
    placement, agreement = _agreement_ready(session, row)
    signing = [link_of(session, m) for m in mails(session, "immersion_agreement")]
    participant = next(lk for lk in signing if lk.contact_id == participant_of(session, placement))
    page = STEP_KINDS[participant.step].page(session, participant)
    assert not page.closed and "Vous signez en tant que stagiaire." in page.paragraphs
    _, _, errors = parse_form(SignatureForm, {})
    assert errors == {
        "agree": "Cochez cette case pour signer la convention.",
        "confidentiality": "Cochez cette case pour signer la convention.",
    }
    (application,) = applications(session, row.id or 0)
    withdraw_application(session=session, application=application, actor=SYSTEM, reason="malade")
    assert agreement.status is AgreementStatus.CANCELLED
    for lk in signing:
        page = STEP_KINDS[lk.step].page(session, lk)
        assert "Cette convention est annulée" in page.closed
    with pytest.raises(DomainError, match="annulée"):
        answer(session, signing[0], {"agree": True, "confidentiality": True})
    # the page a signatory opens shows the cancellation and no button to sign
    session.commit()
    with TestClient(create_app()) as client:
        shown = client.get(f"/r/{link_token(signing[1])}")
        assert shown.status_code == 200
        text = html.unescape(shown.text)
        assert "Cette convention est annulée" in text and "Signer la convention" not in text
        posted = client.post(f"/r/{link_token(signing[1])}", data={"agree": "1"})
        assert "Opération impossible" not in html.unescape(posted.text)
        assert "Cette convention est annulée" in html.unescape(posted.text)
    session.refresh(signing[1])
    assert signing[1].used_at is None  # nothing consumed


def test_the_report_of_the_seeds_session_reads_24_16_8_1_promoted(session: Session) -> None:
    """The seed's session 2: 24 applications for 16 places, one withdrawal, one promoted."""
    clsm, _ = build_clsm(session)
    row = open_session(
        session, clsm, title="Immersions 2022 — session 2", capacity=16, flow_run_id="run-seed"
    )
    homes = ["ccas", "chl", "département", "dac", "udaf"]
    names = ["CCAS", "CHL", "Département", "DAC", "UDAF"]
    for n in range(1, 25):
        home = (n - 1) % 5
        apply(session, row, f"{homes[home]}.example", n, [names[(home + 1) % 5]])
    clock.advance(session=session, delta=timedelta(days=11))
    start_selection(session=session, row=row, actor=SYSTEM)
    record_selection(
        session=session, row=row, decisions=selection_proposal(session, row), actor=SYSTEM
    )
    first = applications(session, row.id or 0, ApplicationStatus.SELECTED)[0]
    withdraw_application(session=session, application=first, actor=SYSTEM, reason="arrêt maladie")
    manage_vacancies(session=session, row=row, actor=SYSTEM)
    (offer,) = mails(session, "immersion_offer")
    answer(session, link_of(session, offer), {"answer": "j'accepte la place"})

    report = session_report(session, row.id or 0)
    f = report.figures
    assert (f.applications, f.kept, f.waitlisted, f.promoted) == (24, 16, 8, 1)
    assert f.withdrawals == [("Candidat 1", "arrêt maladie")]
    text = report_markdown(report)
    for line in (
        "Candidatures reçues : **24**",
        "Retenues à la sélection : **16**",
        "Sur liste d'attente à la clôture de l'appel : 8",
        "Promues depuis la liste d'attente : 1",
        "Retraits : 1",
    ):
        assert line in text
    # one CSV per table
    structures = report_structures_csv(report).splitlines()
    people = report_participants_csv(report).splitlines()
    assert structures[0].startswith("structure;") and len(structures) == 6
    assert people[0].startswith("n°;participant;") and len(people) == 1 + 17


def test_each_question_of_the_evaluations_has_its_section_authors_apart() -> None:
    def evaluation(author: str, useful: str, improve: str) -> Evaluation:
        return Evaluation(
            session_id=1,
            placement_id=1,
            author=author,
            rating=4,
            useful=useful,
            improve=improve,
            submitted_at=datetime(2027, 1, 5, tzinfo=UTC),
        )

    sections = evaluation_sections(
        [
            evaluation("participant", "les staffs du mardi", "une demi-journée de plus"),
            evaluation("host", "un regard extérieur", "mieux préparer l'arrivée"),
        ],
        [
            ObservationGrid(
                session_id=1,
                placement_id=1,
                missions="accueil inconditionnel",
                practices="entretiens",
                limits="secret partagé",
                submitted_at=datetime(2027, 1, 5, tzinfo=UTC),
            )
        ],
    )
    by_title = {s.title: {g.who: g.answers for g in s.groups} for s in sections}
    assert by_title["Ce qui a été utile"] == {
        "Stagiaires": ["les staffs du mardi"],
        "Tuteurs et tutrices (structures d'accueil)": ["un regard extérieur"],
    }
    assert by_title["À améliorer"]["Stagiaires"] == ["une demi-journée de plus"]
    assert by_title["À améliorer"]["Tuteurs et tutrices (structures d'accueil)"] == [
        "mieux préparer l'arrivée"
    ]
    grid = by_title["Grille d'observation : limites d'intervention et leviers de coopération"]
    assert grid == {"Stagiaires": ["secret partagé"]}


def test_the_signed_agreement_is_a_pdf_with_the_parties_and_the_three_signatures(
    session: Session,
    launched: ImmersionSession,  # noqa: F811
) -> None:
    row = launched
    placement, agreement = _agreement_ready(session, row)
    with pytest.raises(DomainError, match="pas encore signée"):
        agreement_pdf(session, agreement)
    for message in mails(session, "immersion_agreement"):
        answer(session, link_of(session, message), {"agree": True, "confidentiality": True})
    assert agreement.status is AgreementStatus.SIGNED
    document = agreement_pdf(session, agreement)
    assert document.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)
    text = " ".join(text.split())
    people = {p.name for p in parties(session, placement).values()}
    assert people == {"Candidat 1", "Cheffe ccas.example", "Jérôme Lefèvre"}
    for expected in (
        *people,
        "CHL",
        "CCAS",
        "réunions d'équipe, entretiens d'accueil",
        "consultations médicales",
        "Signatures",
        f"{immersion_days(row.window_start, 2)[0]:%d/%m/%Y}",
    ):
        assert expected in text, expected
    assert text.count("signé électroniquement le") == 3


async def test_the_three_signatories_receive_the_signed_agreement_as_a_pdf(
    db_url: str, smtp_server: SmtpServer
) -> None:
    with db.session_scope() as session:
        clsm, _ = build_clsm(session)
        row = open_session(
            session, clsm, title="Immersions 2027 — session 1", capacity=2, flow_run_id="run-pdf"
        )
        placement, _agreement = _agreement_ready(session, row)
        for message in mails(session, "immersion_agreement"):
            answer(session, link_of(session, message), {"agree": True, "confidentiality": True})
        people = {p.email: p.name for p in parties(session, placement).values()}
    await drain()
    signed = [
        m
        for m in smtp_server.messages
        if m.message["Subject"].startswith("Convention de stage signée")
    ]
    assert sorted(r for m in signed for r in m.recipients) == sorted(people)
    for received in signed:
        (pdf,) = [p for p in received.message.walk() if p.get_content_type() == "application/pdf"]
        assert pdf.is_attachment() and pdf.get_filename().endswith(".pdf")
        data = pdf.get_payload(decode=True)
        assert isinstance(data, bytes) and data.startswith(b"%PDF-")
        text = " ".join(
            " ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(data)).pages
        )
        for name in people.values():
            assert name in text
        assert (
            "La convention de stage d'immersion de Candidat 1 chez CHL"
            in received.text().replace("\n", " ")
        )
