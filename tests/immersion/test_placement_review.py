"""The coordinator's review of the placements before the host requests: its rules (pure), the
gate (no host request before the review), a refused answer that keeps nothing, an accepted
one with a changed host, and later arrivals placed without a new review."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor, case_events
from models.core.errors import DomainError
from models.immersion.call import start_selection
from models.immersion.changes import withdraw_application
from models.immersion.common import applications, placements
from models.immersion.placements import ensure_placements
from models.immersion.progress import placement_next, sync_partners
from models.immersion.review import (
    NO_HOST,
    PlacementQuestion,
    placement_question,
    review_errors,
    review_placements,
    reviewed_assignments,
)
from models.immersion.rules import Assignment, Participant
from models.immersion.selection import record_selection, selection_proposal
from models.immersion.states import PlacementStatus, SessionStatus
from models.immersion.tables import ImmersionSession
from tests.immersion.test_immersion_steps import (
    SYSTEM,
    answer,
    apply,
    launched,  # noqa: F401  (fixture)
    link_of,
    mails,
)

CCAS, CHL, DAC = 1, 2, 3
HOSTS = {"CCAS": CCAS, "CHL": CHL, "DAC": DAC}
ANNE = Participant(10, 1, CCAS, (CHL, DAC))
BRUNO = Participant(11, 2, CHL, (CCAS,))
PEOPLE = {"n° 1 — Anne (CCAS)": ANNE, "n° 2 — Bruno (CHL)": BRUNO}
A, B = PEOPLE


def errors(*lines: tuple[str, str], free: dict[int, int] | None = None) -> list[str]:
    return review_errors(lines, PEOPLE, HOSTS, free or {CCAS: 2, CHL: 2, DAC: 1})


# -- the rules, without a database ----------------------------------------------------------
def test_the_proposal_as_it_comes_is_accepted() -> None:
    assert errors((A, "CHL"), (B, "CCAS")) == []
    assert errors((A, NO_HOST), (B, "DAC")) == []  # nobody to host Anne for now


def test_a_participant_is_never_hosted_by_their_own_structure() -> None:
    assert errors((A, "CCAS"), (B, "CCAS")) == [
        f"« {A} » : sa propre structure (CCAS) ne peut pas l'accueillir"
    ]


def test_a_structure_never_receives_more_than_its_free_places() -> None:
    assert errors((A, "DAC"), (B, "DAC"), free={CCAS: 2, CHL: 2, DAC: 1}) == [
        "trop de personnes pour DAC : 2 pour 1 place(s) libre(s)"
    ]


def test_every_participant_on_exactly_one_line() -> None:
    assert errors((A, "CHL")) == [f"il manque une ligne pour « {B} »"]
    assert errors((A, "CHL"), (A, "DAC"), (B, "CCAS")) == [f"« {A} » figure sur plusieurs lignes"]
    assert errors((A, "CHL"), (B, "CCAS"), ("n° 9 — Zoé (DAC)", "CHL")) == [
        "« n° 9 — Zoé (DAC) » n'est pas ou plus une personne à placer : supprimez sa ligne"
    ]
    assert errors((A, "CHL"), (B, "CCAS"), ("", "")) == [
        "une ligne n'a pas de personne : choisissez-la ou supprimez la ligne"
    ]


def test_a_host_must_be_an_invited_structure() -> None:
    assert errors((A, "UDAF"), (B, "CCAS")) == [
        "« UDAF » n'est pas une structure invitée à accueillir (n° 1 — Anne (CCAS))"
    ]
    assert errors((A, ""), (B, "CCAS")) == [f"choisissez la structure d'accueil de « {A} »"]
    declined = Participant(10, 1, CCAS, (CHL,), excluded=(CHL,))
    assert review_errors([(A, "CHL")], {A: declined}, HOSTS, {CHL: 2}) == [
        f"CHL a décliné l'accueil de « {A} »"
    ]


def test_a_binome_holds_only_while_both_keep_each_others_structure() -> None:
    proposal = {
        10: Assignment(10, CHL, 1, "binôme (vœu n°1)", 11),
        11: Assignment(11, CCAS, 1, "binôme (vœu n°1)", 10),
    }
    kept = reviewed_assignments([ANNE, BRUNO], {10: CHL, 11: CCAS}, proposal)
    assert kept == [proposal[10], proposal[11]]
    anne, bruno = reviewed_assignments([ANNE, BRUNO], {10: DAC, 11: CCAS}, proposal)
    assert (anne.host_id, anne.wish_rank, anne.pair_with) == (DAC, 2, None)
    assert anne.reason == "choix de la coordination (vœu n°2)"
    assert (bruno.host_id, bruno.pair_with) == (CCAS, None)
    assert bruno.reason == "binôme défait par la coordination (vœu n°1)"


# -- in the database: the gate, a refusal, an acceptance, a later arrival -------------------
def _selected(session: Session, row: ImmersionSession) -> None:
    apply(session, row, "ccas.example", 1, ["CHL", "DAC"])
    apply(session, row, "chl.example", 2, ["DAC"])
    clock.advance(session=session, delta=timedelta(days=11))
    start_selection(session=session, row=row, actor=SYSTEM)
    record_selection(
        session=session, row=row, decisions=selection_proposal(session, row), actor=SYSTEM
    )


def test_no_host_request_before_the_review_then_the_chosen_hosts_are_asked(
    session: Session,
    launched: ImmersionSession,  # noqa: F811
) -> None:
    row = launched
    assert row.id is not None
    _selected(session, row)
    assert row.status is SessionStatus.PLACEMENT
    # the partners' reconciliation (the service runs it after any answer) sends nothing
    assert ensure_placements(session=session, row=row, actor=SYSTEM) == []
    sync_partners(session=session, row=row, actor=SYSTEM)
    question = placement_next(session=session, row=row, actor=SYSTEM)
    assert isinstance(question, PlacementQuestion)
    assert not placements(session, row.id) and not mails(session, "immersion_host_request")
    one, two = question.participants
    assert question.initial == {
        "placements": [{"participant": one, "host": "CHL"}, {"participant": two, "host": "DAC"}]
    }
    assert question.hosts == ["CCAS", "CHL", "Département", "DAC", "UDAF", NO_HOST]
    assert "Accueils proposés : vérifiez-les avant l'envoi" in question.description
    assert "sans nouvelle vérification" in question.description
    assert [r["motif"] for r in question.table] == ["vœu n°1", "vœu n°1"]

    # refused (n°1 at their own structure): nothing kept, the gate stays closed
    coordinator = Actor.user(7, "Claire Coordinatrice")
    refused = r"accueils refusés : .*sa propre structure \(CCAS\) ne peut pas l'accueillir"
    with pytest.raises(DomainError, match=refused), session.begin_nested():
        review_placements(
            session=session, row=row, lines=[(one, "CCAS"), (two, "DAC")], actor=coordinator
        )
    assert row.placements_reviewed_at is None and not placements(session, row.id)
    assert ensure_placements(session=session, row=row, actor=SYSTEM) == []

    # accepted, n°1 sent to UDAF instead of CHL: the request reaches UDAF's referent
    created = review_placements(
        session=session,
        row=row,
        lines=[(one, "UDAF"), (two, "DAC")],
        actor=coordinator,
        comment="CHL accueille déjà beaucoup cette année",
    )
    assert len(created) == 2 and row.placements_reviewed_at is not None
    requests = {m.recipient_email for m in mails(session, "immersion_host_request")}
    assert requests == {"referent@udaf.example", "referent@dac.example"}
    first = next(p for p in created if p.reason.startswith("choix"))
    assert first.reason == "choix de la coordination (hors vœux)" and first.wish_rank is None
    (reviewed,) = [
        e for e in case_events(session, "session", row.id) if e.action == "placements.reviewed"
    ]
    assert reviewed.actor_label == "Claire Coordinatrice"
    assert reviewed.payload == {
        "placements": [f"{one} : UDAF", f"{two} : DAC"],
        "changed": [one],
        "comment": "CHL accueille déjà beaucoup cette année",
    }
    proposed = [
        e for e in case_events(session, "session", row.id) if e.action == "placement.proposed"
    ]
    assert {e.actor_label for e in proposed} == {"Claire Coordinatrice"}
    # a replay of the answer changes nothing
    assert review_placements(session=session, row=row, lines=[], actor=coordinator) == []

    # UDAF declines: n°1 goes on by the rules alone (first free wish), no new review
    udaf = next(m for m in mails(session, "immersion_host_request") if "udaf" in m.recipient_email)
    answer(session, link_of(session, udaf), {"answer": "décliner", "decline_reason": "travaux"})
    assert placement_question(session, row) is None
    active = placements(session, row.id, PlacementStatus.PROPOSED)
    again = next(p for p in active if p.application_id == applications(session, row.id)[0].id)
    assert again.reason == "vœu n°1"  # CHL
    assert len(mails(session, "immersion_host_request")) == 3


def test_a_participant_who_withdrew_while_the_form_was_open_is_refused_by_their_line(
    session: Session,
    launched: ImmersionSession,  # noqa: F811
) -> None:
    row = launched
    assert row.id is not None
    _selected(session, row)
    question = placement_question(session, row)
    assert question is not None
    one, two = question.participants
    leaving = applications(session, row.id)[1]
    withdraw_application(session=session, application=leaving, actor=SYSTEM, reason="mutation")
    coordinator = Actor.user(7, "Claire Coordinatrice")
    both = [(one, "CHL"), (two, "DAC")]
    with (
        pytest.raises(DomainError, match=re.escape(f"« {two} » n'est pas ou plus une personne")),
        session.begin_nested(),
    ):
        review_placements(
            session=session, row=row, lines=both, actor=coordinator, shown=question.participants
        )
    (placement,) = review_placements(
        session=session, row=row, lines=both[:1], actor=coordinator, shown=question.participants
    )
    assert placement.reason == "vœu n°1"
    assert [m.recipient_email for m in mails(session, "immersion_host_request")] == [
        "referent@chl.example"
    ]
