"""The e-mail outbox: messages written in the same transaction as the change that causes them.

A rolled-back change leaves no row, so nothing is sent. Each row has a stable Message-ID
derived from its id, so a resend after a crash carries the same Message-ID. Rows are
idempotent per (case, dedup_key): a replayed step enqueues nothing new.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, select

from models.core import clock
from models.core.base import UTCDateTime
from models.core.kinds import CaseScope
from models.core.people import Clsm


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class CalendarMethod(StrEnum):
    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


@dataclass(frozen=True)
class CalendarPart:
    """What the iCalendar part of a mail says (rendered by notifications.ics)."""

    uid: str
    sequence: int
    method: CalendarMethod
    summary: str
    start: str  # ISO 8601, aware
    end: str
    location: str = ""
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["method"] = self.method.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalendarPart:
        return cls(**{**data, "method": CalendarMethod(data["method"])})


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("case_type", "case_id", "dedup_key", name="uq_outbox_dedup"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_type: str = Field(max_length=20, index=True)
    case_id: int = Field(index=True)
    dedup_key: str = Field(max_length=200)
    template: str = Field(max_length=80)
    recipient_email: str = Field(max_length=254)
    recipient_name: str = Field(default="", max_length=200)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    clsm_id: int | None = Field(default=None, foreign_key="clsm.id", index=True)
    case_label: str = Field(default="", max_length=200)
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    calendar: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime, index=True)
    last_error: str = Field(default="", max_length=1000)
    message_id: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""
    contact_id: int | None = None


def message_id_for(outbox_id: int, dedup_key: str, domain: str = "clsm.localhost") -> str:
    """Stable Message-ID of an outbox row: the same on every attempt."""
    tag = hashlib.sha256(f"{outbox_id}:{dedup_key}".encode()).hexdigest()[:16]
    return f"<outbox-{outbox_id}-{tag}@{domain}>"


ATTACHMENTS = "_attachments"
"""The context key of a mail's attached files (kept with the row, so a retry sends the same)."""


@dataclass(frozen=True)
class Attachment:
    """A file joined to a mail (a signed agreement's PDF)."""

    filename: str
    content_type: str
    data: bytes

    def as_dict(self) -> dict[str, str]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "data": base64.b64encode(self.data).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Attachment:
        return cls(data["filename"], data["content_type"], base64.b64decode(data["data"]))


def attachments_of(message: OutboxMessage) -> list[Attachment]:
    return [Attachment.from_dict(a) for a in message.context.get(ATTACHMENTS, [])]


def enqueue(
    *,
    session: Session,
    scope: CaseScope,
    to: Recipient,
    template: str,
    context: dict[str, Any],
    dedup_key: str,
    calendar: CalendarPart | None = None,
    attachments: Sequence[Attachment] = (),
) -> OutboxMessage:
    """Queue one mail in the caller's transaction; the same dedup_key queues nothing new.

    `context` holds only what the template needs (ids and short labels, never a saisine's
    description); links are carried as `link_id`s and turned into URLs when rendering.
    """
    existing = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.case_type == scope.case_type.value,
            OutboxMessage.case_id == scope.case_id,
            OutboxMessage.dedup_key == dedup_key,
        )
    ).first()
    if existing is not None:
        return existing
    moment = clock.now(session)
    message = OutboxMessage(
        case_type=scope.case_type.value,
        case_id=scope.case_id,
        clsm_id=scope.clsm_id,
        case_label=scope.label,
        dedup_key=dedup_key,
        template=template,
        recipient_email=to.email,
        recipient_name=to.name,
        contact_id=to.contact_id,
        context={**context, ATTACHMENTS: [a.as_dict() for a in attachments]}
        if attachments
        else context,
        calendar=calendar.as_dict() if calendar else None,
        next_attempt_at=moment,
        created_at=moment,
    )
    session.add(message)
    session.flush()
    assert message.id is not None
    message.message_id = message_id_for(message.id, dedup_key)
    return message


def resolve_clsm(*, session: Session, clsm_id: int | None) -> Clsm | None:
    """The CLSM a mail speaks for, stored on its row when it was queued."""
    return session.get(Clsm, clsm_id) if clsm_id is not None else None
