"""Answering a step by link: resolve the link, validate, record in one transaction, renew."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, select

from models.catalogue import STEP_KINDS, case_summary
from models.core import clock
from models.core.audit import Actor, record_event
from models.core.db import session_scope
from models.core.enums import CaseType
from models.core.errors import DomainError
from models.core.kinds import StepKind, StepPage
from models.core.links import (
    LinkAlreadyUsed,
    LinkState,
    StepLink,
    consume,
    find_link,
    issue_link,
    link_state,
)
from models.core.mails import LinkRenewedMail
from models.core.outbox import OutboxMessage
from models.core.people import Clsm, Contact
from models.core.scope import mail
from models.core.waits import wake_case
from models.immersion.abuse import record_refused
from service.forms import FormField, form_fields, parse_form


class LinkUnusable(Exception):
    """Unknown, used or expired link; `state` says which (None: unknown)."""

    def __init__(self, state: LinkState | None, link_id: int | None = None) -> None:
        super().__init__(state.value if state else "unknown")
        self.state = state
        self.link_id = link_id


def _usable(session: Session, token: str) -> tuple[StepLink, StepKind]:
    link = find_link(session, token)
    if link is None:
        raise LinkUnusable(None)
    kind = STEP_KINDS.get(link.step)
    if kind is None:
        raise LinkUnusable(None, link.id)
    state = link_state(session, link)
    if state is not LinkState.VALID:
        raise LinkUnusable(state, link.id)
    return link, kind


AFTER_SENDING = (
    "Après l'envoi, votre réponse est enregistrée et transmise à la coordination du CLSM ; "
    "la suite vous parviendra par courriel."
)


@dataclass(frozen=True)
class Coordination:
    """Whom a partner may write to about a case (the coordinator of its CLSM)."""

    name: str
    email: str


def coordination_of(session: Session, case_type: str, case_id: int) -> Coordination | None:
    summary = case_summary(session, CaseType(case_type), case_id)
    clsm = session.get(Clsm, summary.clsm_id) if summary is not None else None
    if clsm is None or not clsm.coordinator_email:
        return None
    return Coordination(name=clsm.coordinator_name or clsm.name, email=clsm.coordinator_email)


@dataclass
class StepView:
    """Everything the page of a step shows."""

    page: StepPage
    fields: list[FormField]
    submit_label: str
    expires_at: Any
    errors: dict[str, str] = field(default_factory=dict)
    multi_use: bool = False
    after_sending: str = AFTER_SENDING
    coordination: Coordination | None = None
    refused: bool = False  # the domain refused the answer (not a typing error)


def _view(
    session: Session,
    link: StepLink,
    kind: StepKind,
    fields: list[FormField],
    errors: dict[str, str] | None = None,
    *,
    refused: bool = False,
) -> StepView:
    return StepView(
        page=kind.page(session, link),
        fields=fields,
        submit_label=kind.submit_label,
        expires_at=link.expires_at,
        errors=errors or {},
        multi_use=link.multi_use,
        after_sending=kind.after_sending or AFTER_SENDING,
        coordination=coordination_of(session, link.case_type, link.case_id),
        refused=refused,
    )


def view_step(session: Session, token: str) -> StepView:
    """The page of a valid link. It consumes nothing (a mail scanner may open it); as it
    shows the case to the link's holder, the read is recorded (`case.read`, committed)."""
    link, kind = _usable(session, token)
    form = kind.form_for(session, link)
    view = _view(session, link, kind, form_fields(form, kind.initial(session, link)))
    contact = session.get(Contact, link.contact_id)
    assert contact is not None and contact.id is not None
    record_event(
        session=session,
        case_type=CaseType(link.case_type),
        case_id=link.case_id,
        action="case.read",
        actor=Actor.contact(contact.id, contact.name),
        payload={"step": link.step, "link_id": link.id},
    )
    session.commit()
    return view


@dataclass
class Submission:
    """Outcome of a POST: a confirmation, or the page again with the errors."""

    confirmation: str = ""
    wait_id: int | None = None
    view: StepView | None = None
    case_label: str = ""
    coordination: Coordination | None = None


def is_open_call(token: str) -> bool:
    """Whether a token names a call for applications (anyone may answer it)."""
    with session_scope() as session:
        link = find_link(session, token)
        kind = STEP_KINDS.get(link.step) if link is not None else None
        return kind is not None and kind.open_call


def note_refused_application(token: str, address: str) -> None:
    """An application refused by the call link's limits is counted for the coordinator:
    the link, the hour and a keyed hash of the address, never what was typed."""
    with session_scope() as session:
        link = find_link(session, token)
        if link is not None:
            record_refused(session=session, link=link, address=address)


def submit_step(token: str, data: dict[str, list[str]]) -> Submission:
    """Validate; then in ONE transaction consume the link, record, request the resume.

    A refusal, by the form or by a rule of the domain, records nothing and leaves the
    link usable: the page comes back with what was typed and the reason.
    """
    with session_scope() as session:
        link, kind = _usable(session, token)
        form = kind.form_for(session, link)
        answer, typed, errors = parse_form(form, data)
        if answer is None:
            return Submission(
                view=_view(session, link, kind, form_fields(form, typed, errors, raw=True), errors)
            )
        page = kind.page(session, link)
        coordination = coordination_of(session, link.case_type, link.case_id)
        try:
            consume(session=session, link=link)
            contact = session.get(Contact, link.contact_id)
            assert contact is not None and contact.id is not None
            actor = Actor.contact(contact.id, contact.name)
            confirmation = kind.record(session, link, answer, actor)
            wait_id = _request_resume(session, link, kind)
        except LinkAlreadyUsed:
            raise LinkUnusable(LinkState.USED, link.id) from None
        except DomainError as refusal:
            session.rollback()  # nothing was written before: the link stays usable
            errors = _refusal_errors(form, refusal)
            return Submission(
                view=_view(
                    session,
                    link,
                    kind,
                    form_fields(form, typed, errors, raw=True),
                    errors,
                    refused=True,
                )
            )
        return Submission(
            confirmation=confirmation,
            wait_id=wait_id,
            case_label=page.case_label,
            coordination=coordination,
        )


def _refusal_errors(form: type[BaseModel], refusal: DomainError) -> dict[str, str]:
    """The domain's French reason beside its field (or above the form)."""
    reason = refusal.message[:1].upper() + refusal.message[1:]
    if not reason.endswith((".", "!", "?")):
        reason += "."
    where = refusal.field if refusal.field in form.model_fields else "__root__"
    return {where: reason}


def _request_resume(session: Session, link: StepLink, kind: StepKind) -> int | None:
    step = kind.wait_step(session, link)
    if not step:
        return None
    woken = wake_case(
        session=session, case_type=CaseType(link.case_type), case_id=link.case_id, steps=[step]
    )
    return woken[0] if woken else None


def renew_link(token: str) -> bool:
    """Mail a fresh link to the contact on file; False if the token is unknown.

    At most one renewal per old link and hour: asking again sends nothing new.
    """
    with session_scope() as session:
        old = find_link(session, token)
        if old is None or old.step not in STEP_KINDS:
            return False
        contact = session.get(Contact, old.contact_id)
        assert contact is not None and contact.id is not None
        case_type = CaseType(old.case_type)
        hour = clock.now(session).strftime("%Y%m%d%H")
        dedup_key = f"link-renewed-{old.id}-{hour}"
        if _already_renewed(session, case_type, old.case_id, dedup_key):
            return True
        validity = max(old.expires_at - old.created_at, timedelta(days=1))
        fresh = issue_link(
            session=session,
            contact_id=contact.id,
            case_type=case_type,
            case_id=old.case_id,
            step=old.step,
            subject_id=old.subject_id,
            multi_use=old.multi_use,
            valid_for=validity,
        )
        page = STEP_KINDS[old.step].page(session, old)
        case = case_summary(session, case_type, old.case_id)
        assert case is not None
        assert fresh.id is not None
        mail(
            session=session,
            scope=case.scope,
            to=contact,
            message=LinkRenewedMail(step_title=page.title, link_id=fresh.id),
            dedup_key=dedup_key,
        )
        record_event(
            session=session,
            case_type=case_type,
            case_id=old.case_id,
            action="link.renewed",
            actor=Actor.contact(contact.id, contact.name),
            payload={"old_link_id": old.id, "link_id": fresh.id, "step": old.step},
        )
        return True


def _already_renewed(session: Session, case_type: CaseType, case_id: int, key: str) -> bool:
    return (
        session.exec(
            select(OutboxMessage.id).where(
                OutboxMessage.case_type == case_type.value,
                OutboxMessage.case_id == case_id,
                OutboxMessage.dedup_key == key,
            )
        ).first()
        is not None
    )
