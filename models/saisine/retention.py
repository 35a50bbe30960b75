"""Retention: the personal data of saisines closed long ago is erased, audited, leaving the
audit chain verifiable."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from models.core import clock
from models.core.audit import Actor, redact_case
from models.saisine.common import consultations, touch
from models.saisine.tables import SAISINE, FollowUp, Saisine


def purge_closed_saisines(*, session: Session, older_than_years: int) -> list[str]:
    """Erase the personal data of saisines closed more than N years ago; audited.

    The description fields are nulled and the payloads of the case's audit events erased
    (digests kept), so the chain still verifies. Returns the references purged.
    """
    moment = clock.now(session)
    limit = moment - timedelta(days=365 * older_than_years)
    purged: list[str] = []
    for saisine in session.exec(
        select(Saisine).where(
            col(Saisine.closed_at).is_not(None),
            col(Saisine.closed_at) <= limit,
            col(Saisine.purged_at).is_(None),
        )
    ):
        assert saisine.id is not None
        saisine.initials = saisine.age_range = saisine.commune = saisine.difficulty = None
        saisine.consent_note = None
        saisine.purged_at = moment
        for consultation in consultations(session, saisine):
            consultation.proposal = None
            session.add(consultation)
        for follow_up in session.exec(select(FollowUp).where(FollowUp.saisine_id == saisine.id)):
            follow_up.comment = ""
            session.add(follow_up)
        touch(session, saisine)
        redact_case(
            session=session,
            case_type=SAISINE,
            case_id=saisine.id,
            actor=Actor.system(),
            reason=f"fin de la durée de conservation ({older_than_years} ans)",
        )
        purged.append(saisine.reference)
    return purged
