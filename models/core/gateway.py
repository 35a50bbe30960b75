"""Who acted on a flow run through the service's gateway to Prefect.

The gateway writes one row per write (resume, cancel, launch) before forwarding it; the flow
then names that person in the audit event of the decision. A resume that did not pass the
gateway (only the installation's own processes hold Prefect's secret) is the system's.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, Session, SQLModel, col, select

from models.core import clock
from models.core.audit import Actor, record_event
from models.core.base import UTCDateTime
from models.core.enums import CaseType, Channel, Role
from models.core.people import User
from models.core.waits import Wait

ROLE_LABELS = {Role.COORDINATOR: "coordination", Role.ADMIN: "administration"}


class GatewayKind(StrEnum):
    RESUME = "resume"
    CANCEL = "cancel"
    LAUNCH = "launch"


class GatewayAction(SQLModel, table=True):
    __tablename__ = "gateway_action"

    id: int | None = Field(default=None, primary_key=True)
    flow_run_id: str = Field(default="", index=True, max_length=36)
    pause_key: str = Field(default="", max_length=200)
    kind: str = Field(max_length=20)
    user_id: int = Field(foreign_key="app_user.id")
    actor_label: str = Field(max_length=250)
    at: datetime = Field(sa_type=UTCDateTime)


def person_label(user: User) -> str:
    """« Inès Moreau (coordination) »: the name and the capacity in which they acted."""
    return f"{user.name} ({ROLE_LABELS.get(user.role, user.role.value)})"


def record_gateway_action(
    *,
    session: Session,
    user: User,
    kind: GatewayKind,
    flow_run_id: str = "",
    pause_key: str = "",
) -> GatewayAction:
    assert user.id is not None
    action = GatewayAction(
        flow_run_id=flow_run_id,
        pause_key=pause_key,
        kind=kind.value,
        user_id=user.id,
        actor_label=person_label(user),
        at=clock.now(session),
    )
    session.add(action)
    if kind is GatewayKind.CANCEL:
        case = case_of_run(session, flow_run_id)
        if case is not None:
            record_event(
                session=session,
                case_type=case[0],
                case_id=case[1],
                action="run.cancel-requested",
                actor=_actor(action),
                payload={"flow_run_id": flow_run_id},
            )
    session.flush()
    return action


def _actor(action: GatewayAction) -> Actor:
    return Actor.user(action.user_id, action.actor_label, Channel.PREFECT_UI)


def _latest(session: Session, kind: GatewayKind, flow_run_id: str, pause_key: str = "") -> Actor:
    query = select(GatewayAction).where(
        GatewayAction.flow_run_id == flow_run_id, GatewayAction.kind == kind.value
    )
    if pause_key:
        query = query.where(GatewayAction.pause_key == pause_key)
    found = session.exec(query.order_by(col(GatewayAction.id).desc())).first()
    return _actor(found) if found is not None else Actor.system(flow_run_id)


def answer_actor(session: Session, flow_run_id: str, pause_key: str) -> Actor:
    """Who answered the wait `pause_key` of a run: the person, or the system."""
    return _latest(session, GatewayKind.RESUME, flow_run_id, pause_key)


def launch_actor(session: Session, flow_run_id: str) -> Actor:
    """Who launched a run from the Prefect UI: the person, or the system."""
    return _latest(session, GatewayKind.LAUNCH, flow_run_id)


def case_of_run(session: Session, flow_run_id: str) -> tuple[CaseType, int] | None:
    wait = session.exec(select(Wait).where(Wait.flow_run_id == flow_run_id)).first()
    return (CaseType(wait.case_type), wait.case_id) if wait is not None else None
