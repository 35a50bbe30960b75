"""A real SMTP server for tests (aiosmtpd on localhost), controllable from the test.

    with SmtpServer() as server:           # or the `smtp_server` fixture (settings pointed at it)
        server.answer("421 4.3.2 Try later")   # the next DATA gets 421, the following ones 250
        server.refuse("x@example.org", "550 5.1.1 Unknown user")
        ... drain ...
        server.messages[0].message["Message-ID"]

Every accepted mail is kept, parsed, with its envelope and the client's address (so a test
can count connections); refused attempts are counted in `data_attempts`.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from models.core.settings import get_settings
from tests.support.env import free_port

EVERY_MAIL: list[ReceivedMail] = []
"""Every mail any test server accepted during the session (privacy check, conftest)."""


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    peer: tuple[str, int]
    raw: bytes
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, content_type: str) -> EmailMessage | None:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_attachment():
                assert isinstance(part, EmailMessage)
                return part
        return None

    def text(self) -> str:
        part = self.part("text/plain")
        return str(part.get_content()) if part else ""

    def html(self) -> str:
        part = self.part("text/html")
        return str(part.get_content()) if part else ""

    def calendar(self) -> str:
        part = self.part("text/calendar")
        return str(part.get_content()) if part else ""


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refusal = self.server.refusals.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.server.lock:
            self.server.data_attempts += 1
            reply = self.server.replies.popleft() if self.server.replies else "250 OK"
            if not reply.startswith("250"):
                return reply
            content = envelope.original_content or envelope.content
            raw = content if isinstance(content, bytes) else content.encode()
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            received = ReceivedMail(
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                peer=tuple(session.peer[:2]),
                raw=raw,
                message=message,
            )
            self.server.messages.append(received)
            EVERY_MAIL.append(received)
            return reply


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for host (also its own CA) and its key, written to directory."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class SmtpServer:
    """aiosmtpd on localhost. `starttls=(cert, key)` offers and requires STARTTLS;
    `auth=(login, password)` requires authentication."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        starttls: tuple[Path, Path] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.starttls = starttls
        self.auth = auth
        self.logins: list[str] = []
        self.lock = threading.Lock()
        self.messages: list[ReceivedMail] = []
        self.replies: deque[str] = deque()
        self.refusals: dict[str, str] = {}
        self.data_attempts = 0
        self._controller: Controller | None = None

    def answer(self, *replies: str) -> None:
        """The next DATA commands get these replies (e.g. "421 4.3.2 Réessayez"), then 250."""
        with self.lock:
            self.replies.extend(replies)

    def refuse(self, address: str, reply: str = "550 5.1.1 Adresse inconnue") -> None:
        """Refuse this recipient at RCPT TO, on every attempt."""
        self.refusals[address.lower()] = reply

    @property
    def connections(self) -> int:
        """How many distinct client connections delivered the accepted mails."""
        return len({m.peer for m in self.messages})

    def to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.messages if address in m.recipients]

    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        options: dict[str, Any] = {}
        if self.starttls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.starttls)
            options.update(tls_context=context, require_starttls=True)
        if self.auth is not None:
            options.update(authenticator=self._authenticate, auth_required=True)
            options["auth_require_tls"] = self.starttls is not None
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def point_settings_at(monkeypatch: pytest.MonkeyPatch, server: SmtpServer) -> None:
    """Make this process's settings send to server (no TLS, no authentication)."""
    monkeypatch.setenv("CLSM_SMTP_HOST", server.host)
    monkeypatch.setenv("CLSM_SMTP_PORT", str(server.port))
    monkeypatch.setenv("CLSM_SMTP_SECURITY", "none")
    get_settings.cache_clear()


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A running SmtpServer, with the settings of this process pointed at it."""
    with SmtpServer() as server:
        point_settings_at(monkeypatch, server)
        yield server
    get_settings.cache_clear()
