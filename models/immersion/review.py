"""The coordinator's review of the placements, before any host request goes out.

Once the selection is recorded, the rules propose a host structure for every kept
participant (binômes declared at the selection hosted by each other's structure, then
wishes, within the free places). The coordinator sees this proposal in a Prefect UI form,
keeps or changes each host, and only the accepted answer creates the placements and mails
the host requests (`placements.create_placement`: mail, link, deadline as ever). Until then
`placements.ensure_placements` gives no host (`ImmersionSession.placements_reviewed_at`);
after it, later arrivals (a place taken from the waiting list, a host that declines) are
placed by the rules alone, without a new review.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor
from models.core.errors import DomainError
from models.immersion.common import event, invited, organisation
from models.immersion.placements import (
    awaiting_host,
    create_placement,
    free_places,
    participants_of,
    propose_placements,
)
from models.immersion.rules import Assignment, Participant
from models.immersion.selection import application_label
from models.immersion.states import SessionStatus
from models.immersion.tables import Application, ImmersionSession, Placement

NO_HOST = "Aucune pour l'instant (accueil à trouver par la coordination)"
"""The host a line may keep when no structure has a place for the participant."""

LATER = (
    "Les personnes retenues plus tard (liste d'attente après un désistement) et celles dont "
    "la structure d'accueil décline la demande recevront une structure d'accueil "
    "automatiquement (vœux, puis places libres), sans nouvelle vérification."
)


@dataclass(frozen=True)
class PlacementQuestion:
    """The proposed hosts the coordinator keeps or changes (Prefect UI form)."""

    description: str  # markdown
    initial: dict[str, object]
    table: list[dict[str, str | int]]
    participants: list[str]  # the participants' labels, offered in each line
    hosts: list[str]  # the invited structures with free places, and NO_HOST


# -- the rules (pure) ----------------------------------------------------------------------
def review_errors(
    lines: Sequence[tuple[str, str]],
    people: dict[str, Participant],
    hosts: dict[str, int],
    free: dict[int, int],
) -> list[str]:
    """Why the coordinator's placements are refused (French), or [] when they are fine.

    `lines`: (participant's label, host's label) as typed; `people`: the participants to
    place, by label; `hosts`: the structures invited to host, by label; `free`: their free
    places. Each participant on exactly one line; a host invited, not their own structure,
    not one that declined them, and within its free places; NO_HOST leaves them unplaced.
    """
    errors: list[str] = []
    names = {structure: label for label, structure in hosts.items()}
    seen: Counter[str] = Counter(who for who, _host in lines if who)
    if any(not who for who, _host in lines):
        errors.append("une ligne n'a pas de personne : choisissez-la ou supprimez la ligne")
    errors += [
        f"« {who} » n'est pas ou plus une personne à placer : supprimez sa ligne"
        for who in seen
        if who not in people
    ]
    errors += [f"« {who} » figure sur plusieurs lignes" for who, n in seen.items() if n > 1]
    missing = [who for who in people if who not in seen]
    if missing:
        errors.append("il manque une ligne pour " + " ; ".join(f"« {who} »" for who in missing))
    arriving: Counter[int] = Counter()
    for who, host in lines:
        person = people.get(who)
        if person is None or host == NO_HOST:
            continue
        if not host:
            errors.append(f"choisissez la structure d'accueil de « {who} »")
        elif host not in hosts:
            errors.append(f"« {host} » n'est pas une structure invitée à accueillir ({who})")
        elif hosts[host] == person.home_id:
            errors.append(f"« {who} » : sa propre structure ({host}) ne peut pas l'accueillir")
        elif hosts[host] in person.excluded:
            errors.append(f"{host} a décliné l'accueil de « {who} »")
        else:
            arriving[hosts[host]] += 1
    for structure, count in sorted(arriving.items()):
        if count > free.get(structure, 0):
            errors.append(
                f"trop de personnes pour {names[structure]} : {count} pour "
                f"{free.get(structure, 0)} place(s) libre(s)"
            )
    return errors


def _wish_rank(person: Participant, host: int) -> int | None:
    wishes = [w for w in person.wishes if w != person.home_id and w not in person.excluded]
    return wishes.index(host) + 1 if host in wishes else None


def reviewed_assignments(
    people: Sequence[Participant], chosen: dict[int, int | None], proposal: dict[int, Assignment]
) -> list[Assignment]:
    """The assignments of the hosts the coordinator chose (by application id): the
    proposal's where kept (a binôme only while both halves keep each other's structure),
    otherwise the coordinator's choice with its wish rank."""
    result: list[Assignment] = []
    for person in sorted(people, key=lambda p: p.number):
        host = chosen[person.application_id]
        proposed = proposal.get(person.application_id)
        other = proposed.pair_with if proposed else None
        kept = proposed is not None and proposed.host_id == host
        if host is None:
            why = "aucune structure choisie par la coordination"
            result.append(Assignment(person.application_id, None, None, why))
        elif proposed and kept and (other is None or chosen.get(other) == person.home_id):
            result.append(proposed)
        else:
            rank = _wish_rank(person, host)
            why = "binôme défait par la coordination" if kept else "choix de la coordination"
            wish = f"vœu n°{rank}" if rank else "hors vœux"
            result.append(Assignment(person.application_id, host, rank, f"{why} ({wish})"))
    return result


# -- the question and its answer ---------------------------------------------------------
def _host_labels(session: Session, row: ImmersionSession) -> dict[int, str]:
    """The invited structures by id, as the form names them (label, unique)."""
    assert row.id is not None
    labels: dict[int, str] = {}
    for structure in invited(session, row.id):
        label = organisation(session, structure.organisation_id).label
        if label in labels.values():
            label = f"{label} (n°{structure.organisation_id})"
        labels[structure.organisation_id] = label
    return labels


def _wishes(person: Participant, hosts: dict[int, str]) -> str:
    return ", ".join(hosts.get(w, f"n°{w}") for w in person.wishes) or "aucun"


def placement_question(session: Session, row: ImmersionSession) -> PlacementQuestion | None:
    """The proposed hosts of the participants awaiting one, or None if nobody does."""
    waiting = awaiting_host(session, row)
    if not waiting:
        return None
    hosts = _host_labels(session, row)
    free = free_places(session, row)
    labels = {a.id or 0: application_label(session, a) for a in waiting}
    people = {p.application_id: p for p in participants_of(session, row, waiting)}
    proposal = propose_placements(session, row, waiting)
    table: list[dict[str, str | int]] = [
        {
            "personne": labels[a.application_id],
            "vœux": _wishes(people[a.application_id], hosts),
            "accueil proposé": hosts[a.host_id] if a.host_id is not None else "aucun",
            "motif": a.reason,
        }
        for a in proposal
    ]
    lines = [
        "## Accueils proposés : vérifiez-les avant l'envoi des demandes aux structures d'accueil",
        "",
        f"{len(proposal)} personne(s) à placer. Proposition : binômes déclarés à la sélection "
        "(chacun accueilli par la structure de l'autre), puis vœux dans l'ordre, dans la limite "
        "des places libres. Validez tel quel, ou changez la structure d'accueil d'une ligne : "
        "les demandes d'accueil ne partent qu'à la validation. Changer l'accueil d'une personne "
        "en binôme défait le binôme.",
        "",
        "| personne | vœux | accueil proposé | motif |",
        "|---|---|---|---|",
        *(" | ".join(["", *(str(value) for value in r.values()), ""]).strip() for r in table),
        "",
        "Places libres : "
        + ", ".join(f"{label} {free.get(structure, 0)}" for structure, label in hosts.items()),
        "",
        LATER,
    ]
    return PlacementQuestion(
        description="\n".join(lines),
        initial={
            "placements": [
                {
                    "participant": labels[a.application_id],
                    "host": hosts[a.host_id] if a.host_id is not None else NO_HOST,
                }
                for a in proposal
            ]
        },
        table=table,
        participants=list(labels.values()),
        hosts=[label for structure, label in hosts.items() if free.get(structure, 0) > 0]
        + [NO_HOST],
    )


def review_placements(
    *,
    session: Session,
    row: ImmersionSession,
    lines: Sequence[tuple[str, str]],
    actor: Actor,
    comment: str = "",
    shown: Sequence[str] | None = None,
) -> list[Placement]:
    """Record the coordinator's hosts, (participant's label, host's label) per line, then
    mail the host requests; or refuse them (`DomainError`, in French: nothing is kept, and
    the flow's form is asked again with the reason).

    `shown`: the participants the form offered; one kept since (a place taken from the
    waiting list meanwhile) is not asked for, and is placed by the rules after the review.
    """
    if row.status is not SessionStatus.PLACEMENT or row.placements_reviewed_at is not None:
        return []  # woken by a cancellation, or reviewed already
    waiting = [
        a
        for a in awaiting_host(session, row)
        if shown is None or application_label(session, a) in shown
    ]
    by_label = {application_label(session, a): a for a in waiting}
    people = participants_of(session, row, waiting)
    by_id = {p.application_id: p for p in people}
    hosts = {label: structure for structure, label in _host_labels(session, row).items()}
    errors = review_errors(
        lines,
        {label: by_id[a.id or 0] for label, a in by_label.items()},
        hosts,
        free_places(session, row),
    )
    if errors:
        raise DomainError("accueils refusés : " + " ; ".join(errors))
    chosen = {
        by_label[who].id or 0: (None if host == NO_HOST else hosts[host]) for who, host in lines
    }
    proposal = {a.application_id: a for a in propose_placements(session, row, waiting)}
    assignments = reviewed_assignments(people, chosen, proposal)
    _undo_broken_pairs(session, waiting, assignments)
    row.placements_reviewed_at = clock.now(session)
    session.add(row)
    labels = {a.id: label for label, a in by_label.items()}
    event(
        session,
        row,
        "placements.reviewed",
        actor,
        {
            "placements": [f"{who} : {host}" for who, host in lines],
            "changed": [
                labels[a.application_id]
                for a in assignments
                if a.host_id != proposal[a.application_id].host_id
            ],
            "comment": comment,
        },
    )
    created: list[Placement] = []
    for assignment in assignments:
        placement = create_placement(session, row, assignment, actor)
        if placement is not None:
            created.append(placement)
    return created


def _undo_broken_pairs(
    session: Session, waiting: Sequence[Application], assignments: Sequence[Assignment]
) -> None:
    """A binôme declared at the selection whose hosts the coordinator changed is no more."""
    paired = {a.application_id for a in assignments if a.pair_with is not None}
    for application in waiting:
        if application.pair_application_id is not None and application.id not in paired:
            application.pair_application_id = None
            session.add(application)


def mark_reviewed(*, session: Session, row: ImmersionSession, actor: Actor) -> None:
    """Nobody to place at the review: later arrivals are placed by the rules alone."""
    row.placements_reviewed_at = clock.now(session)
    session.add(row)
    event(session, row, "placements.reviewed", actor, {"placements": [], "changed": []})
