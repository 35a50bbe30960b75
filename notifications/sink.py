"""Local SMTP sink for development: an aiosmtpd server that keeps every mail it receives.

Each mail is stored as `<sequence>.eml` in the sink directory (CLSM_SINK_DIR), so the
service can show them and `clsm mail list` / `clsm mail show` can print them.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import os
import signal
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class SinkHandler:
    """aiosmtpd handler writing each received message to a file, atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        existing = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
        self._numbers = itertools.count(max(existing, default=0) + 1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        number = next(self._numbers)
        target = self.directory / f"{number:06d}.eml"
        partial = target.with_suffix(".part")
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        header = f"X-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        partial.write_bytes(header + content)
        os.replace(partial, target)
        return "250 Message accepted for delivery"


def start_sink(directory: Path, host: str, port: int) -> Controller:
    controller = Controller(SinkHandler(directory), hostname=host, port=port)
    controller.start()
    return controller


def run_forever(directory: Path, host: str, port: int) -> None:
    controller = start_sink(directory, host, port)
    print(f"Boîte de réception locale : smtp://{host}:{port} → {directory}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()
        loop.close()


@dataclass(frozen=True)
class SinkMail:
    id: str
    path: Path
    message: EmailMessage
    received_at: datetime

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", ""))

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""

    def calendar(self) -> str:
        for part in self.message.walk():
            if part.get_content_type() == "text/calendar":
                payload = part.get_payload(decode=True)
                return payload.decode() if isinstance(payload, bytes) else str(payload)
        return ""


def read_mail(path: Path) -> SinkMail:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    received = datetime.fromtimestamp(path.stat().st_mtime).astimezone()
    return SinkMail(id=path.stem, path=path, message=message, received_at=received)


def list_mails(directory: Path) -> list[SinkMail]:
    """Every mail in the sink, newest first."""
    if not directory.exists():
        return []
    return [read_mail(p) for p in sorted(directory.glob("*.eml"), reverse=True)]


def find_mail(directory: Path, mail_id: str) -> SinkMail | None:
    if not (mail_id.isascii() and mail_id.isdigit()):
        return None
    path = directory / f"{int(mail_id):06d}.eml"
    return read_mail(path) if path.exists() else None
