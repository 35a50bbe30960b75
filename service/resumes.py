"""Retrying the pending resumes of one case (a coordinator's action, audited)."""

from __future__ import annotations

from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session, col, select

from models.core.audit import Actor, record_event
from models.core.kinds import CaseSummary
from models.core.runs import deliver_resumes
from models.core.waits import Wait, WaitStatus


async def retry_resumes(session: Session, case: CaseSummary, actor: Actor) -> dict[str, int]:
    """Deliver the case's pending resumes now; the request is recorded in its history."""

    def mark() -> list[int]:
        ids = [
            wait_id
            for wait_id in session.exec(
                select(Wait.id).where(
                    Wait.case_type == case.case_type.value,
                    Wait.case_id == case.case_id,
                    Wait.status == WaitStatus.OPEN,
                    col(Wait.resume_pending).is_(True),
                )
            )
            if wait_id is not None
        ]
        record_event(
            session=session,
            case_type=case.case_type,
            case_id=case.case_id,
            action="case.resume-requested",
            actor=actor,
            payload={"waits": len(ids)},
        )
        session.commit()
        return ids

    ids = await run_in_threadpool(mark)
    return await deliver_resumes(ids) if ids else {}
