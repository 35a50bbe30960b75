"""Imports every table so that SQLModel.metadata is complete (migrations, tests)."""

from sqlmodel import SQLModel

from models import audit, clock, immersion, links, outbox, people, reminders, waits

metadata = SQLModel.metadata

__all__ = [
    "audit",
    "clock",
    "immersion",
    "links",
    "metadata",
    "outbox",
    "people",
    "reminders",
    "waits",
]
