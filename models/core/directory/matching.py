"""Which structure a typed name designates (folded names, aliases, near names)."""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from models.core.errors import DomainError
from models.core.people import Organisation

# -- name matching -------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―'’‘`´.,_/]+")
NEAR_RATIO = 0.8


def fold(name: str) -> str:
    """A structure name as compared: no case, accents, spaces, hyphens nor apostrophes."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub("", plain.casefold())


@dataclass
class StructureMatch:
    """What a typed name designates: one structure, or none with the near ones to propose."""

    typed: str
    found: Organisation | None = None
    by_alias: bool = False
    near: list[Organisation] = field(default_factory=list)


def _names(org: Organisation) -> list[str]:
    return [org.name, *(org.aliases or [])] + ([org.short_name] if org.short_name else [])


def match_structure(
    *, session: Session, clsm_id: int, name: str, include_inactive: bool = False
) -> StructureMatch:
    """The CLSM's structure a person means by `name` (case, accents, spaces, hyphens,
    apostrophes, aliases and short names folded); if none, the near ones (difflib), so that
    a caller proposes them rather than silently creating a duplicate."""
    query = select(Organisation).where(Organisation.clsm_id == clsm_id)
    if not include_inactive:
        query = query.where(col(Organisation.active).is_(True))
    return match_among(list(session.exec(query.order_by(col(Organisation.name)))), name)


def match_among(structures: list[Organisation], name: str) -> StructureMatch:
    key = fold(name)
    result = StructureMatch(typed=name)
    if not key:
        return result
    for org in structures:
        if fold(org.name) == key:
            result.found = org
            return result
    for org in structures:
        if any(fold(alias) == key for alias in _names(org)[1:]):
            result.found, result.by_alias = org, True
            return result
    scored = []
    for org in structures:
        best = max(difflib.SequenceMatcher(None, key, fold(n)).ratio() for n in _names(org))
        if best >= NEAR_RATIO:
            scored.append((best, org.name, org))
    result.near = [org for _score, _name, org in sorted(scored, key=lambda s: (-s[0], s[1]))]
    return result


class NearDuplicate(DomainError):
    """A new structure's name is close to an existing one: confirm it is another one."""

    def __init__(self, name: str, near: list[Organisation]) -> None:
        names = ", ".join(f"« {o.name} »" for o in near)
        super().__init__(
            f"« {name} » ressemble à {names}. S'il s'agit de la même structure, modifiez-la "
            "(ou ajoutez ce nom en alias) ; sinon, confirmez la création."
        )
        self.near = near
