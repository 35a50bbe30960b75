"""Mail fan-out: 1,000 preparation-day invitations (calendar part) to a provider-like SMTP server.

The invitations are queued by the real code (`models.immersion.ensure_invitations` on a
session with that many selected participants), so each message is what we really send:
text + HTML + text/calendar + invitation.ics, stable Message-ID. The server is
bench/smtp_provider.py in its own process; it waits before its greeting and per message like
a real provider and logs every Message-ID it accepted, which is where duplicates and losses
are counted.

- ours: `notifications.send.drain()` (claim, render, send over `smtp_concurrency` reused
  connections, mark each row SENT with its audit event);
- naive: the loop a user would write: for each pending row, render it, open one aiosmtplib
  connection for it (`aiosmtplib.send`), mark it SENT; one after the other.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.run import ROOT, Context, Result, Target

GREETING_MS = 20.0
MESSAGE_MS = 10.0


class ProviderProcess:
    """bench.smtp_provider in its own process; reads back the Message-IDs it accepted."""

    def __init__(self, tmp: Path, greeting_ms: float, message_ms: float) -> None:
        from tests.support.env import free_port

        self.port = free_port()
        self.log = tmp / f"provider-{self.port}.log"
        self.command = [
            sys.executable,
            "-m",
            "bench.smtp_provider",
            "--port",
            str(self.port),
            "--greeting-ms",
            str(greeting_ms),
            "--message-ms",
            str(message_ms),
            "--log",
            str(self.log),
        ]
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ProviderProcess:
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP provider did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)

    def received(self) -> list[str]:
        """Every Message-ID accepted so far, in order."""
        if not self.log.exists():
            return []
        return self.log.read_text(encoding="utf-8").splitlines()


@contextmanager
def sending_to(provider: ProviderProcess) -> Iterator[None]:
    """This process's settings point at the provider (no TLS, no authentication)."""
    from bench.run import settings_env

    with settings_env(
        CLSM_SMTP_HOST="127.0.0.1", CLSM_SMTP_PORT=str(provider.port), CLSM_SMTP_SECURITY="none"
    ):
        yield


# -- the invitations, queued by the real code --------------------------------------------
def queue_invitations(count: int) -> list[str]:
    """A session with count-1 selected participants and a facilitator; its preparation-day
    invitations queued by `ensure_invitations`. Returns their Message-IDs."""
    from sqlmodel import select

    from models.core import clock
    from models.core.audit import Actor
    from models.core.db import session_scope
    from models.core.outbox import OutboxMessage
    from models.core.people import Contact
    from models.immersion.call import create_session
    from models.immersion.meetings import ensure_invitations
    from models.immersion.states import ApplicationStatus
    from models.immersion.tables import Application, ImmersionSessionCreate
    from tests.support.immersion import STRUCTURES, build_clsm, session_dates

    with session_scope() as session:
        owner, orgs = build_clsm(session)
        data = ImmersionSessionCreate(
            title="Immersions 2025 — session de printemps",
            capacity=count,
            clsm_slug=owner.slug,
            structures=STRUCTURES,
            **session_dates(clock.now(session)),
        )
        row = create_session(
            session=session, data=data, flow_run_id=str(uuid.uuid4()), actor=Actor.system()
        )
        assert row.id is not None
        moment = clock.now(session)
        for number in range(1, count):
            org = orgs[number % len(orgs)]
            assert org.id is not None
            person = Contact(
                organisation_id=org.id,
                name=f"Participante Éloïse {number}",
                email=f"participante{number}@partenaire.example",
                function="Infirmière",
            )
            session.add(person)
            session.flush()
            assert person.id is not None
            session.add(
                Application(
                    session_id=row.id,
                    number=number,
                    contact_id=person.id,
                    organisation_id=org.id,
                    manager_contact_id=person.id,
                    status=ApplicationStatus.SELECTED,
                    ever_selected=True,
                    submitted_at=moment,
                )
            )
        session.flush()
        queued = ensure_invitations(session=session, row=row)
        assert queued == count, f"{queued} invitations queued, {count} expected"
        ids = session.exec(select(OutboxMessage.message_id)).all()
    return list(ids)


# -- the two ways of delivering them -----------------------------------------------------
async def ours(count: int) -> int:
    from notifications.send import drain

    sent = 0
    while sent < count:
        report = await drain(limit=count - sent)
        if report.processed == 0 or report.retried or report.failed:
            raise RuntimeError(f"drain did not deliver: {report.as_dict()}")
        sent += report.sent
    return sent


async def naive() -> int:
    """For each pending row: render, one connection for this message, mark it sent."""
    import aiosmtplib
    from sqlmodel import col, select

    from models.core.db import session_scope
    from models.core.outbox import OutboxMessage, OutboxStatus
    from models.core.settings import get_settings
    from notifications.send import build_message, mark_sent

    settings = get_settings()
    with session_scope() as session:
        ids = session.exec(
            select(OutboxMessage.id)
            .where(OutboxMessage.status == OutboxStatus.PENDING)
            .order_by(col(OutboxMessage.id))
        ).all()
    sent = 0
    for outbox_id in ids:
        with session_scope() as session:
            row = session.get(OutboxMessage, outbox_id)
            assert row is not None
            item = build_message(session=session, row=row)
        await aiosmtplib.send(
            item.data,
            sender=item.sender,
            recipients=[item.recipient],
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_seconds,
        )
        assert outbox_id is not None
        mark_sent(outbox_id)
        sent += 1
    return sent


def deliver(ctx: Context, provider: ProviderProcess, variant: str, count: int) -> dict[str, Any]:
    """One variant on a fresh database: seconds, messages per second, duplicates, losses."""
    ctx.database("sqlite")
    expected = queue_invitations(count)
    before = len(provider.received())
    start, cpu = time.perf_counter(), time.process_time()
    with sending_to(provider):
        sent = asyncio.run(ours(count) if variant == "ours" else naive())
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    received = provider.received()[before:]
    copies = Counter(received)
    return {
        "seconds": round(seconds, 2),
        "mails_per_second": round(sent / seconds, 1),
        "cpu_seconds": round(cpu_seconds, 2),
        "sent": sent,
        "received": len(received),
        "duplicates": sum(n - 1 for n in copies.values()),
        "lost": len(set(expected) - set(copies)),
    }


def cpu_per_message(ctx: Context, count: int) -> dict[str, float]:
    """Where ours spends its CPU: milliseconds per message for each stage, done one after
    the other on `count` invitations (no server involved)."""
    from notifications.send import claim, mark_sent, render_claimed

    ctx.database("sqlite")
    queue_invitations(count)
    stages: dict[str, float] = {}
    start = time.process_time()
    ids, _stale = claim(count)
    stages["claim"] = (time.process_time() - start) * len(ids[10:]) / len(ids)
    warm_up, ids = ids[:10], ids[10:]  # templates compiled, time zones built
    render_claimed(warm_up)
    count = len(ids)
    start = time.process_time()
    ready, broken = render_claimed(ids)
    stages["render (templates, calendar part, message bytes)"] = time.process_time() - start
    assert not broken and len(ready) == count
    start = time.process_time()
    for outbox_id in ids:
        mark_sent(outbox_id)
    stages["mark SENT + audit event (one transaction each)"] = time.process_time() - start
    return {name: round(seconds / count * 1000, 2) for name, seconds in stages.items()}


def mail_fanout(ctx: Context) -> Result:
    """Our delivery against one connection per message, with provider delays and without."""
    from models.core.settings import get_settings

    count = ctx.scale(1000, 50)
    figures: dict[str, Any] = {}
    for name, greeting, message in (
        ("provider_delays", GREETING_MS, MESSAGE_MS),
        ("zero_latency", 0.0, 0.0),
    ):
        with ProviderProcess(ctx.tmp, greeting, message) as provider:
            runs = {v: deliver(ctx, provider, v, count) for v in ("ours", "naive")}
        runs["speedup"] = round(runs["naive"]["seconds"] / runs["ours"]["seconds"], 1)
        figures[name] = runs
    figures["cpu_ms_per_message"] = cpu_per_message(ctx, ctx.scale(310, 20))

    delayed = figures["provider_delays"]
    runs_of = [
        figures[s][v] for s in ("provider_delays", "zero_latency") for v in ("ours", "naive")
    ]
    duplicates = sum(run["duplicates"] for run in runs_of)
    lost = sum(run["lost"] for run in runs_of)
    speedup = float(delayed["speedup"])
    targets = [
        Target(
            "ours vs one connection per message",
            "≥ 5× faster",
            speedup,
            "×",
            met=speedup >= 5,
            note=(
                f"{count} mails: {delayed['ours']['seconds']} s against "
                f"{delayed['naive']['seconds']} s (provider delays)"
            ),
        ),
        Target("duplicates (by Message-ID)", "0", float(duplicates), "", met=duplicates == 0),
        Target("lost mails", "0", float(lost), "", met=lost == 0),
    ]
    settings = get_settings()
    return Result(
        figures=figures,
        targets=targets,
        settings={
            "mails": count,
            "greeting_delay_ms": GREETING_MS,
            "per_message_delay_ms": MESSAGE_MS,
            "smtp_concurrency": settings.smtp_concurrency,
            "message": "immersion_preparation (text + HTML + text/calendar + .ics)",
            "database": "sqlite",
            "smtp_server": "aiosmtpd in its own process (bench/smtp_provider.py)",
        },
        notes=[
            "Both variants render each message and mark it SENT with its audit event; "
            "they differ only in how they talk to the server.",
            "Duplicates and losses are counted on the server's side, over all four runs.",
            "cpu_seconds is this process's CPU time; cpu_ms_per_message says where it goes "
            "besides aiosmtplib's protocol work. Both variants pay the same rendering and "
            "marking; the naive loop adds the provider's 30 ms (greeting + message) and a "
            "connection per message, ours sends over `smtp_concurrency` connections kept "
            "for the whole drain while the next chunk is claimed and rendered.",
            "The 5x was missed (3.0x) while a message cost ~14 ms of CPU: Python's email "
            "package parsed every header into an object and folded it again to send it "
            "(~4 ms), the case's CLSM was read twice per message and the clock offset once "
            "per row and event. Messages are now written directly (notifications/mime.py), "
            "which brought rendering from ~7.8 ms (with serialisation) to ~1 ms.",
        ],
    )
