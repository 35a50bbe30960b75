"""Pure rules of an immersion session: selection, placements, days, withdrawals, figures.

Plain functions over plain data (no database, no Prefect): the flow and the service feed
them what they read, and tests call them directly. Every decision carries the rule that
made it and a French reason, recorded in the audit trail and shown to the coordinator.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from models.core.calendar import add_business_days, is_business_day

ABSOLUTE_MIN_DAYS = 1
ABSOLUTE_MAX_DAYS = 5


# -- selection --------------------------------------------------------------------------
class Outcome(StrEnum):
    SELECTED = "selected"
    WAITLISTED = "waitlisted"
    NOT_SELECTED = "not_selected"


class Rule(StrEnum):
    CAPACITY = "capacité"
    BALANCE = "équilibre entre structures"
    STRUCTURE_MAX = "maximum par structure"
    ORDER = "ordre d'arrivée"
    COORDINATOR = "choix de la coordination"


@dataclass(frozen=True)
class Candidate:
    application_id: int
    number: int  # order of application (1 = first received)
    home_id: int


@dataclass(frozen=True)
class SelectionDecision:
    application_id: int
    number: int
    outcome: Outcome
    rule: Rule
    reason: str
    waitlist_rank: int | None = None


def propose_selection(
    candidates: Sequence[Candidate], *, capacity: int, max_per_structure: int | None = None
) -> list[SelectionDecision]:
    """Keep up to `capacity`, balancing structures, then by order of application.

    Each structure's candidates are ranked by order of application; places are given
    round by round (the first of every structure, then the second...), ties inside a round
    broken by order of application. Beyond the per-structure maximum a candidate is not
    kept; the others beyond capacity form the waiting list, in the same order.
    """
    if capacity < 0:
        raise ValueError("capacity must be positive")
    by_home: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in sorted(candidates, key=lambda c: c.number):
        by_home[candidate.home_id].append(candidate)
    ranked: list[tuple[int, Candidate]] = []
    over_max: list[tuple[int, Candidate]] = []
    for group in by_home.values():
        for round_, candidate in enumerate(group, start=1):
            if max_per_structure is not None and round_ > max_per_structure:
                over_max.append((round_, candidate))
            else:
                ranked.append((round_, candidate))
    ranked.sort(key=lambda rc: (rc[0], rc[1].number))
    homes_in_competition = len(by_home)
    decisions: list[SelectionDecision] = []
    for position, (round_, candidate) in enumerate(ranked):
        if position < capacity:
            rule = Rule.BALANCE if round_ > 1 or homes_in_competition > 1 else Rule.ORDER
            decisions.append(
                SelectionDecision(
                    candidate.application_id,
                    candidate.number,
                    Outcome.SELECTED,
                    rule,
                    f"retenu ({_nth(round_)} candidature de sa structure, "
                    f"candidature n°{candidate.number})",
                )
            )
        else:
            rank = position - capacity + 1
            decisions.append(
                SelectionDecision(
                    candidate.application_id,
                    candidate.number,
                    Outcome.WAITLISTED,
                    Rule.CAPACITY,
                    f"liste d'attente (rang {rank}) : les {capacity} places sont attribuées",
                    waitlist_rank=rank,
                )
            )
    for _round, candidate in sorted(over_max, key=lambda rc: rc[1].number):
        decisions.append(
            SelectionDecision(
                candidate.application_id,
                candidate.number,
                Outcome.NOT_SELECTED,
                Rule.STRUCTURE_MAX,
                f"non retenu : maximum par structure atteint ({max_per_structure})",
            )
        )
    return sorted(decisions, key=lambda d: d.number)


def _nth(n: int) -> str:
    return "1re" if n == 1 else f"{n}e"


def parse_numbers(text: str) -> list[int]:
    """Application numbers typed by the coordinator: "1, 2 3;4" → [1, 2, 3, 4]."""
    cleaned = text.replace(";", " ").replace(",", " ").split()
    numbers: list[int] = []
    for token in cleaned:
        value = token.removeprefix("n°").removeprefix("#")
        if not value.isdigit():
            raise ValueError(f"« {token} » n'est pas un numéro de candidature")
        if int(value) not in numbers:
            numbers.append(int(value))
    return numbers


def apply_coordinator_choice(
    proposal: Sequence[SelectionDecision],
    *,
    kept: Sequence[int],
    waitlist: Sequence[int],
    capacity: int,
) -> list[SelectionDecision]:
    """The coordinator's edit of the proposal (by application numbers) as decisions.

    Numbers that the proposal decided the same way keep their rule and reason; changed ones
    carry the rule "choix de la coordination". Everyone else is not kept.
    """
    known = {d.number: d for d in proposal}
    unknown = [n for n in [*kept, *waitlist] if n not in known]
    if unknown:
        raise ValueError(f"numéros de candidature inconnus : {', '.join(map(str, unknown))}")
    both = sorted(set(kept) & set(waitlist))
    if both:
        raise ValueError(
            "une candidature ne peut pas être à la fois retenue et en liste d'attente : "
            + ", ".join(f"n° {n}" for n in both)
        )
    if len(kept) > capacity:
        over = len(kept) - capacity
        raise ValueError(
            f"{len(kept)} candidatures retenues pour {capacity} places : retirez-en {over} "
            "(ou placez-les en liste d'attente)"
        )
    result: list[SelectionDecision] = []
    for number, before in sorted(known.items()):
        if number in kept:
            outcome, rank = Outcome.SELECTED, None
        elif number in waitlist:
            outcome, rank = Outcome.WAITLISTED, list(waitlist).index(number) + 1
        else:
            outcome, rank = Outcome.NOT_SELECTED, None
        if outcome is before.outcome and rank == before.waitlist_rank:
            result.append(before)
            continue
        reason = {
            Outcome.SELECTED: "retenu par la coordination",
            Outcome.WAITLISTED: f"liste d'attente (rang {rank}), choix de la coordination",
            Outcome.NOT_SELECTED: "non retenu par la coordination",
        }[outcome]
        result.append(
            SelectionDecision(
                before.application_id, number, outcome, Rule.COORDINATOR, reason, rank
            )
        )
    return result


# -- placements -------------------------------------------------------------------------
@dataclass(frozen=True)
class Participant:
    application_id: int
    number: int
    home_id: int
    wishes: tuple[int, ...]  # host organisation ids, best first
    excluded: tuple[int, ...] = ()  # hosts that declined this participant


@dataclass(frozen=True)
class Assignment:
    application_id: int
    host_id: int | None
    wish_rank: int | None  # 1 = first wish; None: not one of the wishes
    reason: str
    pair_with: int | None = None  # application id of the other half of a binôme


Pair = tuple[int, int]
"""A binôme: the application ids of two participants hosted by each other's structure."""


def _open_wishes(p: Participant) -> list[int]:
    return [w for w in p.wishes if w != p.home_id and w not in p.excluded]


def propose_pairs(participants: Sequence[Participant], capacities: dict[int, int]) -> list[Pair]:
    """The binômes the rules infer: two participants whose structures exchange (each wishes
    the other's structure), best combined wish ranks first, within hosts' capacity."""
    free = dict(capacities)
    ordered = sorted(participants, key=lambda p: p.number)
    scored: list[tuple[int, int, int, Participant, Participant]] = []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if a.home_id == b.home_id:
                continue
            wa, wb = _open_wishes(a), _open_wishes(b)
            if b.home_id in wa and a.home_id in wb:
                score = wa.index(b.home_id) + wb.index(a.home_id)
                scored.append((score, a.number, b.number, a, b))
    taken: set[int] = set()
    pairs: list[Pair] = []
    for _score, _na, _nb, a, b in sorted(scored, key=lambda t: t[:3]):
        if a.application_id in taken or b.application_id in taken:
            continue
        if free.get(b.home_id, 0) < 1 or free.get(a.home_id, 0) < 1:
            continue
        free[b.home_id] -= 1
        free[a.home_id] -= 1
        taken |= {a.application_id, b.application_id}
        pairs.append((a.application_id, b.application_id))
    return pairs


def pair_errors(
    pairs: Sequence[Pair],
    participants: Sequence[Participant],
    capacities: dict[int, int],
    labels: dict[int, str],
    structures: dict[int, str],
) -> list[str]:
    """Why binômes declared by the coordinator are refused (French), or [] when they are fine.

    Each half goes to the other's home structure: both must be kept, from two structures
    that both host in this session (`capacities`, by structure), each in one binôme only,
    and no structure may receive more binômes than its places. `labels` names applications,
    `structures` the structures."""
    by_id = {p.application_id: p for p in participants}
    errors: list[str] = []
    seen: set[int] = set()
    arriving: Counter[int] = Counter()

    def name(structure_id: int) -> str:
        return structures.get(structure_id, f"la structure n°{structure_id}")

    for first, second in pairs:
        names = f"binôme « {labels.get(first, first)} » et « {labels.get(second, second)} »"
        a, b = by_id.get(first), by_id.get(second)
        if first == second:
            errors.append(f"{names} : choisissez deux personnes différentes")
            continue
        if a is None or b is None:
            errors.append(f"{names} : les deux doivent être retenus")
            continue
        twice = [labels.get(i, str(i)) for i in (first, second) if i in seen]
        seen |= {first, second}
        if twice:
            errors.append("une personne ne peut être que dans un binôme : " + " ; ".join(twice))
            continue
        if a.home_id == b.home_id:
            errors.append(f"{names} : ils viennent de la même structure")
            continue
        for guest, host in ((a, b), (b, a)):
            if host.home_id not in capacities:
                errors.append(f"{names} : {name(host.home_id)} n'accueille pas dans cette session")
            elif host.home_id in guest.excluded:
                errors.append(
                    f"{names} : {name(host.home_id)} a refusé d'accueillir "
                    f"« {labels.get(guest.application_id)} »"
                )
            else:
                arriving[host.home_id] += 1
    for host_id, count in sorted(arriving.items()):
        if count > capacities.get(host_id, 0):
            errors.append(
                f"trop de binômes vers {name(host_id)} : {count} personnes pour "
                f"{capacities.get(host_id, 0)} place(s)"
            )
    return errors


def assign_placements(
    participants: Sequence[Participant],
    capacities: dict[int, int],
    pairs: Sequence[Pair] | None = None,
) -> list[Assignment]:
    """Give each participant a host: never their own structure nor one that declined
    them, within hosts' capacity.

    First the binômes: each half goes to the other's home structure. They are the pairs
    declared by the coordinator (`pairs`, which override the inference), or, when none were
    declared, those the rules infer (`propose_pairs`). Then, by order of application, each
    remaining participant gets their best wish with a free place; if none is free, the host
    with the most free places (never their own).
    """
    free = dict(capacities)
    ordered = sorted(participants, key=lambda p: p.number)
    by_id = {p.application_id: p for p in ordered}
    done: dict[int, Assignment] = {}
    declared = pairs is not None
    for first, second in propose_pairs(ordered, capacities) if pairs is None else pairs:
        a, b = by_id.get(first), by_id.get(second)
        if a is None or b is None or first in done or second in done or first == second:
            continue  # one of them left, or is placed already
        if a.home_id == b.home_id or b.home_id in a.excluded or a.home_id in b.excluded:
            continue
        if free.get(b.home_id, 0) < 1 or free.get(a.home_id, 0) < 1:
            continue
        free[b.home_id] -= 1
        free[a.home_id] -= 1
        for guest, other in ((a, b), (b, a)):
            wishes = _open_wishes(guest)
            rank = wishes.index(other.home_id) + 1 if other.home_id in wishes else None
            reason = "binôme déclaré par la coordination" if declared else "binôme"
            done[guest.application_id] = Assignment(
                guest.application_id,
                other.home_id,
                rank,
                f"{reason} (vœu n°{rank})" if rank else reason,
                other.application_id,
            )
    for p in ordered:
        if p.application_id in done:
            continue
        for rank, host in enumerate(_open_wishes(p), start=1):
            if free.get(host, 0) > 0:
                free[host] -= 1
                done[p.application_id] = Assignment(p.application_id, host, rank, f"vœu n°{rank}")
                break
        else:
            others = [
                h for h, n in free.items() if n > 0 and h != p.home_id and h not in p.excluded
            ]
            if others:
                host = max(others, key=lambda h: (free[h], -h))
                free[host] -= 1
                done[p.application_id] = Assignment(
                    p.application_id,
                    host,
                    None,
                    "aucun vœu disponible : structure ayant le plus de places libres",
                )
            else:
                done[p.application_id] = Assignment(
                    p.application_id, None, None, "aucune structure d'accueil disponible"
                )
    return [done[p.application_id] for p in ordered]


# -- immersion days ---------------------------------------------------------------------
def check_days(
    days: Sequence[date],
    *,
    window_start: date,
    window_end: date,
    min_days: int = ABSOLUTE_MIN_DAYS,
    max_days: int = ABSOLUTE_MAX_DAYS,
) -> list[str]:
    """Why these immersion days are refused (French), or [] when they are fine."""
    errors: list[str] = []
    low = max(min_days, ABSOLUTE_MIN_DAYS)
    high = min(max_days, ABSOLUTE_MAX_DAYS)
    distinct = sorted(set(days))
    if len(distinct) != len(days):
        errors.append("un même jour est indiqué deux fois")
    if not low <= len(distinct) <= high:
        errors.append(f"l'immersion dure de {low} à {high} jours ({len(distinct)} indiqués)")
    for day in distinct:
        if not window_start <= day <= window_end:
            errors.append(
                f"le {day:%d/%m/%Y} est hors de la période d'immersion "
                f"(du {window_start:%d/%m/%Y} au {window_end:%d/%m/%Y})"
            )
        elif not is_business_day(day):
            errors.append(f"le {day:%d/%m/%Y} n'est pas un jour ouvré")
    return errors


def parse_days(text: str) -> list[date]:
    """Days typed as "03/10/2022, 04/10/2022" or ISO "2022-10-03"."""
    days: list[date] = []
    for token in text.replace(";", ",").replace(" ", ",").split(","):
        token = token.strip()
        if not token:
            continue
        try:
            if "/" in token:
                d, m, y = token.split("/")
                days.append(date(int(y), int(m), int(d)))
            else:
                days.append(date.fromisoformat(token))
        except ValueError:
            raise ValueError(f"« {token} » n'est pas une date (jj/mm/aaaa)") from None
    return days


def reminder_day(first_day: date, business_days_before: int = 2) -> date:
    """The day reminders go out before an immersion (two business days by default)."""
    return add_business_days(first_day, -business_days_before)


# -- withdrawals ------------------------------------------------------------------------
@dataclass(frozen=True)
class Replacement:
    application_id: int | None
    offer_deadline: datetime | None
    reason: str


def replacement(
    *,
    now: datetime,
    cutoff: datetime,
    waitlist: Sequence[int],
    offer_days: int = 3,
) -> Replacement:
    """Who is offered a freed place: the first of the waiting list, before the cut-off only.

    `waitlist` holds the application ids still waiting, in rank order (those who declined
    or let an offer expire are no longer in it). The offer runs `offer_days` days but never
    past the cut-off.
    """
    if now >= cutoff:
        return Replacement(
            None, None, f"date limite des remplacements passée ({cutoff:%d/%m/%Y}) : place vide"
        )
    if not waitlist:
        return Replacement(None, None, "liste d'attente épuisée : place vide")
    deadline = min(now + timedelta(days=offer_days), cutoff)
    return Replacement(
        waitlist[0],
        deadline,
        f"place proposée au premier de la liste d'attente jusqu'au {deadline:%d/%m/%Y %H:%M}",
    )


# -- report figures ---------------------------------------------------------------------
@dataclass(frozen=True)
class StructureFigures:
    structure: str
    applications: int = 0
    kept: int = 0
    hosted: int = 0
    days_hosted: int = 0


@dataclass(frozen=True)
class ReportFigures:
    applications: int
    kept: int  # kept at the selection (not counting those promoted later)
    waitlisted: int  # on the waiting list when the call closed (at the selection)
    not_selected: int
    withdrawals: list[tuple[str, str]]  # (participant, reason)
    promoted: int
    immersions_done: int
    days_total: int
    structures: list[StructureFigures]
    preparation_present: int
    restitution_present: int
    participant_rating: float | None
    host_rating: float | None
    participant_evaluations: int
    host_evaluations: int
    comments: list[str] = field(default_factory=list)
    pairs: list[PairFacts] = field(default_factory=list)


@dataclass(frozen=True)
class PairFacts:
    """A binôme of the report: two participants, each hosted by the other's structure."""

    first: str
    first_home: str
    second: str
    second_home: str

    @property
    def label(self) -> str:
        return f"{self.first} ({self.first_home}) et {self.second} ({self.second_home})"


@dataclass(frozen=True)
class ApplicationFacts:
    home: str
    status: str  # ApplicationStatus value
    ever_selected: bool
    promoted: bool
    name: str = ""
    withdrawal_reason: str = ""
    waitlisted_at_selection: bool = False


@dataclass(frozen=True)
class PlacementFacts:
    host: str
    done: bool
    days: int


def report_figures(
    *,
    applications: Sequence[ApplicationFacts],
    placements: Sequence[PlacementFacts],
    preparation_present: int,
    restitution_present: int,
    participant_ratings: Sequence[int],
    host_ratings: Sequence[int],
    comments: Sequence[str] = (),
    pairs: Sequence[PairFacts] = (),
) -> ReportFigures:
    """Figures of the session report ("bilan") from plain facts."""
    status = Counter(a.status for a in applications)
    per_home_apps = Counter(a.home for a in applications)
    per_home_kept = Counter(a.home for a in applications if a.ever_selected)
    done = [p for p in placements if p.done]
    per_host = Counter(p.host for p in done)
    per_host_days: Counter[str] = Counter()
    for p in done:
        per_host_days[p.host] += p.days
    names = sorted(set(per_home_apps) | set(per_host))
    return ReportFigures(
        applications=len(applications),
        kept=sum(1 for a in applications if a.ever_selected and not a.promoted),
        waitlisted=sum(1 for a in applications if a.waitlisted_at_selection),
        not_selected=status["not_selected"],
        withdrawals=[
            (a.name, a.withdrawal_reason) for a in applications if a.status == "withdrawn"
        ],
        promoted=sum(1 for a in applications if a.promoted),
        immersions_done=len(done),
        days_total=sum(p.days for p in done),
        structures=[
            StructureFigures(
                name, per_home_apps[name], per_home_kept[name], per_host[name], per_host_days[name]
            )
            for name in names
        ],
        preparation_present=preparation_present,
        restitution_present=restitution_present,
        participant_rating=_mean(participant_ratings),
        host_rating=_mean(host_ratings),
        participant_evaluations=len(participant_ratings),
        host_evaluations=len(host_ratings),
        comments=list(comments),
        pairs=sorted(pairs, key=lambda p: (p.first_home, p.first)),
    )


def _mean(values: Sequence[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None
