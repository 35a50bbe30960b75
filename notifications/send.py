"""Delivery of the outbox with aiosmtplib: claim, render, send, mark.

1. Claim (one committed transaction): due PENDING rows, and SENDING rows whose claim lease
   ran out (a drainer died mid-way), become SENDING with attempts+1 and a lease of
   `smtp_claim_seconds` stored in next_attempt_at.
2. Render each claimed row (templates, links, calendar part) into a MIME message whose
   Message-ID is the row's stable message_id.
3. Send over at most `smtp_concurrency` connections, kept for the whole drain; the next
   chunk of rows is claimed and rendered meanwhile.
4. Mark each row as soon as the server answered (rows answered while a mark is being
   written go together in the next transaction): SENT + audit event "mail.sent"; a 4xx
   reply or a connection error puts it back to PENDING with exponential backoff; a 5xx
   reply (or too many attempts) makes it FAILED + audit event "mail.failed" + a mail to the
   CLSM's coordinator + a warning in the Prefect run's log.

See README.md, "E-mail delivery guarantees", for what a crash can and cannot cause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime, parseaddr
from typing import Any, TypeVar

import aiosmtplib
from sqlmodel import Session, col, select

from models.core import clock
from models.core.audit import Actor, record_event
from models.core.db import get_engine, session_scope
from models.core.enums import CaseType
from models.core.kinds import CaseScope
from models.core.mails import DeliveryFailedMail
from models.core.outbox import (
    OutboxMessage,
    OutboxStatus,
    Recipient,
    attachments_of,
    resolve_clsm,
)
from models.core.people import Clsm
from models.core.scope import mail
from models.core.settings import Settings, SmtpSecurity, get_settings
from notifications.mime import Invitation, Mailbox, ascii_address, encoded, message_bytes
from notifications.render import render_message

FAILURE_TEMPLATE = DeliveryFailedMail.template
MAX_BACKOFF = timedelta(hours=6)

_T = TypeVar("_T")


@dataclass
class DrainReport:
    """What one drain did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    recovered: int = 0  # stale SENDING claims taken over
    unreachable: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.sent + self.retried + self.failed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outgoing:
    outbox_id: int
    data: bytes  # the message as sent (notifications.mime)
    sender: str
    recipient: str
    subject: str


@dataclass(frozen=True)
class Failure:
    error: str
    permanent: bool
    connection: bool = False


def _backoff(attempts: int, settings: Settings) -> timedelta:
    seconds = settings.smtp_retry_base_seconds * 2 ** max(attempts - 1, 0)
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The Prefect run's logger inside a run, else a plain logger."""
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:
        return logging.getLogger("clsm.mail")


# --- claim -------------------------------------------------------------------------------


CaseKey = tuple[str, int]
"""(case_type, case_id): the rows of one case only."""


def _due(moment: datetime, case: CaseKey | None) -> list[Any]:
    """Conditions of a due row (of `case`, if given)."""
    conditions: list[Any] = [
        # a SENDING row is due when its claim lease has run out
        col(OutboxMessage.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
        col(OutboxMessage.next_attempt_at) <= moment,
    ]
    if case is not None:
        conditions += [OutboxMessage.case_type == case[0], OutboxMessage.case_id == case[1]]
    return conditions


def has_due(case: CaseKey | None = None) -> bool:
    """Whether the outbox holds a row to send now (one indexed query, no lock taken)."""
    with Session(get_engine()) as session:
        query = select(OutboxMessage.id).where(*_due(clock.now(session), case)).limit(1)
        return session.exec(query).first() is not None


def claim(limit: int, case: CaseKey | None = None) -> tuple[list[int], int]:
    """Claim due rows in one committed transaction; returns their ids and how many were stale."""
    settings = get_settings()
    with session_scope() as session:
        moment = clock.now(session)
        rows = session.exec(
            select(OutboxMessage)
            .where(*_due(moment, case))
            .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        stale = sum(1 for r in rows if r.status == OutboxStatus.SENDING)
        for row in rows:
            row.status = OutboxStatus.SENDING
            row.attempts += 1
            row.next_attempt_at = moment + timedelta(seconds=settings.smtp_claim_seconds)
            session.add(row)
        return [r.id for r in rows if r.id is not None], stale


# --- render ------------------------------------------------------------------------------


def build_message(
    *,
    session: Session,
    row: OutboxMessage,
    clsm: Clsm | None = None,
    moment: datetime | None = None,
) -> Outgoing:
    """The wire form of one row: text + HTML (+ text/calendar and .ics), stable Message-ID.

    `clsm` is the row's CLSM and `moment` the time of its Date header when the caller
    already has them (`resolve_clsm`, `clock.now`).
    """
    assert row.id is not None
    settings = get_settings()
    if clsm is None:
        clsm = resolve_clsm(session=session, clsm_id=row.clsm_id)
    rendered = render_message(session=session, message=row, clsm=clsm)
    sender_name, sender = parseaddr(settings.mail_from)
    if clsm and clsm.sender_email:  # the CLSM's own sending address, when it has one
        sender = clsm.sender_email
    headers = [
        ("Subject", encoded(rendered.subject)),
        ("From", Mailbox(sender, clsm.name if clsm else sender_name).header()),
        ("To", Mailbox(row.recipient_email, row.recipient_name).header()),
    ]
    reply_to = clsm.reply_to_email or clsm.coordinator_email if clsm else ""
    if clsm and reply_to and reply_to != row.recipient_email:
        name = "" if clsm.reply_to_email else clsm.coordinator_name
        headers.append(("Reply-To", Mailbox(reply_to, name).header()))
    headers += [
        ("Date", format_datetime(moment or clock.now(session))),
        ("Message-ID", row.message_id),
        ("Auto-Submitted", "auto-generated"),
    ]
    invitation = None
    if rendered.calendar_ics is not None and row.calendar is not None:
        invitation = Invitation(rendered.calendar_ics, str(row.calendar["method"]))
    data = message_bytes(
        headers=headers,
        text=rendered.text,
        html=rendered.html,
        invitation=invitation,
        files=[(a.content_type, a.filename, a.data) for a in attachments_of(row)],
    )
    recipient = ascii_address(row.recipient_email)
    return Outgoing(row.id, data, sender, recipient, rendered.subject)


def _rows(session: Session, ids: list[int] | tuple[int, ...]) -> dict[int | None, OutboxMessage]:
    """The outbox rows of `ids`, read in one query, by id."""
    query = select(OutboxMessage).where(col(OutboxMessage.id).in_(ids))
    return {row.id: row for row in session.exec(query)}


def render_claimed(ids: list[int]) -> tuple[list[Outgoing], list[tuple[int, str]]]:
    """Messages ready to send, and the rows that cannot be rendered (with the reason).

    The rows are read in one query, and each case's CLSM once (a fan-out is many mails
    of one case).
    """
    ready: list[Outgoing] = []
    broken: list[tuple[int, str]] = []
    with session_scope() as session:
        rows = _rows(session, ids)
        clsms: dict[int | None, Clsm | None] = {}
        moment = clock.now(session)
        for outbox_id in ids:
            row = rows[outbox_id]
            key = row.clsm_id
            try:
                if key not in clsms:
                    clsms[key] = resolve_clsm(session=session, clsm_id=key)
                ready.append(
                    build_message(session=session, row=row, clsm=clsms[key], moment=moment)
                )
            except Exception as error:  # a template or data error: no retry can fix it
                broken.append((outbox_id, f"rendu impossible : {type(error).__name__}: {error}"))
    return ready, broken


# --- mark --------------------------------------------------------------------------------


def mark_sent(*outbox_ids: int) -> None:
    """SENT + audit event on the case, for each row, in one transaction."""
    with session_scope() as session:
        moment = clock.now(session)
        rows = _rows(session, outbox_ids)
        for row in (rows[outbox_id] for outbox_id in outbox_ids):
            if row.status == OutboxStatus.SENT:
                continue
            row.status = OutboxStatus.SENT
            row.sent_at = moment
            row.last_error = ""
            session.add(row)
            _delivery_event(session, row, "mail.sent")


def _delivery_event(session: Session, row: OutboxMessage, action: str, **extra: Any) -> None:
    """The case's audit event for a delivery outcome (the mail itself is never in it)."""
    record_event(
        session=session,
        case_type=CaseType(row.case_type),
        case_id=row.case_id,
        action=action,
        actor=Actor.system("outbox"),
        payload={
            "template": row.template,
            "outbox_id": row.id,
            "contact_id": row.contact_id,
            "message_id": row.message_id,
            "attempts": row.attempts,
            **extra,
        },
    )


def _tell_coordinator(session: Session, row: OutboxMessage, subject: str, error: str) -> bool:
    if row.template == FAILURE_TEMPLATE:  # never alert about a failed alert: no loop
        return False
    clsm = resolve_clsm(session=session, clsm_id=row.clsm_id)
    if clsm is None or clsm.id is None or not clsm.coordinator_email:
        return False
    mail(
        session=session,
        scope=CaseScope(CaseType(row.case_type), row.case_id, clsm.id, row.case_label),
        to=Recipient(email=clsm.coordinator_email, name=clsm.coordinator_name),
        message=DeliveryFailedMail(
            failed_subject=subject,
            failed_recipient_name=row.recipient_name or row.recipient_email,
            failed_recipient_email=row.recipient_email,
            error=error,
        ),
        dedup_key=f"delivery-failed-{row.id}",
    )
    return True


def mark_failure(outbox_id: int, failure: Failure, subject: str) -> bool:
    """Back to PENDING with backoff, or FAILED for good; returns True when FAILED."""
    settings = get_settings()
    with session_scope() as session:
        row = session.get(OutboxMessage, outbox_id)
        assert row is not None
        moment = clock.now(session)
        row.last_error = failure.error[:1000]
        final = failure.permanent or row.attempts >= settings.smtp_max_attempts
        if not final:
            row.status = OutboxStatus.PENDING
            row.next_attempt_at = moment + _backoff(row.attempts, settings)
            session.add(row)
            return False
        row.status = OutboxStatus.FAILED
        session.add(row)
        told = _tell_coordinator(session, row, subject, row.last_error)
        _delivery_event(session, row, "mail.failed", error=row.last_error, coordinator_told=told)
        return True


# --- send --------------------------------------------------------------------------------


def classify(error: Exception) -> Failure:
    """5xx replies to this message are permanent; 4xx and connection trouble are retried."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        first = error.recipients[0]
        return Failure(f"{first.code} {first.message}", permanent=500 <= first.code < 600)
    if isinstance(
        error,
        aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPDataError | aiosmtplib.SMTPRecipientRefused,
    ):
        return Failure(f"{error.code} {error.message}", permanent=500 <= error.code < 600)
    # greeting refused, authentication, TLS, timeouts, disconnections: the server, not the mail
    return Failure(f"{type(error).__name__}: {error}", permanent=False, connection=True)


def _client(settings: Settings) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        use_tls=settings.smtp_security is SmtpSecurity.TLS,
        start_tls=settings.smtp_security is SmtpSecurity.STARTTLS,
        timeout=settings.smtp_timeout_seconds,
        cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
    )


class _Connections:
    """At most `smtp_concurrency` SMTP connections, kept open for a whole drain."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.idle: list[aiosmtplib.SMTP] = []

    async def take(self) -> aiosmtplib.SMTP:
        while self.idle:
            smtp = self.idle.pop()
            if smtp.is_connected:
                return smtp
        smtp = _client(self.settings)
        await smtp.connect()
        return smtp

    def give_back(self, smtp: aiosmtplib.SMTP | None) -> None:
        if smtp is not None and smtp.is_connected:
            self.idle.append(smtp)

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for smtp in idle:
            await _drop(smtp, polite=True)


class _Batch:
    def __init__(
        self, items: list[Outgoing], report: DrainReport, connections: _Connections
    ) -> None:
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        for item in items:
            self.queue.put_nowait(item)
        self.report = report
        self.connections = connections
        self.connection_error: Failure | None = None
        # One transaction marks at a time: the senders' marks would otherwise contend for
        # the database's write lock (SQLite makes a waiting writer sleep). The rows sent
        # meanwhile are marked together by the next one.
        self.marking = asyncio.Lock()
        self.unmarked: list[int] = []

    async def mark(self, function: Callable[..., _T], *args: Any) -> _T:
        async with self.marking:
            return await asyncio.to_thread(function, *args)

    async def sent(self, item: Outgoing) -> None:
        """Returns once the row is marked SENT (by this call or by the one before)."""
        self.unmarked.append(item.outbox_id)
        async with self.marking:
            ids, self.unmarked = self.unmarked, []
            if ids:
                await asyncio.to_thread(mark_sent, *ids)
        self.report.sent += 1

    async def record(self, item: Outgoing, failure: Failure) -> None:
        failed = await self.mark(mark_failure, item.outbox_id, failure, item.subject)
        if failed:
            self.report.failed += 1
            line = f"E-mail {item.outbox_id} non remis ({item.recipient}) : {failure.error}"
            self.report.failures.append(line)
            _logger().warning("%s ; la coordination est prévenue.", line)
        else:
            self.report.retried += 1

    async def worker(self) -> None:
        smtp: aiosmtplib.SMTP | None = None
        try:
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if self.connection_error is not None:  # server unreachable: do not hammer it
                    await self.record(item, self.connection_error)
                    continue
                try:
                    if smtp is None:
                        smtp = await self.connections.take()
                    await smtp.sendmail(item.sender, [item.recipient], item.data)
                except (aiosmtplib.SMTPException, OSError) as error:
                    failure = classify(error)
                    if failure.connection:
                        self.connection_error = failure
                    await _drop(smtp)
                    smtp = None
                    await self.record(item, failure)
                    continue
                await self.sent(item)
        except BaseException:
            await _drop(smtp)
            raise
        else:
            self.connections.give_back(smtp)


async def _drop(smtp: aiosmtplib.SMTP | None, polite: bool = False) -> None:
    if smtp is None or not smtp.is_connected:
        return
    try:
        if polite:
            await smtp.quit()
        else:
            smtp.close()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


def _prepare(
    limit: int, case: CaseKey | None = None
) -> tuple[list[Outgoing], list[tuple[int, str]], int]:
    """Claim up to `limit` due rows and render them: ready, unrenderable, stale claims."""
    ids, stale = claim(limit, case)
    ready, broken = render_claimed(ids) if ids else ([], [])
    return ready, broken, stale


async def _unrenderable(broken: list[tuple[int, str]], report: DrainReport) -> None:
    """Rows that cannot be rendered fail at once: no retry can fix a template or data error."""
    for outbox_id, reason in broken:
        failure = Failure(reason, permanent=True)
        if await asyncio.to_thread(mark_failure, outbox_id, failure, reason):
            report.failed += 1
            report.failures.append(f"E-mail {outbox_id} : {reason}")
            _logger().warning("E-mail %s non rendu : %s", outbox_id, reason)


async def send_now(*, case: CaseKey | None = None, limit: int = 100) -> DrainReport | None:
    """Send at once what was just queued (for `case`, if given), when the server answers.

    Called by a run before it suspends or ends and by the service after a change that
    queued mail, so a mail reaches its recipient within seconds instead of at the next
    heartbeat. Nothing is claimed unless the SMTP server accepted a connection first: when
    it is unreachable the rows stay due, untouched (no attempt spent, no backoff), for the
    heartbeat's drain. Returns None when nothing was sent or tried.
    """
    if not await asyncio.to_thread(has_due, case):
        return None
    settings = get_settings()
    connections = _Connections(settings)
    try:
        connections.give_back(await connections.take())
    except (aiosmtplib.SMTPException, OSError) as error:
        _logger().info("Serveur de messagerie injoignable (%s) : envoi au prochain passage.", error)
        return None
    return await drain(limit=limit, case=case, connections=connections)


async def drain(
    *, limit: int = 200, case: CaseKey | None = None, connections: _Connections | None = None
) -> DrainReport:
    """Send due outbox rows (at most `limit` attempts; of `case` only, if given); see the
    module docstring.

    Rows go by chunks; the next chunk is claimed and rendered (in a thread) while the
    current one is being sent, over connections kept for the whole drain.
    """
    settings = get_settings()
    report = DrainReport()
    chunk = settings.smtp_concurrency * 10
    connections = connections or _Connections(settings)
    claimed, early = 0, False
    upcoming: asyncio.Task[tuple[list[Outgoing], list[tuple[int, str]], int]] | None
    upcoming = asyncio.create_task(asyncio.to_thread(_prepare, min(chunk, limit), case))
    try:
        while upcoming is not None:
            ready, broken, stale = await upcoming
            upcoming = None
            if not ready and not broken and early:
                # claimed while the last chunk was sent: mails queued by that sending (a
                # failure told to the coordinator) were not there yet
                ready, broken, stale = await asyncio.to_thread(
                    _prepare, min(chunk, limit - claimed), case
                )
            claimed += len(ready) + len(broken)
            if not ready and not broken:
                break
            report.recovered += stale
            early = claimed < limit
            if early:
                upcoming = asyncio.create_task(
                    asyncio.to_thread(_prepare, min(chunk, limit - claimed), case)
                )
            await _unrenderable(broken, report)
            batch = _Batch(ready, report, connections)
            workers = [batch.worker() for _ in range(min(settings.smtp_concurrency, len(ready)))]
            results = await asyncio.gather(*workers, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:  # e.g. the database is gone: claimed rows are taken over after their lease
                raise errors[0]
            if batch.connection_error is not None:
                report.unreachable = True
                if upcoming is not None:  # claimed already: they wait for the server too
                    more, broken, stale = await upcoming
                    upcoming = None
                    report.recovered += stale
                    await _unrenderable(broken, report)
                    late = _Batch(more, report, connections)
                    late.connection_error = batch.connection_error
                    await late.worker()
    finally:
        if upcoming is not None:  # an error above: the claimed rows' lease gives them back
            upcoming.cancel()
            await asyncio.gather(upcoming, return_exceptions=True)
        await connections.close()
    return report
