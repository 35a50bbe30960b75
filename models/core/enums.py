"""Every status of the domain, with the transitions it allows.

A transition table maps each status to the statuses it may move to;
`models.core.status.change_status` is the only way to move; it refuses anything not in the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


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
    """A status of a process's entity; its process's `states` module gives its transitions."""

    @classmethod
    def transitions(cls) -> Transitions:
        raise NotImplementedError


def allowed(from_: Status, to: Status) -> bool:
    return type(to) is type(from_) and to in type(from_).transitions()[from_]
