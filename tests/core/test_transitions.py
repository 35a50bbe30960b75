"""Every status moves only along its transition table, and each move is audited."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pytest
from sqlmodel import Session

from models.catalogue import STATUSES
from models.core.audit import Actor, case_events
from models.core.enums import CaseType, Status, allowed
from models.core.errors import IllegalTransition
from models.core.status import change_status


@dataclass
class Thing:
    """Minimal stateful entity, as the domain tables implement it."""

    status: StrEnum
    id: int | None = 1
    entity_name: str = "objet"

    def audit_case(self) -> tuple[CaseType, int]:
        return CaseType.SESSION, 99


PAIRS = [
    (enum_type, from_, to)
    for enum_type in STATUSES
    for from_ in enum_type.transitions()
    for to in enum_type
]


def test_every_status_has_a_row_in_its_table() -> None:
    assert len(STATUSES) == 8
    for enum_type in STATUSES:
        assert set(enum_type.transitions()) == set(enum_type), enum_type.__name__


@pytest.mark.parametrize(
    ("enum_type", "from_", "to"),
    PAIRS,
    ids=[f"{e.__name__}:{f.value}->{t.value}" for e, f, t in PAIRS],
)
def test_transition(session: Session, enum_type: type[Status], from_: Status, to: Status) -> None:
    thing = Thing(status=from_)
    before = len(case_events(session, "session", 99))
    if to in enum_type.transitions()[from_]:
        change_status(session=session, entity=thing, to=to, actor=Actor.system())
        assert thing.status is to
        events = case_events(session, "session", 99)
        assert len(events) == before + 1
        assert events[-1].payload == {
            "entity": "objet",
            "id": 1,
            "from": from_.value,
            "to": to.value,
        }
    else:
        with pytest.raises(IllegalTransition):
            change_status(session=session, entity=thing, to=to, actor=Actor.system())
        assert thing.status is from_
        assert len(case_events(session, "session", 99)) == before


def test_a_status_of_another_kind_is_refused() -> None:
    from models.immersion.states import SessionStatus
    from models.saisine.states import SaisineStatus

    assert not allowed(SessionStatus.DRAFT, SaisineStatus.LEVEL1)
