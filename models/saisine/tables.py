"""The saisine's tables: the saisine, its level 1 (consultations, orientation, follow-up)
and its level 2 (cell meetings with their members and items, the decision and its actions).

The pseudonymised description lives on `Saisine` only, shown on link pages, erased at the
end of retention; mails never carry it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.core.base import UTCDateTime
from models.core.enums import CaseType
from models.saisine.rules import ORIENTATION_LABELS, OrientationKind
from models.saisine.states import ActionStatus, ConsultationStatus, MeetingStatus, SaisineStatus

SAISINE = CaseType.SAISINE
MEETING = CaseType.MEETING

_version = Column("version", Integer, nullable=False, default=1)


class Saisine(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("clsm_id", "reference", name="uq_saisine_reference"),)
    __mapper_args__ = {"version_id_col": _version}  # optimistic locking

    id: int | None = Field(default=None, primary_key=True)
    clsm_id: int = Field(foreign_key="clsm.id", index=True)
    reference: str = Field(max_length=20)
    received_at: datetime = Field(sa_type=UTCDateTime)
    channel: str = Field(max_length=30)
    referrer_organisation_id: int = Field(foreign_key="organisation.id")
    referrer_contact_id: int = Field(foreign_key="contact.id")
    # pseudonymised description: shown on pages only, erased at the end of retention
    initials: str | None = Field(default=None, max_length=10)
    age_range: str | None = Field(default=None, max_length=30)
    commune: str | None = Field(default=None, max_length=100)
    difficulty: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    consent_given: bool = False
    consent_note: str | None = Field(default=None, max_length=500)
    urgent: bool = False
    status: SaisineStatus = Field(default=SaisineStatus.RECEIVED, index=True)
    round: int = 1  # level 1 round (a failed orientation reopens level 1)
    form_seq: int = 0  # coordinator forms answered (each form gets a fresh wait key)
    version: int = Field(default=1, sa_column=_version)
    flow_run_id: str | None = Field(default=None, max_length=36, unique=True)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    close_reason: str = Field(default="", max_length=500)
    purged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def entity_name(self) -> str:
        return "saisine"

    @property
    def label(self) -> str:
        return f"Saisine {self.reference}"

    def audit_case(self) -> tuple[CaseType, int]:
        assert self.id is not None
        return SAISINE, self.id


class Consultation(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("saisine_id", "round", "organisation_id", name="uq_consultation"),
    )

    id: int | None = Field(default=None, primary_key=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)
    round: int = 1
    organisation_id: int = Field(foreign_key="organisation.id")
    contact_id: int = Field(foreign_key="contact.id")
    asked_at: datetime = Field(sa_type=UTCDateTime)
    remind_at: datetime = Field(sa_type=UTCDateTime)
    deadline: datetime = Field(sa_type=UTCDateTime)
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    knows_situation: bool | None = None
    proposal: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: ConsultationStatus = ConsultationStatus.ASKED

    @property
    def entity_name(self) -> str:
        return "consultation"

    def audit_case(self) -> tuple[CaseType, int]:
        return SAISINE, self.saisine_id


class Orientation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)
    round: int = 1
    kind: OrientationKind
    who_acts: str = Field(default="", max_length=300)
    detail: str = Field(default="", max_length=1000)
    decided_at: datetime = Field(sa_type=UTCDateTime)
    follow_up_on: date | None = None

    @property
    def text(self) -> str:
        """The line of the yearly report, e.g. "Orientation vers le DAC-PTA (CHL)"."""
        if self.detail:
            return self.detail
        base = ORIENTATION_LABELS[self.kind]
        return f"{base} ({self.who_acts})" if self.who_acts else base


class FollowUp(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("saisine_id", "round", name="uq_follow_up_round"),)

    id: int | None = Field(default=None, primary_key=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)
    round: int = 1
    due_on: date
    asked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    worked: bool | None = None
    next_step: str = Field(default="", max_length=20)  # "", "level1", "level2"
    comment: str = Field(default="", max_length=1000)


class CellMeeting(SQLModel, table=True):
    __tablename__ = "cell_meeting"

    id: int | None = Field(default=None, primary_key=True)
    clsm_id: int = Field(foreign_key="clsm.id", index=True)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    host_organisation_id: int = Field(foreign_key="organisation.id")
    status: MeetingStatus = MeetingStatus.PLANNED
    sequence: int = 0  # iCalendar SEQUENCE: raised on every change sent to the members
    cancel_reason: str = Field(default="", max_length=500)

    @property
    def entity_name(self) -> str:
        return "réunion de cellule"

    @property
    def uid(self) -> str:
        return f"cellule-{self.id}@clsm"

    def audit_case(self) -> tuple[CaseType, int]:
        assert self.id is not None
        return MEETING, self.id


class MeetingItem(SQLModel, table=True):
    """A saisine examined at a meeting (several saisines per meeting)."""

    __tablename__ = "meeting_item"
    __table_args__ = (UniqueConstraint("meeting_id", "saisine_id", name="uq_meeting_item"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="cell_meeting.id", index=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)


class MeetingMember(SQLModel, table=True):
    __tablename__ = "meeting_member"
    __table_args__ = (UniqueConstraint("meeting_id", "organisation_id", name="uq_meeting_member"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="cell_meeting.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id")
    contact_id: int = Field(foreign_key="contact.id")
    invited: bool = False  # False: permanent member
    invited_for_saisine_id: int | None = Field(default=None, foreign_key="saisine.id")
    attending: bool | None = None
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Decision(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True, unique=True)
    meeting_id: int = Field(foreign_key="cell_meeting.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    decided_at: datetime = Field(sa_type=UTCDateTime)


class DecisionAction(SQLModel, table=True):
    __tablename__ = "decision_action"

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(foreign_key="decision.id", index=True)
    saisine_id: int = Field(foreign_key="saisine.id", index=True)
    text: str = Field(max_length=500)
    owner_contact_id: int = Field(foreign_key="contact.id")
    due_on: date
    status: ActionStatus = ActionStatus.OPEN
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closing_note: str = Field(default="", max_length=1000)
    closed_by_link_id: int | None = Field(default=None, foreign_key="step_link.id")

    @property
    def entity_name(self) -> str:
        return "action"

    def audit_case(self) -> tuple[CaseType, int]:
        return SAISINE, self.saisine_id
