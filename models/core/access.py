"""Service sessions and failure counts, kept in the app database.

Both live in the database rather than in a process's memory, so that every service process
shares them: a session ended by logout (or a password change) ends everywhere, and a limit
on wrong passwords holds whichever process answers.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Field, Session, SQLModel, col, select

from models.core.base import UTCDateTime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ServiceSession(SQLModel, table=True):
    """A logged-in browser: the cookie holds a random token, the database its hash."""

    __tablename__ = "service_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    csrf: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FailureHit(SQLModel, table=True):
    """One failure (wrong password, unknown link, refused application) in a bucket."""

    __tablename__ = "failure_hit"

    id: int | None = Field(default=None, primary_key=True)
    bucket: str = Field(max_length=200, index=True)
    at: float  # seconds since the epoch


def open_session(*, session: Session, user_id: int, lifetime: timedelta) -> tuple[str, str]:
    """A new session of the user: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    moment = datetime.now(UTC)
    session.add(
        ServiceSession(
            token_hash=_digest(token),
            user_id=user_id,
            csrf=csrf,
            created_at=moment,
            expires_at=moment + lifetime,
        )
    )
    return token, csrf


def find_session(session: Session, token: str) -> ServiceSession | None:
    """The live session of a cookie token (not revoked, not expired), or None."""
    found = session.exec(
        select(ServiceSession).where(ServiceSession.token_hash == _digest(token))
    ).first()
    if found is None or found.revoked_at is not None or found.expires_at <= datetime.now(UTC):
        return None
    return found


def revoke_session(*, session: Session, token: str) -> None:
    found = find_session(session, token)
    if found is not None:
        found.revoked_at = datetime.now(UTC)
        session.add(found)


def revoke_user_sessions(*, session: Session, user_id: int) -> int:
    """End every session of a user (password changed, account disabled)."""
    live = session.exec(
        select(ServiceSession).where(
            ServiceSession.user_id == user_id, col(ServiceSession.revoked_at).is_(None)
        )
    ).all()
    for row in live:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
    return len(live)


def failures_since(session: Session, bucket: str, window: float) -> tuple[int, float]:
    """(failures in the window, time of the oldest of them)."""
    count, oldest = session.execute(
        select(func.count(), func.min(FailureHit.at)).where(
            FailureHit.bucket == bucket, FailureHit.at > time.time() - window
        )
    ).one()
    return int(count), float(oldest or 0.0)


def record_failure(*, session: Session, bucket: str, window: float) -> None:
    """Count one failure; the bucket's failures older than the window are dropped."""
    moment = time.time()
    session.execute(
        delete(FailureHit).where(
            col(FailureHit.bucket) == bucket, col(FailureHit.at) <= moment - window
        )
    )
    session.add(FailureHit(bucket=bucket, at=moment))


def clear_failures(*, session: Session, prefix: str) -> None:
    session.execute(delete(FailureHit).where(col(FailureHit.bucket).startswith(prefix)))
