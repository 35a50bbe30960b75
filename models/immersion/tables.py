"""The tables of an immersion session: the session, its invited structures, applications,
placements, agreements, attendance, observation grids, evaluations and frozen report.

One session is one case (case_type SESSION, case_id = session id).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.core.base import UTCDateTime
from models.core.enums import CaseType
from models.immersion.states import (
    AgreementStatus,
    ApplicationStatus,
    PlacementStatus,
    SessionStatus,
)

CASE = CaseType.SESSION


class ImmersionSessionBase(SQLModel):
    title: str = Field(max_length=200)
    capacity: int = 16
    max_per_structure: int | None = None
    call_opens_on: date
    call_closes_at: datetime = Field(sa_type=UTCDateTime)
    preparation_at: datetime = Field(sa_type=UTCDateTime)
    preparation_end: datetime = Field(sa_type=UTCDateTime)
    preparation_place: str = Field(default="", max_length=300)
    facilitator_name: str = Field(default="", max_length=200)
    facilitator_email: str = Field(default="", max_length=254)
    window_start: date
    window_end: date
    min_days: int = 1
    max_days: int = 5
    restitution_at: datetime = Field(sa_type=UTCDateTime)
    restitution_end: datetime = Field(sa_type=UTCDateTime)
    restitution_place: str = Field(default="", max_length=300)
    withdrawal_cutoff: datetime = Field(sa_type=UTCDateTime)
    offer_days: int = 3


class ImmersionSession(ImmersionSessionBase, table=True):
    __tablename__ = "immersion_session"

    id: int | None = Field(default=None, primary_key=True)
    clsm_id: int = Field(foreign_key="clsm.id", index=True)
    status: SessionStatus = SessionStatus.DRAFT
    version: int = 1
    flow_run_id: str | None = Field(default=None, max_length=36, unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    places: int = 0  # places given at selection (the kept ones)
    empty_places: int = 0  # freed places nobody took (after the cut-off, list exhausted)
    preparation_sequence: int = 0
    restitution_sequence: int = 0
    cancel_reason: str = Field(default="", max_length=500)
    # the coordinator's review of the placements (host requests wait for it)
    placements_reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    entity_name: ClassVar[str] = "session"

    def audit_case(self) -> tuple[CaseType, int]:
        assert self.id is not None
        return CASE, self.id

    @property
    def reference(self) -> str:
        return f"Session « {self.title} »"


class ImmersionSessionCreate(ImmersionSessionBase):
    clsm_slug: str
    structures: list[str] = []
    host_capacity: int = 2
    insist: bool = False  # keep the meetings on a weekend or a public holiday


class InvitedStructure(SQLModel, table=True):
    __tablename__ = "immersion_invited"
    __table_args__ = (UniqueConstraint("session_id", "organisation_id", name="uq_invited"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id")
    host_capacity: int = 2
    declared_capacity: int | None = None


class Application(SQLModel, table=True):
    __tablename__ = "immersion_application"
    __table_args__ = (UniqueConstraint("session_id", "number", name="uq_application_number"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    number: int
    contact_id: int = Field(foreign_key="contact.id")
    organisation_id: int = Field(foreign_key="organisation.id")
    function: str = Field(default="", max_length=200)
    manager_contact_id: int = Field(foreign_key="contact.id")
    motivation: str = Field(default="", max_length=4000)
    wishes: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    availability: str = Field(default="", max_length=1000)
    status: ApplicationStatus = ApplicationStatus.SUBMITTED
    decision_rule: str = Field(default="", max_length=80)
    decision_reason: str = Field(default="", max_length=300)
    waitlist_rank: int | None = None
    ever_selected: bool = False
    promoted: bool = False
    offer_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawal_reason: str = Field(default="", max_length=300)
    pair_application_id: int | None = None  # the binôme declared by the coordinator
    submitted_at: datetime = Field(sa_type=UTCDateTime)
    # the contacts this application created (not those it found): what a purge may erase
    created_contacts: list[int] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    # flagged as abusive by a coordinator (who, when, why), then possibly purged
    flagged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    flagged_by: str = Field(default="", max_length=200)
    flag_reason: str = Field(default="", max_length=300)
    purged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    entity_name: ClassVar[str] = "candidature"

    def audit_case(self) -> tuple[CaseType, int]:
        return CASE, self.session_id


class RefusedApplications(SQLModel, table=True):
    """Applications refused by the call link's limits (429), counted per link, hashed client
    address and hour: what was typed is never kept, only that it came and was refused."""

    __tablename__ = "immersion_refused_applications"
    __table_args__ = (
        UniqueConstraint("link_id", "client_hash", "hour", name="uq_refused_applications"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    link_id: int = Field(foreign_key="step_link.id")
    client_hash: str = Field(max_length=16)
    hour: datetime = Field(sa_type=UTCDateTime)
    count: int = 0
    last_at: datetime = Field(sa_type=UTCDateTime)


class Placement(SQLModel, table=True):
    __tablename__ = "immersion_placement"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    application_id: int = Field(foreign_key="immersion_application.id", index=True)
    host_organisation_id: int = Field(foreign_key="organisation.id")
    host_contact_id: int = Field(foreign_key="contact.id")
    tutor_contact_id: int | None = Field(default=None, foreign_key="contact.id")
    wish_rank: int | None = None
    reason: str = Field(default="", max_length=200)
    pair_application_id: int | None = None
    days: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    may_observe: str = Field(default="", max_length=2000)
    may_not_observe: str = Field(default="", max_length=2000)
    status: PlacementStatus = PlacementStatus.PROPOSED
    calendar_sequence: int = 0

    entity_name: ClassVar[str] = "stage"

    def audit_case(self) -> tuple[CaseType, int]:
        return CASE, self.session_id

    @property
    def day_list(self) -> list[date]:
        return [date.fromisoformat(d) for d in self.days]


class Agreement(SQLModel, table=True):
    __tablename__ = "immersion_agreement"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    placement_id: int = Field(foreign_key="immersion_placement.id", unique=True)
    status: AgreementStatus = AgreementStatus.PENDING
    participant_signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    manager_signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    tutor_signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)

    entity_name: ClassVar[str] = "convention"

    def audit_case(self) -> tuple[CaseType, int]:
        return CASE, self.session_id


class Attendance(SQLModel, table=True):
    __tablename__ = "immersion_attendance"
    __table_args__ = (
        UniqueConstraint("session_id", "meeting", "application_id", name="uq_attendance"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    meeting: str = Field(max_length=20)  # "preparation" | "restitution"
    application_id: int = Field(foreign_key="immersion_application.id")
    present: bool


class ObservationGrid(SQLModel, table=True):
    __tablename__ = "immersion_observation_grid"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    placement_id: int = Field(foreign_key="immersion_placement.id", unique=True)
    missions: str = Field(default="", max_length=4000)
    practices: str = Field(default="", max_length=4000)
    limits: str = Field(default="", max_length=4000)
    submitted_at: datetime = Field(sa_type=UTCDateTime)


class Evaluation(SQLModel, table=True):
    __tablename__ = "immersion_evaluation"
    __table_args__ = (UniqueConstraint("placement_id", "author", name="uq_evaluation"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", index=True)
    placement_id: int = Field(foreign_key="immersion_placement.id")
    author: str = Field(max_length=20)  # "participant" | "host"
    rating: int
    useful: str = Field(default="", max_length=4000)
    improve: str = Field(default="", max_length=4000)
    submitted_at: datetime = Field(sa_type=UTCDateTime)


class SessionReport(SQLModel, table=True):
    __tablename__ = "immersion_report"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="immersion_session.id", unique=True)
    figures: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)


ACTIVE_PLACEMENT = (PlacementStatus.PROPOSED, PlacementStatus.CONFIRMED, PlacementStatus.SIGNED)
