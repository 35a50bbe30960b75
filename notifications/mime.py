"""The wire form of our mails, written directly (RFC 5322, 2045-2047).

Python's `email` package parses every header it is given into an object and folds it
again when the message is written: about half of the CPU time of a mail went there. Our
mails always have the same shape, so they are written here in one pass:

    multipart/alternative                      multipart/mixed (a meeting)
      text/plain                                 multipart/alternative
      text/html                                    text/plain, text/html,
                                                   text/calendar; method=...
                                                 application/ics (invitation.ics)

Text parts are quoted-printable (7-bit clean, lines under 76 characters, readable in the
source), the attachment base64; non-ASCII header text uses RFC 2047 encoded words. Lines
end with CRLF, as SMTP wants them.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formataddr

CRLF = "\r\n"
_NEWLINES = re.compile(r"\r\n|\r|\n")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


def one_line(text: str) -> str:
    """Header text on one line: a line break or control character in a name or a subject
    would otherwise end the header and let the text write headers of its own."""
    return _CONTROLS.sub(" ", text).strip()


def ascii_address(email: str) -> str:
    """The address as headers and SMTP carry it without SMTPUTF8: an internationalised
    domain (département.example) in its IDNA form (xn--dpartement-b7a.example).

    A local part (before @) that is not ASCII would need SMTPUTF8 from every server on
    the way; it is refused, like an address that is not one.
    """
    if not _ADDRESS.fullmatch(email):
        raise ValueError(f"adresse e-mail invalide : {email!r}")
    local, _, domain = email.rpartition("@")
    if not local.isascii():
        raise ValueError(f"adresse e-mail invalide (accents avant le @) : {email!r}")
    if domain.isascii():
        return email
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        raise ValueError(f"adresse e-mail invalide (domaine) : {email!r}") from None


@dataclass(frozen=True)
class Mailbox:
    email: str
    name: str = ""

    def header(self) -> str:
        """`Name <address>`, the name quoted or encoded as needed."""
        address = ascii_address(self.email)
        name = one_line(self.name)
        if not name:
            return address
        if name.isascii():
            return formataddr((name, address))
        return f"{encoded(name)} <{address}>"


def encoded(text: str) -> str:
    """Header text: folded when ASCII, else RFC 2047 base64 words, one per folded line.

    Each word holds at most 39 bytes of UTF-8 (never half a character), so a line, with
    the header's name before the first word, stays under 78 characters. The space between
    two encoded words is not part of the text (RFC 2047, 6.2).
    """
    text = one_line(text)
    if text.isascii():
        return _folded(text)
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode())
        if size + width > 39:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    words.append("".join(chunk))
    return f"{CRLF} ".join(
        f"=?utf-8?b?{base64.b64encode(word.encode()).decode('ascii')}?=" for word in words
    )


def _folded(text: str) -> str:
    """ASCII header text folded at its spaces, lines under 78 characters with the name."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > 64:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return f"{CRLF} ".join(lines)


def _text_part(subtype: str, text: str, params: str = "") -> str:
    body = _NEWLINES.sub(CRLF, text).encode()
    if not body.endswith(b"\r\n"):
        body += b"\r\n"  # b2a_qp takes its line ending from the first line
    encoded_body = binascii.b2a_qp(body, istext=True).decode("ascii")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{params}{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        f"{encoded_body}"
    )


def _attachment(content_type: str, filename: str, data: bytes) -> str:
    body = base64.encodebytes(data).decode("ascii").replace("\n", CRLF)
    return (
        f"Content-Type: {content_type}{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}"
        f'Content-Disposition: attachment; filename="{filename}"{CRLF}{CRLF}'
        f"{body}"
    )


def _multipart(subtype: str, parts: list[str]) -> str:
    # "=_" never occurs in quoted-printable or base64 text: the boundary cannot clash
    boundary = f"=_{uuid.uuid4().hex}"
    # every part ends with CRLF; the CRLF before a boundary belongs to the boundary
    body = "".join(f"--{boundary}{CRLF}{part}{CRLF}" for part in parts)
    return (
        f'Content-Type: multipart/{subtype};{CRLF} boundary="{boundary}"{CRLF}{CRLF}'
        f"{body}--{boundary}--{CRLF}"
    )


@dataclass(frozen=True)
class Invitation:
    """The calendar part of a meeting mail."""

    ics: str
    method: str


def message_bytes(
    *,
    headers: list[tuple[str, str]],
    text: str,
    html: str,
    invitation: Invitation | None = None,
    files: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """The whole message: `headers` (already encoded, in order), then the MIME body;
    `files` are attachments as (content type, file name, bytes)."""
    alternatives = [_text_part("plain", text), _text_part("html", html)]
    joined = [_attachment(kind, name, data) for kind, name, data in files]
    if invitation is not None:
        alternatives.append(
            _text_part("calendar", invitation.ics, f'; method="{invitation.method}"')
        )
        joined.insert(0, _attachment("application/ics", "invitation.ics", invitation.ics.encode()))
    if joined:
        body = _multipart("mixed", [_multipart("alternative", alternatives), *joined])
    else:
        body = _multipart("alternative", alternatives)
    head = "".join(f"{name}: {value}{CRLF}" for name, value in headers)
    return f"{head}MIME-Version: 1.0{CRLF}{body}".encode("ascii")
