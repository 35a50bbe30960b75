"""Immersion steps recorded through the step registry, with a database and no Prefect."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from models.catalogue import STEP_KINDS
from models.core import clock
from models.core.audit import Actor, case_events, verify_case
from models.core.calendar import INSIST, add_business_days
from models.core.errors import DomainError, InvalidInput
from models.core.links import StepLink, consume
from models.core.outbox import OutboxMessage
from models.core.people import Contact
from models.immersion.call import create_session, open_call, start_selection
from models.immersion.changes import cancel_session, move_meeting, withdraw_application
from models.immersion.common import advance_to, applications, placements
from models.immersion.evaluations import missing_evaluations, request_evaluations
from models.immersion.meetings import (
    ensure_invitations,
    ensure_restitution_invitations,
    finish_immersions,
    immersion_notices,
    record_attendance,
)
from models.immersion.placements import ensure_placements, placements_confirmed
from models.immersion.plan import signature_deadline
from models.immersion.progress import agreements_signed, answer_selection, selection_question
from models.immersion.report import (
    report_markdown,
    report_participants_csv,
    report_structures_csv,
    session_report,
    store_report,
)
from models.immersion.selection import manage_vacancies, record_selection, selection_proposal
from models.immersion.states import (
    AgreementStatus,
    ApplicationStatus,
    PlacementStatus,
    SessionStatus,
)
from models.immersion.tables import (
    ACTIVE_PLACEMENT,
    Agreement,
    Application,
    ImmersionSession,
    ImmersionSessionCreate,
)
from tests.support.immersion import (
    PARIS,
    build_clsm,
    immersion_days,
    review_as_proposed,
    session_dates,
)

SYSTEM = Actor.system("test")


def answer(session: Session, link: StepLink, data: dict[str, Any]) -> str:
    """What the service does on POST: validate with the step's form, record."""
    kind = STEP_KINDS[link.step]
    form = kind.form.model_validate(data)
    kind.page(session, link)  # the page renders for this link
    if link.used_at is None:
        consume(session=session, link=link)  # as the service does (a multi-use link stays)
    contact = session.get(Contact, link.contact_id)
    assert contact is not None and contact.id is not None
    return kind.record(session, link, form, Actor.contact(contact.id, contact.name))


def link_of(session: Session, message: OutboxMessage) -> StepLink:
    link = session.get(StepLink, message.context["link_id"])
    assert link is not None
    return link


def advance_to_moment(session: Session, moment: datetime) -> None:
    delta = moment - clock.now(session)
    assert delta > timedelta(0), "the clock never goes back"
    clock.advance(session=session, delta=delta)


def mails(session: Session, template: str, email: str | None = None) -> list[OutboxMessage]:
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.template == template)).all()
    return [m for m in rows if email is None or m.recipient_email == email]


@pytest.fixture
def launched(session: Session) -> ImmersionSession:
    clsm, _orgs = build_clsm(session)
    data = ImmersionSessionCreate(
        clsm_slug=clsm.slug,
        title="Immersions 2022 — session 2",
        capacity=4,
        structures=["CCAS", "chl", "Département", "DAC", "UDAF"],
        **session_dates(clock.now(session)),
    )
    row = create_session(session=session, data=data, flow_run_id="run-1", actor=SYSTEM)
    again = create_session(session=session, data=data, flow_run_id="run-1", actor=SYSTEM)
    assert again.id == row.id  # idempotent by flow run
    assert open_call(session=session, row=row, actor=SYSTEM) == 5
    assert open_call(session=session, row=row, actor=SYSTEM) == 0  # replay: nothing new
    assert row.status is SessionStatus.CALL_OPEN
    return row


def apply(session: Session, row: ImmersionSession, home: str, n: int, wishes: list[str]) -> str:
    call = next(
        m for m in mails(session, "immersion_call") if m.recipient_email == f"referent@{home}"
    )
    return answer(
        session,
        link_of(session, call),
        {
            "name": f"Candidat {n}",
            "email": f"candidat{n}@{home}",
            "function": "Travailleur social",
            "manager_name": f"Cheffe {home}",
            "manager_email": f"cheffe@{home}",
            "motivation": "Mieux connaître les partenaires",
            "wishes": wishes,
            "availability": "mardis et jeudis",
        },
    )


def test_launch_refuses_unknown_structures_and_bad_days(session: Session) -> None:
    clsm, _ = build_clsm(session)
    base = {"clsm_slug": clsm.slug, "title": "T", **session_dates(clock.now(session))}
    with pytest.raises(DomainError, match=r"structures inconnues.*Mairie"):
        create_session(
            session=session,
            data=ImmersionSessionCreate(**base, structures=["CCAS", "Mairie"]),
            flow_run_id="r",
            actor=SYSTEM,
        )
    with pytest.raises(DomainError, match="de 1 à 5 jours"):
        create_session(
            session=session,
            data=ImmersionSessionCreate(**{**base, "max_days": 6}, structures=["CCAS", "CHL"]),
            flow_run_id="r",
            actor=SYSTEM,
        )
    # a restitution on a Saturday (the week-end after it): refused in French, kept if insisted
    restitution = base["restitution_at"]
    saturday = restitution + timedelta(days=5 - restitution.weekday() + 7)
    weekend = {**base, "restitution_at": saturday, "restitution_end": saturday + timedelta(hours=3)}
    with pytest.raises(
        DomainError,
        match=f"la restitution : le samedi {saturday:%d/%m/%Y} est un week-end "
        f"\\(choisissez un autre jour, ou cochez « {INSIST} »\\)",
    ):
        create_session(
            session=session,
            data=ImmersionSessionCreate(**weekend, structures=["CCAS", "CHL"]),
            flow_run_id="r",
            actor=SYSTEM,
        )
    kept = create_session(
        session=session,
        data=ImmersionSessionCreate(**weekend, structures=["CCAS", "CHL"], insist=True),
        flow_run_id="r",
        actor=SYSTEM,
    )
    assert kept.restitution_at == saturday


def test_application_by_link_then_change_and_withdraw(
    session: Session, launched: ImmersionSession
) -> None:
    confirmation = apply(session, launched, "ccas.example", 1, ["CHL", "UDAF"])
    assert "candidature n°1" in confirmation
    received = mails(session, "immersion_application_received", "candidat1@ccas.example")
    assert len(received) == 1 and received[0].context["wishes"] == ["CHL", "UDAF"]
    with pytest.raises(DomainError, match="votre propre structure"):
        apply(session, launched, "ccas.example", 2, ["CCAS"])
    personal = link_of(session, received[0])
    assert answer(session, personal, {"action": "modifier", "wishes": ["DAC"]}).startswith(
        "Votre candidature est modifiée."
    )
    assert "retrait est enregistré" in answer(
        session, personal, {"action": "retirer", "reason": "arrêt maladie"}
    )
    application = applications(session, launched.id or 0)[0]
    assert application.status is ApplicationStatus.WITHDRAWN
    assert application.withdrawal_reason == "arrêt maladie"
    assert verify_case(session, "session", launched.id or 0) is None


def test_whole_session_through_the_steps(session: Session, launched: ImmersionSession) -> None:
    row = launched
    assert row.id is not None
    homes = ["ccas.example", "chl.example", "département.example", "dac.example", "udaf.example"]
    names = ["CCAS", "CHL", "Département", "DAC", "UDAF"]
    for n in range(1, 7):  # 6 applications for 4 places
        home = (n - 1) % 5
        apply(session, row, homes[home], n, [names[(home + 1) % 5], names[(home + 2) % 5]])
    clock.advance(session=session, delta=timedelta(days=11))
    with pytest.raises(DomainError, match="clos"):
        apply(session, row, "ccas.example", 7, ["CHL"])

    start_selection(session=session, row=row, actor=SYSTEM)
    proposal = selection_proposal(session, row)
    record_selection(session=session, row=row, decisions=proposal, actor=SYSTEM)
    record_selection(session=session, row=row, decisions=proposal, actor=SYSTEM)  # replay
    assert row.status is SessionStatus.PLACEMENT and row.places == 4
    assert len(mails(session, "immersion_selected")) == 4
    waitlisted = mails(session, "immersion_waitlisted")
    assert [m.context["rank"] for m in waitlisted] == [1, 2]

    created = review_as_proposed(session, row)
    assert len(created) == 4 and ensure_placements(session=session, row=row, actor=SYSTEM) == []
    for placement in created:
        application = session.get(Application, placement.application_id)
        assert application is not None
        assert placement.host_organisation_id != application.organisation_id

    # participant n°1 withdraws before the cut-off: the 1st of the waiting list is offered
    first = applications(session, row.id)[0]
    withdrawal = link_of(
        session, mails(session, "immersion_application_received", "candidat1@ccas.example")[0]
    )
    answer(session, withdrawal, {"action": "retirer", "reason": "arrêt maladie"})
    assert first.status is ApplicationStatus.WITHDRAWN
    assert len(mails(session, "immersion_placement_cancelled")) == 1
    deadline = manage_vacancies(session=session, row=row, actor=SYSTEM)
    assert deadline is not None
    offer = mails(session, "immersion_offer")
    assert len(offer) == 1 and offer[0].context["number"] == 5
    assert "place est confirmée" in answer(
        session, link_of(session, offer[0]), {"answer": "j'accepte la place"}
    )
    active = placements(session, row.id, *ACTIVE_PLACEMENT)
    assert len(active) == 4

    # hosts confirm; a day outside the window is refused
    for i, placement in enumerate(active):
        request = mails(session, "immersion_host_request")
        message = next(
            m for m in request if m.dedup_key == f"placement-{placement.id}-host-request"
        )
        host = {
            "answer": "accepter",
            "tutor_name": f"Tuteur {i}",
            "tutor_email": f"tuteur{i}@accueil.example",
            "capacity": 2,
            "days": [d.isoformat() for d in immersion_days(row.window_start, 3, i)],
            "may_observe": "entretiens d'accueil, réunions d'équipe",
            "may_not_observe": "consultations médicales",
        }
        if i == 0:
            bad = {**host, "days": [(row.window_end + timedelta(days=3)).isoformat()]}
            with pytest.raises(DomainError, match="hors de la période"):
                answer(session, link_of(session, message), bad)
        answer(session, link_of(session, message), host)
    assert placements_confirmed(session, row)
    agreements = mails(session, "immersion_agreement")
    assert len(agreements) == 12  # three parties × four placements
    assert not agreements_signed(session, row)
    # reminders are planned for every awaited signature (deadline: two business days before
    # the preparation day); at the last reminder time each unsigned party gets one
    from models.core.reminders import SCHEDULES, send_due_reminders

    times = SCHEDULES["standard"].reminder_times(signature_deadline(row), PARIS)
    advance_to_moment(session, times[-1] + timedelta(minutes=1))
    assert send_due_reminders(session) == 12
    assert {m.recipient_email for m in mails(session, "reminder")} == {
        m.recipient_email for m in agreements
    }
    for message in agreements[:-1]:
        answer(session, link_of(session, message), {"agree": True, "confidentiality": True})
    # after the deadline only the late signatory is reminded, and the coordinator alerted
    before = {m.id for m in mails(session, "reminder")}
    advance_to_moment(session, signature_deadline(row) + timedelta(days=3))
    send_due_reminders(session)
    late = [m for m in mails(session, "reminder") if m.id not in before]
    assert {m.recipient_email for m in late} <= {agreements[-1].recipient_email}
    (alert,) = mails(session, "escalation")
    assert alert.recipient_email.startswith("coordination")
    for message in agreements[-1:]:
        answer(session, link_of(session, message), {"agree": True, "confidentiality": True})
    assert agreements_signed(session, row)
    assert all(
        session.get(Agreement, a.id).status is AgreementStatus.SIGNED  # type: ignore[union-attr]
        for a in session.exec(select(Agreement))
    )

    advance_to(session=session, row=row, to=SessionStatus.AGREEMENTS, actor=SYSTEM)
    advance_to(session=session, row=row, to=SessionStatus.PREPARATION, actor=SYSTEM)
    ensure_invitations(session=session, row=row)
    assert ensure_invitations(session=session, row=row) == 0
    invitations = mails(session, "immersion_preparation")
    assert len(invitations) == 5  # 4 participants + the facilitator
    assert "animation@codes.example" in {m.recipient_email for m in invitations}
    assert "candidat1@ccas.example" not in {m.recipient_email for m in invitations}
    numbers = [a.number for a in applications(session, row.id, ApplicationStatus.SELECTED)]
    record_attendance(
        session=session, row=row, meeting="preparation", present_numbers=numbers[:3], actor=SYSTEM
    )
    advance_to(session=session, row=row, to=SessionStatus.IMMERSION, actor=SYSTEM)
    next_reminder = immersion_notices(session=session, row=row)
    assert next_reminder is not None
    assert len(mails(session, "immersion_days")) == 8
    assert all(
        m.calendar and m.calendar["method"] == "REQUEST" for m in mails(session, "immersion_days")
    )
    clock.advance(session=session, delta=next_reminder - clock.now(session) + timedelta(hours=1))
    immersion_notices(session=session, row=row)
    assert len(mails(session, "immersion_day_reminder")) >= 2

    finish_immersions(session=session, row=row, actor=SYSTEM)
    advance_to(session=session, row=row, to=SessionStatus.EVALUATION, actor=SYSTEM)
    assert request_evaluations(session=session, row=row) == 8
    for message in mails(session, "immersion_evaluation"):
        answer(
            session,
            link_of(session, message),
            {"missions": "accueil", "practices": "entretiens", "limits": "secret", "rating": 5},
        )
    for message in mails(session, "immersion_host_evaluation"):
        answer(session, link_of(session, message), {"rating": 4, "useful": "regards croisés"})
    assert missing_evaluations(session, row) == []
    assert ensure_restitution_invitations(session=session, row=row) == 9

    report = store_report(session=session, row=row, actor=SYSTEM)
    figures = report.figures
    # 4 kept at the selection (the one promoted later is counted apart), 2 waiting
    assert (figures.applications, figures.kept, figures.promoted) == (6, 4, 1)
    assert figures.waitlisted == 2
    assert figures.withdrawals == [("Candidat 1", "arrêt maladie")]
    assert (figures.immersions_done, figures.days_total) == (4, 12)
    assert figures.participant_rating == 5.0 and figures.host_rating == 4.0
    assert figures.preparation_present == 3
    csv_text = report_structures_csv(report)
    assert csv_text.splitlines()[0] == (
        "structure;candidatures;participants (retenus ou promus);stagiaires accueillis;"
        "jours accueillis"
    )
    assert "# Bilan" in report_markdown(report)
    assert verify_case(session, "session", row.id) is None
    actions = [e.action for e in case_events(session, "session", row.id)]
    assert actions.count("report.created") == 1
    store_report(session=session, row=row, actor=SYSTEM)
    assert [e.action for e in case_events(session, "session", row.id)] == actions
    from notifications.render import render_message

    for message in session.exec(select(OutboxMessage)):  # every context fits its template
        mail = render_message(session=session, message=message)
        assert row.title in mail.subject + mail.text


def test_offer_declined_goes_to_the_next_and_after_cutoff_the_place_stays_empty(
    session: Session, launched: ImmersionSession
) -> None:
    row = launched
    assert row.id is not None
    for n in range(1, 8):
        apply(session, row, "chl.example", n, ["CCAS"])
    clock.advance(session=session, delta=timedelta(days=11))
    start_selection(session=session, row=row, actor=SYSTEM)
    record_selection(
        session=session, row=row, decisions=selection_proposal(session, row), actor=SYSTEM
    )
    apps = applications(session, row.id)
    withdraw_application(session=session, application=apps[0], actor=SYSTEM, reason="mutation")
    manage_vacancies(session=session, row=row, actor=SYSTEM)
    offers = mails(session, "immersion_offer")
    assert [m.recipient_email for m in offers] == ["candidat5@chl.example"]
    answer(session, link_of(session, offers[0]), {"answer": "je décline"})
    offers = mails(session, "immersion_offer")
    assert [m.recipient_email for m in offers][-1] == "candidat6@chl.example"
    # silence until the deadline: the next one (n°7)
    clock.advance(session=session, delta=timedelta(days=row.offer_days, hours=1))
    manage_vacancies(session=session, row=row, actor=SYSTEM)
    assert mails(session, "immersion_offer")[-1].recipient_email == "candidat7@chl.example"
    assert apps[5].status is ApplicationStatus.NOT_SELECTED
    # after the cut-off a withdrawal leaves the place empty
    answer(
        session,
        link_of(session, mails(session, "immersion_offer")[-1]),
        {"answer": "j'accepte la place"},
    )
    clock.advance(session=session, delta=row.withdrawal_cutoff - clock.now(session))
    withdraw_application(session=session, application=apps[1], actor=SYSTEM, reason="congé")
    manage_vacancies(session=session, row=row, actor=SYSTEM)
    assert len(mails(session, "immersion_offer")) == 3
    assert row.empty_places == 1
    assert "place.left-empty" in [e.action for e in case_events(session, "session", row.id)]


def test_cancellation_sends_calendar_cancel_to_the_invited(
    session: Session, launched: ImmersionSession
) -> None:
    row = launched
    assert row.id is not None
    apply(session, row, "ccas.example", 1, ["CHL"])
    clock.advance(session=session, delta=timedelta(days=11))
    start_selection(session=session, row=row, actor=SYSTEM)
    record_selection(
        session=session, row=row, decisions=selection_proposal(session, row), actor=SYSTEM
    )
    ensure_invitations(session=session, row=row)
    saturday = row.preparation_at + timedelta(days=12 - row.preparation_at.weekday())
    with pytest.raises(InvalidInput, match=f"Le samedi {saturday:%d/%m/%Y} est un week-end"):
        move_meeting(
            session=session,
            row=row,
            meeting="preparation",
            start=saturday,
            end=saturday + timedelta(hours=7),
            place="Salle B",
            actor=SYSTEM,
        )
    moved = datetime.combine(add_business_days(row.preparation_at.date(), 1), time(9), PARIS)
    assert (
        move_meeting(
            session=session,
            row=row,
            meeting="preparation",
            start=moved,
            end=moved + timedelta(hours=7),
            place="Salle B",
            actor=SYSTEM,
        )
        == 2
    )
    update = mails(session, "immersion_meeting_moved")
    assert {m.calendar["sequence"] for m in update if m.calendar} == {1}
    cancel_session(session=session, row=row, actor=SYSTEM, reason="grève")
    cancels = [m for m in mails(session, "immersion_session_cancelled") if m.calendar]
    assert cancels and all(m.calendar and m.calendar["method"] == "CANCEL" for m in cancels)
    assert row.status is SessionStatus.CANCELLED


def test_the_mails_of_a_session_render_with_their_links(
    session: Session, launched: ImmersionSession
) -> None:
    from notifications.render import render_message

    apply(session, launched, "ccas.example", 1, ["CHL"])
    apply(session, launched, "chl.example", 2, ["CCAS"])
    for message in session.exec(select(OutboxMessage)):
        mail = render_message(session=session, message=message)
        assert launched.title in mail.subject
        assert "/r/" in mail.text  # the call and the confirmations carry a link


def test_a_withdrawal_after_the_day_invitations_cancels_them_for_both(
    session: Session, launched: ImmersionSession
) -> None:
    row = launched
    assert row.id is not None
    apply(session, row, "ccas.example", 1, ["CHL"])
    clock.advance(session=session, delta=timedelta(days=11))
    start_selection(session=session, row=row, actor=SYSTEM)
    record_selection(
        session=session, row=row, decisions=selection_proposal(session, row), actor=SYSTEM
    )
    (placement,) = review_as_proposed(session, row)
    (request,) = mails(session, "immersion_host_request")
    host = {
        "answer": "accepter",
        "tutor_name": "Tuteur",
        "tutor_email": "tuteur@accueil.example",
        "capacity": 1,
        "days": [d.isoformat() for d in immersion_days(row.window_start, 2, 0)],
        "may_observe": "réunions d'équipe",
        "may_not_observe": "consultations",
    }
    answer(session, link_of(session, request), host)
    for message in mails(session, "immersion_agreement"):
        answer(session, link_of(session, message), {"agree": True, "confidentiality": True})
    for status in (SessionStatus.AGREEMENTS, SessionStatus.PREPARATION, SessionStatus.IMMERSION):
        advance_to(session=session, row=row, to=status, actor=SYSTEM)
    immersion_notices(session=session, row=row)
    invited = {m.recipient_email: m.calendar for m in mails(session, "immersion_days")}
    assert set(invited) == {"candidat1@ccas.example", "tuteur@accueil.example"}

    (application,) = applications(session, row.id)
    withdraw_application(session=session, application=application, actor=SYSTEM, reason="congé")

    cancels = mails(session, "immersion_placement_cancelled") + mails(
        session, "immersion_days_cancelled"
    )
    assert {m.recipient_email for m in cancels} == set(invited)
    for message in cancels:  # the same event (uid), withdrawn from both agendas
        calendar = message.calendar
        assert calendar is not None and calendar["method"] == "CANCEL"
        assert calendar["uid"] == invited[message.recipient_email]["uid"]  # type: ignore[index]
    assert placement.status is PlacementStatus.CANCELLED
    withdraw_application(session=session, application=application, actor=SYSTEM, reason="congé")
    assert len(mails(session, "immersion_days_cancelled")) == 1  # a replay sends nothing more


def test_binomes_declared_at_the_selection_are_placed_and_reported(
    session: Session, launched: ImmersionSession
) -> None:
    row = launched
    assert row.id is not None
    for n, (home, wishes) in enumerate(
        [("ccas", ["CHL"]), ("chl", ["CCAS"]), ("dac", ["CCAS"]), ("udaf", ["CHL"])], start=1
    ):
        apply(session, row, f"{home}.example", n, wishes)
    clock.advance(session=session, delta=timedelta(days=11))
    start_selection(session=session, row=row, actor=SYSTEM)
    question = selection_question(session=session, row=row)
    one, two, three, _four = question.choices
    # the crossed wishes of n°1 (CCAS → CHL) and n°2 (CHL → CCAS) are proposed
    assert question.initial["pairs"] == [{"first": one, "second": two}]
    assert f"- {one} et {two} : chacun accueilli par la structure de l'autre" in (
        question.description
    )

    def select(*pairs: tuple[str, str], comment: str = "") -> None:
        kept = question.initial["kept"]
        assert isinstance(kept, list)
        answer_selection(
            session=session,
            row=row,
            kept=kept,
            waitlist=[],
            pairs=pairs,
            actor=SYSTEM,
            comment=comment,
        )

    with pytest.raises(DomainError, match=r"binômes : choisissez les deux personnes .*case vide"):
        select((one, ""))
    with pytest.raises(DomainError, match="une personne ne peut être que dans un binôme"):
        select((one, two), (two, three))
    assert row.status is SessionStatus.SELECTION and not mails(session, "immersion_selected")

    # the coordinator pairs n°1 with n°3 instead: n°2 gets no binôme (no inference)
    select((one, three), comment="  Binôme CCAS–DAC décidé en comité de pilotage.  ")
    assert row.status is SessionStatus.PLACEMENT
    moved = [
        e.payload for e in case_events(session, "session", row.id) if e.action == "status.changed"
    ]
    assert moved[-1]["comment"] == "Binôme CCAS–DAC décidé en comité de pilotage."  # kept
    review_as_proposed(session, row)
    first, second, third, _fourth = applications(session, row.id)
    host = {p.application_id: p for p in placements(session, row.id)}
    assert host[first.id or 0].host_organisation_id == third.organisation_id
    assert host[third.id or 0].host_organisation_id == first.organisation_id
    assert host[first.id or 0].pair_application_id == third.id
    assert host[first.id or 0].reason == "binôme déclaré par la coordination"
    assert host[second.id or 0].pair_application_id is None
    declared = [
        e.payload for e in case_events(session, "session", row.id) if e.action == "pairs.declared"
    ]
    assert declared == [{"pairs": ["n° 1 et n° 3"]}]  # the refused answers left nothing

    report = session_report(session, row.id)
    assert [p.label for p in report.figures.pairs] == ["Candidat 1 (CCAS) et Candidat 3 (DAC)"]
    text = report_markdown(report)
    assert "- Binômes (accueils réciproques) : 1" in text
    assert "## Binômes\n\n- Candidat 1 (CCAS) et Candidat 3 (DAC)" in text
    table = report_participants_csv(report).splitlines()
    assert table[0].endswith(";motif;binôme avec")
    assert table[1].endswith(";Candidat 3 (DAC)") and table[2].endswith(";")
