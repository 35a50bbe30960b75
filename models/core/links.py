"""Step links: how partners answer without an account.

A link is bound to one contact, one case and one step (and optionally one entity of the
case, e.g. a placement). The token in the URL is derived from a random salt and the
installation's secret key; only its SHA-256 is stored, so the database alone does not
give the tokens away. GET never consumes a link; `consume` is an atomic UPDATE, so two
concurrent POSTs cannot both record an answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import Field, Session, SQLModel, col, select

from models.core import clock
from models.core.base import UTCDateTime
from models.core.enums import CaseType
from models.core.settings import get_settings


class LinkState(StrEnum):
    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"


class StepLink(SQLModel, table=True):
    __tablename__ = "step_link"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    salt: str = Field(max_length=64)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    case_type: str = Field(max_length=20)
    case_id: int = Field(index=True)
    step: str = Field(max_length=60)
    subject_id: int | None = None
    multi_use: bool = False
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LinkAlreadyUsed(Exception):
    """Another request consumed the link first."""


def _token_from_salt(salt: str) -> str:
    key = get_settings().secret_key.encode()
    mac = hmac.new(key, f"step-link:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(
    *,
    session: Session,
    contact_id: int,
    case_type: CaseType,
    case_id: int,
    step: str,
    subject_id: int | None = None,
    multi_use: bool = False,
    valid_for: timedelta | None = None,
) -> StepLink:
    """Create a link in the caller's transaction; `link_url` gives its address."""
    salt = secrets.token_urlsafe(32)
    moment = clock.now(session)
    link = StepLink(
        token_hash=token_hash(_token_from_salt(salt)),
        salt=salt,
        contact_id=contact_id,
        case_type=case_type.value,
        case_id=case_id,
        step=step,
        subject_id=subject_id,
        multi_use=multi_use,
        created_at=moment,
        expires_at=moment + (valid_for or timedelta(days=get_settings().link_validity_days)),
    )
    session.add(link)
    session.flush()
    return link


def link_token(link: StepLink) -> str:
    return _token_from_salt(link.salt)


def link_url(link: StepLink) -> str:
    """Absolute address of the link (service base URL)."""
    return f"{get_settings().base_url}/r/{link_token(link)}"


def find_link(session: Session, token: str) -> StepLink | None:
    """The link whose token this is, or None (compared in constant time)."""
    if not token or len(token) > 100:
        return None
    digest = token_hash(token)
    link = session.exec(select(StepLink).where(StepLink.token_hash == digest)).first()
    if link is None or not hmac.compare_digest(link.token_hash, digest):
        return None
    return link


def link_state(session: Session, link: StepLink) -> LinkState:
    if link.used_at is not None and not link.multi_use:
        return LinkState.USED
    if clock.now(session) >= link.expires_at:
        return LinkState.EXPIRED
    return LinkState.VALID


def consume(*, session: Session, link: StepLink) -> None:
    """Mark a single-use link used, atomically; raises LinkAlreadyUsed if it was."""
    if link.multi_use:
        return
    moment = clock.now(session)
    result = session.execute(
        update(StepLink)
        .where(col(StepLink.id) == link.id, col(StepLink.used_at).is_(None))
        .values(used_at=moment)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise LinkAlreadyUsed()
    link.used_at = moment


def links_for(
    session: Session, case_type: CaseType, case_id: int, step: str | None = None
) -> list[StepLink]:
    query = select(StepLink).where(
        StepLink.case_type == case_type.value, StepLink.case_id == case_id
    )
    if step is not None:
        query = query.where(StepLink.step == step)
    return list(session.exec(query.order_by(col(StepLink.id))))
