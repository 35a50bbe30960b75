"""Pure rules of an immersion session: no database, no Prefect."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from models.immersion.rules import (
    ApplicationFacts,
    Candidate,
    Outcome,
    PairFacts,
    Participant,
    PlacementFacts,
    Rule,
    apply_coordinator_choice,
    assign_placements,
    check_days,
    pair_errors,
    parse_days,
    parse_numbers,
    propose_pairs,
    propose_selection,
    reminder_day,
    replacement,
    report_figures,
)


def _poitiers_24() -> list[Candidate]:
    """24 applications from 6 structures, as in Poitiers session 2: CHL sends 8."""
    homes = [1, 1, 2, 1, 3, 1, 4, 2, 1, 5, 1, 6, 2, 1, 3, 1, 4, 2, 5, 3, 6, 2, 4, 5]
    return [Candidate(application_id=100 + n, number=n, home_id=h) for n, h in enumerate(homes, 1)]


def test_24_applications_16_places_balanced_between_structures() -> None:
    decisions = propose_selection(_poitiers_24(), capacity=16)
    kept = [d for d in decisions if d.outcome is Outcome.SELECTED]
    waiting = [d for d in decisions if d.outcome is Outcome.WAITLISTED]
    assert len(kept) == 16 and len(waiting) == 8
    homes = {c.number: c.home_id for c in _poitiers_24()}
    per_home = {h: sum(1 for d in kept if homes[d.number] == h) for h in range(1, 7)}
    # round 1: 6, round 2: 6 (every structure has 2+), round 3: structures 1, 2, 3, 4
    assert per_home == {1: 3, 2: 3, 3: 3, 4: 3, 5: 2, 6: 2}
    # the 4th application of structure 1 (n°9) waits although it came before n°24
    assert next(d for d in decisions if d.number == 9).outcome is Outcome.WAITLISTED
    assert sorted(d.waitlist_rank or 0 for d in waiting) == list(range(1, 9))
    # the waiting list follows the same rounds: 3rd of structure 5 (n°24) before 4th of 1
    by_number = {d.number: d for d in decisions}
    assert (by_number[24].waitlist_rank or 0) < (by_number[9].waitlist_rank or 0)
    assert all(d.reason.startswith("liste d'attente (rang") for d in waiting)
    assert all(d.rule is Rule.BALANCE for d in kept)


def test_ties_inside_a_round_go_by_order_of_application() -> None:
    candidates = [Candidate(n, n, home_id=1 if n % 2 else 2) for n in range(1, 7)]
    decisions = propose_selection(candidates, capacity=3)
    assert [d.outcome for d in decisions] == [
        Outcome.SELECTED,
        Outcome.SELECTED,
        Outcome.SELECTED,  # 3: 2nd of structure 1, before 4 (2nd of structure 2)
        Outcome.WAITLISTED,
        Outcome.WAITLISTED,
        Outcome.WAITLISTED,
    ]
    assert decisions[3].reason.startswith("liste d'attente (rang 1)")


def test_one_structure_only_the_17th_is_first_on_the_waiting_list() -> None:
    candidates = [Candidate(n, n, home_id=7) for n in range(1, 21)]
    decisions = propose_selection(candidates, capacity=16)
    assert [d.number for d in decisions if d.outcome is Outcome.SELECTED] == list(range(1, 17))
    seventeenth = decisions[16]
    assert seventeenth.outcome is Outcome.WAITLISTED and seventeenth.waitlist_rank == 1
    assert seventeenth.reason.startswith("liste d'attente (rang 1)")


def test_per_structure_maximum() -> None:
    decisions = propose_selection(_poitiers_24(), capacity=16, max_per_structure=2)
    kept = [d for d in decisions if d.outcome is Outcome.SELECTED]
    refused = [d for d in decisions if d.outcome is Outcome.NOT_SELECTED]
    assert len(kept) == 12  # 6 structures × 2: four places stay free
    assert not [d for d in decisions if d.outcome is Outcome.WAITLISTED]
    assert len(refused) == 12
    assert all(d.rule is Rule.STRUCTURE_MAX for d in refused)
    assert refused[0].reason == "non retenu : maximum par structure atteint (2)"


def test_coordinator_edit_of_the_proposal() -> None:
    proposal = propose_selection([Candidate(n, n, 1 + n % 3) for n in range(1, 6)], capacity=3)
    assert parse_numbers("1, 2; n°4 4") == [1, 2, 4]
    edited = apply_coordinator_choice(proposal, kept=[1, 2, 4], waitlist=[3], capacity=3)
    by_number = {d.number: d for d in edited}
    assert by_number[4].outcome is Outcome.SELECTED and by_number[4].rule is Rule.COORDINATOR
    assert by_number[3].waitlist_rank == 1
    assert by_number[5].outcome is Outcome.NOT_SELECTED
    assert by_number[1] == next(d for d in proposal if d.number == 1)  # unchanged: same reason
    with pytest.raises(ValueError, match="inconnus"):
        apply_coordinator_choice(proposal, kept=[9], waitlist=[], capacity=3)
    with pytest.raises(ValueError, match="pour 3 places"):
        apply_coordinator_choice(proposal, kept=[1, 2, 3, 4], waitlist=[], capacity=3)
    with pytest.raises(ValueError, match="n'est pas un numéro"):
        parse_numbers("1, deux")


def test_a_participant_is_never_hosted_by_their_own_structure() -> None:
    participants = [
        Participant(1, 1, home_id=1, wishes=(1, 2)),  # own structure wished first: ignored
        Participant(2, 2, home_id=2, wishes=(2,)),  # only wishes own structure
    ]
    result = assign_placements(participants, {1: 1, 2: 1})
    assert result[0].host_id == 2 and result[0].wish_rank == 1
    assert result[1].host_id == 1 and result[1].wish_rank is None
    lonely = assign_placements([Participant(3, 3, home_id=1, wishes=(2,))], {1: 5})
    assert lonely[0].host_id is None
    assert lonely[0].reason == "aucune structure d'accueil disponible"


def test_wishes_capacity_and_binomes() -> None:
    participants = [
        Participant(10, 1, home_id=1, wishes=(3, 2)),
        Participant(20, 2, home_id=2, wishes=(1,)),
        Participant(30, 3, home_id=3, wishes=(2, 1)),
        Participant(40, 4, home_id=4, wishes=(3,)),
    ]
    result = {a.application_id: a for a in assign_placements(participants, {1: 1, 2: 1, 3: 1})}
    # 10 and 20 exchange (binôme) although 10 wished structure 3 first: 10 ranks it 2nd
    assert result[10].host_id == 2 and result[10].pair_with == 20
    assert result[20].host_id == 1 and result[20].pair_with == 10
    assert result[20].reason == "binôme (vœu n°1)"
    # 30 wished 2 then 1, both full; the only free place is in its own structure: none
    assert result[30].host_id is None
    assert result[40].host_id == 3 and result[40].wish_rank == 1
    # capacities are never exceeded
    hosts = [a.host_id for a in result.values() if a.host_id]
    assert all(hosts.count(h) <= 1 for h in hosts)


BINOMES = [
    Participant(10, 1, home_id=1, wishes=(2,)),
    Participant(20, 2, home_id=2, wishes=(1,)),  # crossed wishes with 10: proposed binôme
    Participant(30, 3, home_id=3, wishes=(1,)),
    Participant(40, 4, home_id=4, wishes=(1,)),
]
LABELS = {10: "n° 1 — Ana (CCAS)", 20: "n° 2 — Bo (CHL)", 30: "n° 3 — Cé (DAC)", 40: "n° 4 — Dé"}


def test_the_coordinators_binomes_override_the_inferred_ones() -> None:
    hosts = {1: 1, 2: 1, 3: 1, 4: 1}
    assert propose_pairs(BINOMES, hosts) == [(10, 20)]
    # the coordinator pairs 10 with 30 instead (no crossed wishes needed): 20 is on its own
    result = {a.application_id: a for a in assign_placements(BINOMES, hosts, pairs=[(10, 30)])}
    assert (result[10].host_id, result[10].pair_with, result[10].wish_rank) == (3, 30, None)
    assert result[10].reason == "binôme déclaré par la coordination"
    assert (result[30].host_id, result[30].pair_with) == (1, 10)
    assert result[30].reason == "binôme déclaré par la coordination (vœu n°1)"
    assert result[20].pair_with is None and result[20].host_id != 2
    # no binôme declared: none is formed, even where wishes cross
    alone = assign_placements(BINOMES, hosts, pairs=[])
    assert all(a.pair_with is None for a in alone)


def test_binomes_that_cannot_be_formed_are_refused_in_french() -> None:
    kept = [*BINOMES, Participant(50, 5, home_id=1, wishes=(2,), excluded=(4,))]
    hosts = {1: 1, 2: 1, 3: 1, 4: 1}
    labels = LABELS | {50: "n° 5 — Éa (CCAS)", 60: "n° 6 — Fa"}
    names = {1: "CCAS", 2: "CHL", 3: "DAC", 4: "UDAF"}

    def refused(*pairs: tuple[int, int], capacities: dict[int, int] = hosts) -> list[str]:
        return pair_errors(list(pairs), kept, capacities, labels, names)

    assert refused((10, 30), (20, 40)) == []
    assert refused((10, 50)) == [
        "binôme « n° 1 — Ana (CCAS) » et « n° 5 — Éa (CCAS) » : ils viennent de la même structure"
    ]
    assert refused((10, 20), (20, 30)) == [
        "une personne ne peut être que dans un binôme : n° 2 — Bo (CHL)"
    ]
    assert refused((10, 60)) == [
        "binôme « n° 1 — Ana (CCAS) » et « n° 6 — Fa » : les deux doivent être retenus"
    ]
    assert refused((10, 30), capacities={1: 1, 2: 1}) == [
        "binôme « n° 1 — Ana (CCAS) » et « n° 3 — Cé (DAC) » : DAC n'accueille pas dans cette "
        "session"
    ]
    assert refused((50, 40)) == [
        "binôme « n° 5 — Éa (CCAS) » et « n° 4 — Dé » : UDAF a refusé d'accueillir "
        "« n° 5 — Éa (CCAS) »"
    ]
    # 20 and 30 both go to the CCAS (the homes of 10 and 50), which has one place
    assert refused((10, 20), (30, 50)) == [
        "trop de binômes vers CCAS : 2 personnes pour 1 place(s)"
    ]


def test_days_outside_1_to_5_or_outside_the_window_are_refused() -> None:
    window = {"window_start": date(2022, 9, 8), "window_end": date(2022, 11, 8)}
    assert check_days([date(2022, 10, 3), date(2022, 10, 4)], **window) == []
    six = [date(2022, 10, d) for d in (3, 4, 5, 6, 7, 10)]
    assert check_days(six, **window) == ["l'immersion dure de 1 à 5 jours (6 indiqués)"]
    assert check_days([], **window) == ["l'immersion dure de 1 à 5 jours (0 indiqués)"]
    outside = check_days([date(2022, 11, 9)], **window)
    assert outside == [
        "le 09/11/2022 est hors de la période d'immersion (du 08/09/2022 au 08/11/2022)"
    ]
    weekend = check_days([date(2022, 10, 8)], **window)  # a Saturday
    assert weekend == ["le 08/10/2022 n'est pas un jour ouvré"]
    holiday = check_days([date(2022, 11, 1)], **window)  # Toussaint
    assert holiday == ["le 01/11/2022 n'est pas un jour ouvré"]
    # the session may be stricter (Poitiers: 3 to 5 days), never looser than 1–5
    assert check_days([date(2022, 10, 3)], **window, min_days=3) == [
        "l'immersion dure de 3 à 5 jours (1 indiqués)"
    ]
    assert check_days(six, **window, max_days=9)[0].startswith("l'immersion dure de 1 à 5")
    assert parse_days("03/10/2022, 2022-10-04") == [date(2022, 10, 3), date(2022, 10, 4)]
    with pytest.raises(ValueError, match="n'est pas une date"):
        parse_days("lundi")


def test_reminder_two_business_days_before() -> None:
    assert reminder_day(date(2022, 10, 3)) == date(2022, 9, 29)  # Monday → Thursday


def test_withdrawal_before_the_cutoff_offers_the_place_to_the_next() -> None:
    now = datetime(2022, 9, 1, 9, tzinfo=UTC)
    cutoff = datetime(2022, 9, 20, tzinfo=UTC)
    offer = replacement(now=now, cutoff=cutoff, waitlist=[17, 18], offer_days=3)
    assert offer.application_id == 17
    assert offer.offer_deadline == now + timedelta(days=3)
    # the 17th declined (or stayed silent): the 18th is offered the place
    assert replacement(now=now, cutoff=cutoff, waitlist=[18]).application_id == 18
    late = replacement(now=cutoff - timedelta(days=1), cutoff=cutoff, waitlist=[18])
    assert late.offer_deadline == cutoff  # never past the cut-off
    empty = replacement(now=now, cutoff=cutoff, waitlist=[])
    assert empty.application_id is None and "épuisée" in empty.reason


def test_withdrawal_after_the_cutoff_leaves_the_place_empty() -> None:
    cutoff = datetime(2022, 9, 20, tzinfo=UTC)
    after = replacement(now=cutoff + timedelta(hours=1), cutoff=cutoff, waitlist=[17])
    assert after.application_id is None and after.offer_deadline is None
    assert after.reason.startswith("date limite des remplacements passée")


def test_report_figures() -> None:
    apps = [
        ApplicationFacts("CHL", "completed", True, False),
        ApplicationFacts("CHL", "withdrawn", True, False, "A. B.", "arrêt maladie"),
        ApplicationFacts("CCAS", "completed", True, True, waitlisted_at_selection=True),
        ApplicationFacts("CCAS", "waitlisted", False, False, waitlisted_at_selection=True),
        ApplicationFacts("UDAF", "not_selected", False, False),
    ]
    places = [PlacementFacts("CCAS", True, 3), PlacementFacts("CHL", True, 5)]
    figures = report_figures(
        applications=apps,
        placements=[*places, PlacementFacts("UDAF", False, 2)],
        preparation_present=3,
        restitution_present=2,
        participant_ratings=[4, 5],
        host_ratings=[3],
        pairs=[PairFacts("Ana", "CHL", "Bo", "CCAS")],
    )
    assert [p.label for p in figures.pairs] == ["Ana (CHL) et Bo (CCAS)"]
    # kept at the selection, not counting the one promoted; the waiting list as it closed
    assert (figures.applications, figures.kept, figures.waitlisted) == (5, 2, 2)
    assert figures.not_selected == 1 and figures.promoted == 1
    assert figures.withdrawals == [("A. B.", "arrêt maladie")]
    assert (figures.immersions_done, figures.days_total) == (2, 8)
    assert figures.participant_rating == 4.5 and figures.host_rating == 3.0
    chl = next(s for s in figures.structures if s.structure == "CHL")
    assert (chl.applications, chl.kept, chl.hosted, chl.days_hosted) == (2, 2, 1, 5)
