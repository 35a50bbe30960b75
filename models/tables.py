"""Imports every table so that SQLModel.metadata is complete (migrations, tests).

Importing the domain modules also registers their link steps and case kinds.
"""

from sqlmodel import SQLModel

from models import (
    audit,
    clock,
    immersion,
    links,
    outbox,
    people,
    reminders,
    saisine,
    saisine_steps,
    waits,
)
from models.core import directory

metadata = SQLModel.metadata

__all__ = [
    "audit",
    "clock",
    "directory",
    "immersion",
    "links",
    "metadata",
    "outbox",
    "people",
    "reminders",
    "saisine",
    "saisine_steps",
    "waits",
]
