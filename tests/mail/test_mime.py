"""The wire form of our mails (notifications.mime), read back by Python's own parser."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from notifications.mime import Invitation, Mailbox, ascii_address, encoded, message_bytes

ICS = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nSUMMARY:Réunion — cellule\r\nEND:VCALENDAR\r\n"


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _mail(
    *, subject: str = "Objet", to: Mailbox | None = None, invitation: Invitation | None = None
) -> bytes:
    headers = [
        ("Subject", encoded(subject)),
        ("From", Mailbox("no-reply@clsm.example", "CLSM de Poitiers").header()),
        ("To", (to or Mailbox("a@partenaire.example", "Aïcha Martin")).header()),
        ("Message-ID", "<outbox-1-abc@clsm.example>"),
    ]
    text = "Bonjour,\n\n" + "Une ligne très longue à couper. " * 20 + "\n=== fin ===\n"
    html = "<p>Bonjour <strong>Aïcha</strong> — voir <a href='https://x.example/l/ab'>ici</a></p>"
    return message_bytes(headers=headers, text=text, html=html, invitation=invitation)


def test_text_and_html_read_back_exactly_with_french_headers() -> None:
    data = _mail(subject="Invitation : journée de préparation — Immersions 2025 — printemps")
    message = _parse(data)
    assert message["Subject"] == "Invitation : journée de préparation — Immersions 2025 — printemps"
    assert message["To"].addresses[0].display_name == "Aïcha Martin"
    assert message["To"].addresses[0].addr_spec == "a@partenaire.example"
    assert message["From"].addresses[0].display_name == "CLSM de Poitiers"
    assert message["Message-ID"] == "<outbox-1-abc@clsm.example>"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    text = plain.get_content().replace("\r\n", "\n")
    assert text == "Bonjour,\n\n" + "Une ligne très longue à couper. " * 20 + "\n=== fin ===\n"
    assert "<strong>Aïcha</strong>" in html.get_content()
    assert all(not part.defects for part in message.walk())


def test_wire_form_is_seven_bit_with_short_crlf_lines() -> None:
    data = _mail(subject="É" * 120, invitation=Invitation(ICS, "REQUEST"))
    assert data.isascii()
    lines = data.split(b"\r\n")
    assert b"\n" not in b"".join(lines), "every line ends with CRLF"
    assert max(len(line) for line in lines) <= 78


def test_meeting_mail_has_calendar_alternative_and_ics_attachment() -> None:
    message = _parse(_mail(invitation=Invitation(ICS, "CANCEL")))
    assert message.get_content_type() == "multipart/mixed"
    parts = {part.get_content_type(): part for part in message.walk()}
    calendar = parts["text/calendar"]
    assert calendar.get_param("method") == "CANCEL"
    assert not calendar.is_attachment()
    assert calendar.get_content() == ICS
    attachment = parts["application/ics"]
    assert attachment.is_attachment() and attachment.get_filename() == "invitation.ics"
    assert attachment.get_content() == ICS.encode()


@pytest.mark.parametrize(
    "name", ["Eve\r\nBcc: victime@example.org", "Eve\nX-Injected: 1", "Ève\r\nBcc: v@example.org"]
)
def test_a_line_break_in_a_name_or_subject_cannot_add_a_header(name: str) -> None:
    message = _parse(_mail(subject=name, to=Mailbox("a@partenaire.example", name)))
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert "\n" not in str(message["Subject"]) and "\n" not in str(message["To"])


@pytest.mark.parametrize(
    "address", ["a@b.example\r\nBcc: c@d.example", "pas une adresse", "é@b.example", "a <b@c.fr>"]
)
def test_an_address_that_is_not_one_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="adresse e-mail invalide"):
        Mailbox(address, "Nom").header()


def test_ascii_names_with_specials_are_quoted() -> None:
    message = _parse(_mail(to=Mailbox("a@partenaire.example", "Martin, Paul (CMP)")))
    assert message["To"].addresses[0].display_name == "Martin, Paul (CMP)"
    assert len(message["To"].addresses) == 1


def test_an_internationalised_domain_goes_in_its_idna_form() -> None:
    assert ascii_address("referent@département.example") == "referent@xn--dpartement-b7a.example"
    assert ascii_address("referent@ccas.example") == "referent@ccas.example"
    message = _parse(_mail(to=Mailbox("referent@département.example", "Référent")))
    assert message["To"].addresses[0].domain == "xn--dpartement-b7a.example"
    assert message["To"].addresses[0].display_name == "Référent"
