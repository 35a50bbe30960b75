"""Every status of the domain, with the transitions it allows.

A transition table maps each status to the statuses it may move to;
`models.core.status.change_status` is the only way to move; it refuses anything not in the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar


class CaseType(StrEnum):
    SESSION = "session"
    SAISINE = "saisine"
    MEETING = "meeting"
    INSTALLATION = "installation"
    CLSM = "clsm"  # the CLSM's own chain: its directory (structures, contacts, conventions...)


class Role(StrEnum):
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"
    ADMIN = "admin"


class ActorKind(StrEnum):
    USER = "user"
    CONTACT = "contact"
    SYSTEM = "system"


class Channel(StrEnum):
    LINK = "link"
    PREFECT_UI = "prefect-ui"
    SERVICE = "service"
    API = "api"
    CLI = "cli"
    SYSTEM = "system"


Transitions = Mapping["Status", frozenset["Status"]]


class Status(StrEnum):
    """A status of a process's entity; its process's `states` module gives its table."""

    _transitions: ClassVar[Transitions]

    @classmethod
    def transitions(cls) -> Transitions:
        table: Transitions | None = vars(cls).get("_transitions")
        if table is None:
            raise NotImplementedError(f"{cls.__name__} has no transition table")
        return table


def set_transitions(tables: Mapping[type[Status], Transitions]) -> None:
    """Give each status class its transition table (once, where the statuses are defined)."""
    for status, table in tables.items():
        status._transitions = MappingProxyType(dict(table))


def allowed(from_: Status, to: Status) -> bool:
    return type(to) is type(from_) and to in type(from_).transitions()[from_]
