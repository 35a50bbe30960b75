"""The coordinator's mail before a convention ends (queued by `tick`)."""

from __future__ import annotations

from datetime import datetime, time
from typing import ClassVar
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from models.core import clock
from models.core.directory.convention import (
    expiring_conventions,
)
from models.core.directory.fields import (
    EXPIRY_MAIL_DAYS,
)
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.mails import MailContext
from models.core.outbox import OutboxMessage, Recipient, enqueue
from models.core.people import Clsm


class ConventionExpiringMail(MailContext):
    """To the coordinator: a convention ends soon (the structure then leaves the partners)."""

    template: ClassVar[str] = "convention_expiring"
    structure: str
    ends_on: datetime  # noon of the last day, in the CLSM's time zone
    directory_path: str

    @classmethod
    def example(cls) -> ConventionExpiringMail:
        return cls(
            structure="CCAS de Bressuire",
            ends_on=datetime.fromisoformat("2027-01-15T12:00:00+01:00"),
            directory_path="/directory/bocage-bressuirais/conventions",
        )


DIRECTORY_MAILS: tuple[type[MailContext], ...] = (ConventionExpiringMail,)


def queue_convention_reminders(session: Session) -> int:
    """Queue, for each CLSM's coordinator, one mail per convention ending within
    `EXPIRY_MAIL_DAYS` days (once per convention and end date); how many were new."""
    today = clock.now(session).date()
    queued = 0
    for owner in session.exec(select(Clsm).where(Clsm.coordinator_email != "")):
        assert owner.id is not None
        scope = CaseScope(CaseType.CLSM, owner.id, owner.id, f"Annuaire du {owner.name}")
        for convention, structure in expiring_conventions(
            session, owner.id, today, within_days=EXPIRY_MAIL_DAYS
        ):
            key = f"convention-{convention.id}-fin-{convention.ends_on.isoformat()}"
            known = session.exec(
                select(OutboxMessage.id).where(
                    OutboxMessage.case_type == CaseType.CLSM.value,
                    OutboxMessage.case_id == owner.id,
                    OutboxMessage.dedup_key == key,
                )
            ).first()
            if known is not None:
                continue
            enqueue(
                session=session,
                scope=scope,
                to=Recipient(email=owner.coordinator_email, name=owner.coordinator_name),
                template="convention_expiring",
                context=ConventionExpiringMail(
                    structure=structure.name,
                    ends_on=datetime.combine(
                        convention.ends_on, time(12), ZoneInfo(owner.time_zone)
                    ),
                    directory_path=f"/directory/{owner.slug}/conventions",
                ).as_context(),
                dedup_key=key,
            )
            queued += 1
    return queued
