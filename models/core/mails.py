"""Typed mail contexts: what each template needs, checked when the mail is queued.

Each mail a process sends has a frozen model beside the step that sends it: the template's
name, its fields, and an example. Rendering adds what every mail has (the CLSM's name and
coordinator, the recipient's name, the case label, the URL of each `link_id`, the calendar
part); the template test renders every example strictly. The generic mails of the core
(reminders, escalations, delivery failures, renewed links) are here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

EXAMPLE_LINK_URL = "http://127.0.0.1:8765/r/jeton-exemple"

EXAMPLE_CALENDAR: dict[str, Any] = {
    "uid": "meeting-1@clsm.localhost",
    "sequence": 0,
    "method": "REQUEST",
    "summary": "Réunion de la cellule de concertation",
    "start": "2024-11-12T09:30:00+01:00",
    "end": "2024-11-12T11:30:00+01:00",
    "location": "CCAS de Poitiers, salle du conseil",
    "description": "",
}

RENDERING_ADDS: dict[str, Any] = {
    "clsm_name": "CLSM de Poitiers",
    "coordinator_name": "Inès Moreau",
    "coordinator_email": "coordination@clsm-poitiers.example",
    "recipient_name": "Sophie Petit",
    "case_label": "Session « Immersions croisées 2024 »",
    "base_url": "http://127.0.0.1:8765",
}
"""What rendering adds to every context (here with example values)."""


class MailContext(BaseModel):
    """The fields of one mail template, beyond what rendering adds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    template: ClassVar[str]
    with_calendar: ClassVar[bool] = False
    """The mail carries an invitation (its row has a calendar part)."""

    @classmethod
    def example(cls) -> Self:
        raise NotImplementedError(f"{cls.__name__} gives no example")

    def as_context(self) -> dict[str, Any]:
        """The JSON stored on the outbox row."""
        return self.model_dump(mode="json", exclude_none=False)

    @classmethod
    def example_context(cls) -> dict[str, Any]:
        """The full context of the example, as rendering would make it."""
        context = {**RENDERING_ADDS, **cls.example().as_context()}
        if "link_id" in context:
            context["link_url"] = EXAMPLE_LINK_URL
        if "links" in context:
            context["link_urls"] = {key: EXAMPLE_LINK_URL for key in context["links"]}
        if cls.with_calendar:
            context["calendar"] = EXAMPLE_CALENDAR
        return context


class ReminderMail(MailContext):
    """A partner has not answered yet: the step, its deadline and the link again."""

    template: ClassVar[str] = "reminder"
    step_label: str
    deadline: datetime
    reminder_number: int
    link_id: int

    @classmethod
    def example(cls) -> ReminderMail:
        return cls(
            step_label="confirmer l'accueil d'un participant",
            deadline=datetime.fromisoformat("2024-11-13T18:00:00+01:00"),
            reminder_number=1,
            link_id=1,
        )


class EscalationMail(MailContext):
    """To the coordinator: a partner did not answer before the deadline."""

    template: ClassVar[str] = "escalation"
    step_label: str
    deadline: datetime
    contact_name: str
    contact_email: str
    reminders_sent: int

    @classmethod
    def example(cls) -> EscalationMail:
        return cls(
            step_label="donner votre avis sur la situation",
            deadline=datetime.fromisoformat("2024-11-08T18:00:00+01:00"),
            contact_name="Sophie Petit",
            contact_email="sophie.petit@vienne.example",
            reminders_sent=2,
        )


class DeliveryFailedMail(MailContext):
    """To the coordinator: a mail of the case could not be delivered."""

    template: ClassVar[str] = "delivery_failed"
    failed_subject: str
    failed_recipient_name: str
    failed_recipient_email: str
    error: str

    @classmethod
    def example(cls) -> DeliveryFailedMail:
        return cls(
            failed_subject="Rappel : donner votre avis sur la situation avant le 8 novembre",
            failed_recipient_name="Sophie Petit",
            failed_recipient_email="sophie.petit@vienne.example",
            error="550 5.1.1 Adresse inconnue",
        )


class LinkRenewedMail(MailContext):
    """A fresh link for a step, asked for from an expired or used one."""

    template: ClassVar[str] = "link_renewed"
    step_title: str
    link_id: int

    @classmethod
    def example(cls) -> LinkRenewedMail:
        return cls(step_title="Accueil d'un participant en immersion", link_id=1)


class MeetingInvitationMail(MailContext):
    """A generic invitation to a meeting of the case (calendar REQUEST)."""

    template: ClassVar[str] = "meeting_invitation"
    with_calendar: ClassVar[bool] = True

    @classmethod
    def example(cls) -> MeetingInvitationMail:
        return cls()


class MeetingCancelledMail(MailContext):
    """A generic cancellation of a meeting of the case (calendar CANCEL)."""

    template: ClassVar[str] = "meeting_cancelled"
    with_calendar: ClassVar[bool] = True
    reason: str

    @classmethod
    def example(cls) -> MeetingCancelledMail:
        return cls(reason="salle indisponible")


GENERIC_MAILS: tuple[type[MailContext], ...] = (
    ReminderMail,
    EscalationMail,
    DeliveryFailedMail,
    LinkRenewedMail,
    MeetingInvitationMail,
    MeetingCancelledMail,
)
